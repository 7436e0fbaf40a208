//! Tag templates: `{name}` placeholders filled from plan variables and `--var NAME=VALUE`.
//!
//! A variable `version` that reads as `[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]` also provides
//! `{major}`, `{minor}`, `{patch}` and `{prerelease}` (unless those are set explicitly).
//! `{{` and `}}` stand for literal braces.

use std::collections::BTreeMap;

/// Named values for templates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    values: BTreeMap<String, String>,
}

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` (a later value replaces an earlier one).
    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_string(), value.to_string());
    }

    /// Parses `NAME=VALUE` as given to `--var`.
    pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
        match s.split_once('=') {
            Some((n, v)) if is_name(n) => Ok((n.to_string(), v.to_string())),
            _ => Err(format!(
                "--var {s:?}: expected NAME=VALUE with NAME made of letters, digits, '_' or '-'"
            )),
        }
    }

    /// These values with `overrides` applied on top, then the parts derived from `version`.
    pub fn layered(&self, overrides: &Vars) -> Vars {
        let mut out = self.clone();
        out.values
            .extend(overrides.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.derive_version();
        out
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn derive_version(&mut self) {
        let Some(parts) = self.get("version").and_then(semver_parts) else {
            return;
        };
        for (name, value) in parts {
            self.values.entry(name.to_string()).or_insert(value);
        }
    }

    /// Fills the placeholders of `template`; names an unknown variable or a malformed brace.
    pub fn render(&self, template: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(i) = rest.find(['{', '}']) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            if tail.starts_with("{{") || tail.starts_with("}}") {
                out.push_str(&tail[..1]);
                rest = &tail[2..];
                continue;
            }
            if tail.starts_with('}') {
                return Err(format!("unmatched '}}' in {template:?}"));
            }
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
            let name = &tail[1..end];
            let value = self.get(name).ok_or_else(|| self.unknown(name, template))?;
            out.push_str(value);
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn unknown(&self, name: &str, template: &str) -> String {
        let known: Vec<&str> = self.values.keys().map(String::as_str).collect();
        let hint = if ["major", "minor", "patch", "prerelease"].contains(&name) {
            " (set `version` to MAJOR.MINOR.PATCH, e.g. --var version=1.4.2)"
        } else {
            ""
        };
        format!(
            "unknown variable {{{name}}} in {template:?}{hint}; known: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    }
}

fn is_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `major`, `minor`, `patch`, `prerelease` of `[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
fn semver_parts(version: &str) -> Option<Vec<(&'static str, String)>> {
    let v = version.strip_prefix('v').unwrap_or(version);
    let (core, _build) = v.split_once('+').unwrap_or((v, ""));
    let (core, pre) = core.split_once('-').unwrap_or((core, ""));
    let nums: Vec<&str> = core.split('.').collect();
    let numeric = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if nums.len() != 3 || !nums.iter().all(numeric) {
        return None;
    }
    Some(vec![
        ("major", nums[0].to_string()),
        ("minor", nums[1].to_string()),
        ("patch", nums[2].to_string()),
        ("prerelease", pre.to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        let mut v = Vars::new();
        for (k, x) in pairs {
            v.set(k, x);
        }
        v.layered(&Vars::new())
    }

    #[test]
    fn version_parts_fill_templates() {
        let v = vars(&[("version", "1.4.2")]);
        assert_eq!(v.render("{version}").unwrap(), "1.4.2");
        assert_eq!(v.render("{major}.{minor}").unwrap(), "1.4");
        assert_eq!(v.render("v{major}").unwrap(), "v1");
        assert_eq!(v.render("latest").unwrap(), "latest");
        assert_eq!(v.render("{{x}}").unwrap(), "{x}");
        let pre = vars(&[("version", "v2.0.1-rc.1+build5")]);
        assert_eq!(
            pre.render("{major}.{minor}.{patch}-{prerelease}").unwrap(),
            "2.0.1-rc.1"
        );
    }

    #[test]
    fn explicit_values_win_and_overrides_apply() {
        let mut base = Vars::new();
        base.set("version", "1.0.0");
        base.set("major", "one");
        let mut cli = Vars::new();
        cli.set("version", "3.2.1");
        let v = base.layered(&cli);
        assert_eq!(
            v.render("{version} {major} {minor}").unwrap(),
            "3.2.1 one 2"
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let v = vars(&[("version", "nightly")]);
        let e = v.render("{major}.{minor}").unwrap_err();
        assert!(
            e.contains("unknown variable {major}") && e.contains("--var version="),
            "{e}"
        );
        assert!(v.render("{version").unwrap_err().contains("unclosed"));
        assert!(v.render("x}").unwrap_err().contains("unmatched"));
        assert_eq!(
            Vars::parse_assignment("version=1.2.3").unwrap(),
            ("version".into(), "1.2.3".into())
        );
        assert!(Vars::parse_assignment("=x").is_err());
        assert!(Vars::parse_assignment("novalue").is_err());
    }
}
