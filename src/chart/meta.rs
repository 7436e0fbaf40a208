//! Chart.yaml: parsed and validated the way Helm's loader does, rendered as the JSON of Helm's OCI
//! config blob, and rewritten in place for `--version` / `--app-version`.

use std::collections::BTreeMap;

use marked_yaml::{LoaderOptions, Node};
use serde::{Deserialize, Serialize};

use super::error::ChartError;

/// One maintainer entry of Chart.yaml.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Maintainer {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// One `dependencies:` entry (JSON keys as Helm's `Dependency`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Dependency {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default)]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub import_values: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// Chart.yaml's fields. Serialises to exactly the keys, order and omissions of Helm's
/// `json.Marshal(chart.Metadata)`, which is the OCI config blob.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChartMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub home: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<Maintainer>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tags: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_version: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub chart_type: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ChartMeta {
    /// Parses and validates Chart.yaml text; `chart` names the chart in errors.
    pub fn parse(text: &str, chart: &str) -> Result<ChartMeta, ChartError> {
        let bad = |reason: String| ChartError::invalid(chart, format!("Chart.yaml: {reason}"));
        let node = parse_node(text).map_err(bad)?;
        let mut meta: ChartMeta = marked_yaml::from_node(&node).map_err(|e| bad(e.to_string()))?;
        if meta.api_version.is_empty() {
            // Helm 2 charts had no apiVersion; Helm's loader assumes v1.
            meta.api_version = "v1".into();
        }
        meta.sanitize();
        meta.validate().map_err(bad)?;
        Ok(meta)
    }

    /// Helm's `Metadata.Validate` rules (after sanitising).
    fn validate(&self) -> Result<(), String> {
        if !matches!(self.api_version.as_str(), "v1" | "v2") {
            return Err(format!(
                "apiVersion {:?} is not supported (v1 or v2)",
                self.api_version
            ));
        }
        if self.name.is_empty() {
            return Err("name is required".into());
        }
        if self.name == "." || self.name == ".." || self.name.contains(['/', '\\']) {
            return Err(format!(
                "name {:?} is invalid: it must not be . or .. or contain a path separator",
                self.name
            ));
        }
        if self.version.is_empty() {
            return Err("version is required".into());
        }
        if !is_helm_semver(&self.version) {
            return Err(format!(
                "version {:?} is not a semantic version",
                self.version
            ));
        }
        if !matches!(self.chart_type.as_str(), "" | "application" | "library") {
            return Err(format!(
                "type {:?} is invalid: it must be application or library",
                self.chart_type
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.dependencies {
            let alias_ok = d
                .alias
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !alias_ok {
                return Err(format!(
                    "dependency {:?} has disallowed characters in the alias",
                    d.name
                ));
            }
            let key = if d.alias.is_empty() {
                &d.name
            } else {
                &d.alias
            };
            if !seen.insert(key.clone()) {
                return Err(format!(
                    "more than one dependency with name or alias {key:?}"
                ));
            }
        }
        Ok(())
    }

    /// Helm normalises whitespace to spaces and drops non-printable characters.
    fn sanitize(&mut self) {
        for s in [
            &mut self.name,
            &mut self.description,
            &mut self.home,
            &mut self.icon,
            &mut self.condition,
            &mut self.tags,
            &mut self.app_version,
            &mut self.kube_version,
        ] {
            *s = sanitize(s);
        }
        for s in self.sources.iter_mut().chain(self.keywords.iter_mut()) {
            *s = sanitize(s);
        }
        for m in &mut self.maintainers {
            for s in [&mut m.name, &mut m.email, &mut m.url] {
                *s = sanitize(s);
            }
        }
    }

    /// The OCI config blob Helm pushes: this metadata as JSON.
    pub fn config_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("chart metadata serialises")
    }

    /// The archive name Helm gives this chart: `<name>-<version>.tgz`.
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            if c.is_whitespace() {
                Some(' ')
            } else if c.is_control() {
                None
            } else {
                Some(c)
            }
        })
        .collect()
}

fn parse_node(text: &str) -> Result<Node, String> {
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err("the file is empty".into());
    }
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| e.to_string())
}

/// Masterminds `semver.NewVersion` (what Helm uses): an optional `v`, one to three numeric
/// parts, then optional `-prerelease` and `+build` identifiers.
pub fn is_helm_semver(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(numeric) {
        return false;
    }
    if parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return false;
    }
    let pre_ok = pre.is_none_or(|p| semver::Prerelease::new(p).is_ok() && !p.is_empty());
    let build_ok = build.is_none_or(|b| semver::BuildMetadata::new(b).is_ok() && !b.is_empty());
    pre_ok && build_ok
}

/// Chart.yaml with top-level `field` set to `value` (double-quoted), every other line kept.
/// A missing field is appended.
pub fn rewrite_field(
    text: &str,
    field: &str,
    value: &str,
    chart: &str,
) -> Result<String, ChartError> {
    let bad = |reason: String| ChartError::invalid(chart, format!("Chart.yaml: {reason}"));
    let node = parse_node(text).map_err(bad)?;
    let map = node
        .as_mapping()
        .ok_or_else(|| bad("the top level is not a mapping".into()))?;
    let quoted = serde_json::to_string(value).expect("a string serialises");
    let new_line = format!("{field}: {quoted}");
    let mut key_lines: Vec<(usize, usize, bool)> = map
        .keys()
        .filter_map(|k| {
            k.span()
                .start()
                .map(|m| (m.line(), m.column(), k.as_str() == field))
        })
        .collect();
    key_lines.sort();
    if key_lines.iter().any(|(_, col, _)| *col != 1) || has_duplicate_lines(&key_lines) {
        return Err(bad(format!(
            "cannot rewrite {field}: only a block mapping with keys at the start of lines can be rewritten"
        )));
    }
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = body.lines().collect();
    let Some(pos) = key_lines.iter().position(|(_, _, hit)| *hit) else {
        let mut out = body.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&new_line);
        out.push('\n');
        return Ok(out);
    };
    let start = key_lines[pos].0 - 1;
    let mut end = key_lines.get(pos + 1).map_or(lines.len(), |k| k.0 - 1);
    // Comments and blank lines before the next key belong to it, not to this value.
    while end > start + 1 && {
        let t = lines[end - 1].trim_start();
        t.is_empty() || t.starts_with('#')
    } {
        end -= 1;
    }
    lines.splice(start..end, [new_line.as_str()]);
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

fn has_duplicate_lines(keys: &[(usize, usize, bool)]) -> bool {
    keys.windows(2).any(|w| w[0].0 == w[1].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_semver_is_lenient_like_masterminds() {
        for ok in [
            "1.2.3",
            "v1.2",
            "1",
            "1.2.3-rc.1",
            "1.2.3+build.5",
            "0.1.0-alpha+x",
        ] {
            assert!(is_helm_semver(ok), "{ok}");
        }
        for bad in [
            "", "1.2.3.4", "latest", "1..2", "1.2.3-", "1.2.3-01", "1.x", "1.2.3+",
        ] {
            assert!(!is_helm_semver(bad), "{bad}");
        }
    }

    #[test]
    fn parse_validates_and_defaults_api_version() {
        let m = ChartMeta::parse("name: demo\nversion: 0.1.0\n", "demo").unwrap();
        assert_eq!(m.api_version, "v1");
        let e = ChartMeta::parse("apiVersion: v2\nversion: 1.0.0\n", "x").unwrap_err();
        assert!(e.to_string().contains("name is required"), "{e}");
        let e = ChartMeta::parse("apiVersion: v2\nname: a/b\nversion: 1.0.0\n", "x").unwrap_err();
        assert!(e.to_string().contains("path separator"), "{e}");
        let e = ChartMeta::parse("apiVersion: v2\nname: a\nversion: one\n", "x").unwrap_err();
        assert!(e.to_string().contains("not a semantic version"), "{e}");
        let e = ChartMeta::parse("apiVersion: v2\nname: a\nversion: 1.0.0\ntype: app\n", "x")
            .unwrap_err();
        assert!(e.to_string().contains("application or library"), "{e}");
        let e = ChartMeta::parse("apiVersion: v3\nname: a\nversion: 1.0.0\n", "x").unwrap_err();
        assert!(e.to_string().contains("v3"), "{e}");
        let e = ChartMeta::parse("name: a\nname: b\nversion: 1.0.0\n", "x").unwrap_err();
        assert!(e.to_string().contains("Chart.yaml"), "{e}");
    }

    #[test]
    fn config_json_has_helm_key_order_and_omissions() {
        let text = "apiVersion: v2\nname: demo\nversion: 1.0\ndescription: \"A\\tchart\"\nappVersion: 2.0\nannotations:\n  z: last\n  a: first\nmaintainers:\n  - name: Ann\n    email: ann@example.com\nunknownKey: ignored\n";
        let m = ChartMeta::parse(text, "demo").unwrap();
        let json = String::from_utf8(m.config_json()).unwrap();
        assert_eq!(
            json,
            r#"{"name":"demo","version":"1.0","description":"A chart","maintainers":[{"name":"Ann","email":"ann@example.com"}],"apiVersion":"v2","appVersion":"2.0","annotations":{"a":"first","z":"last"}}"#
        );
    }

    #[test]
    fn rewrite_replaces_one_field_and_keeps_the_rest() {
        let text = "# top comment\napiVersion: v2\nname: demo\nversion: 0.1.0 # dev\n\n# app\nappVersion: |\n  1.0\ndescription: x\n";
        let out = rewrite_field(text, "version", "1.4.2+build", "demo").unwrap();
        assert_eq!(
            out,
            "# top comment\napiVersion: v2\nname: demo\nversion: \"1.4.2+build\"\n\n# app\nappVersion: |\n  1.0\ndescription: x\n"
        );
        let out = rewrite_field(&out, "appVersion", "2.0", "demo").unwrap();
        assert!(
            out.contains("\n# app\nappVersion: \"2.0\"\ndescription: x\n"),
            "{out}"
        );
        let added = rewrite_field("name: a\nversion: 1.0.0", "appVersion", "3", "a").unwrap();
        assert_eq!(added, "name: a\nversion: 1.0.0\nappVersion: \"3\"\n");
        assert!(rewrite_field("{name: a, version: 1}", "version", "2", "a").is_err());
    }
}
