//! Tag selection of a sync entry: an exact list, regexes to allow and deny, a semver range, the
//! newest N by semver, and digests pinned outright.
//!
//! Order: the candidates are the exact list when one is given (the source's tags are then not
//! listed), else every source tag; a candidate must match one `allow` regex (when there are
//! any) and no `deny` regex; with `semver`, it must read as a version in one of the ranges;
//! with `latest: N`, only the N newest versions stay. Tags read as versions leniently:
//! `v1.2`, `1.2` and `1.2.0` are all 1.2.0; pre-releases match a range only where the range
//! names a pre-release of the same version (as in Cargo and npm).

use regex::Regex;
use semver::{Version, VersionReq};

use crate::digest::Digest;

/// How an entry picks its tags. The default selects every tag.
#[derive(Clone, Debug, Default)]
pub struct TagFilter {
    /// Only these tags (no tag list is read).
    pub exact: Option<Vec<String>>,
    pub allow: Vec<Regex>,
    pub deny: Vec<Regex>,
    /// Alternatives (`||`): a tag must satisfy one.
    pub semver: Vec<VersionReq>,
    pub latest: Option<usize>,
    /// Manifests copied by digest, untagged.
    pub digests: Vec<Digest>,
}

/// The outcome of a selection over a repository's tags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selected {
    /// Tags to sync, in source order.
    pub tags: Vec<String>,
    /// Tags the filters leave out.
    pub left: Vec<String>,
}

impl TagFilter {
    /// Whether the source's tag list has to be read.
    pub fn needs_list(&self) -> bool {
        self.exact.is_none()
    }

    /// Selects among `tags` (the source's tags, or the exact list).
    pub fn select(&self, all: &[String]) -> Selected {
        let candidates: Vec<&String> = match &self.exact {
            Some(exact) => exact.iter().collect(),
            None => all.iter().collect(),
        };
        let mut chosen: Vec<(&String, Option<Version>)> = Vec::new();
        for t in candidates {
            if !self.allow.is_empty() && !self.allow.iter().any(|r| r.is_match(t)) {
                continue;
            }
            if self.deny.iter().any(|r| r.is_match(t)) {
                continue;
            }
            let version = version_of(t);
            if !self.semver.is_empty() {
                match &version {
                    Some(v) if self.semver.iter().any(|r| r.matches(v)) => {}
                    _ => continue,
                }
            }
            if self.latest.is_some() && version.is_none() {
                continue;
            }
            chosen.push((t, version));
        }
        if let Some(n) = self.latest {
            let mut by_version: Vec<(&String, Option<Version>)> = chosen.clone();
            by_version.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            by_version.truncate(n);
            chosen.retain(|(t, _)| by_version.iter().any(|(k, _)| k == t));
        }
        let tags: Vec<String> = chosen.into_iter().map(|(t, _)| t.clone()).collect();
        let left = match &self.exact {
            Some(_) => Vec::new(),
            None => all.iter().filter(|t| !tags.contains(t)).cloned().collect(),
        };
        Selected { tags, left }
    }
}

/// A tag read as a version: `[v]MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]`, missing parts 0.
pub fn version_of(tag: &str) -> Option<Version> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(v) = Version::parse(t) {
        return Some(v);
    }
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |s: &&str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if parts.is_empty() || parts.len() > 3 || !parts.iter().all(numeric) {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    Version::parse(&format!("{full}{rest}")).ok()
}

/// Parses a range as users write it: comparators separated by spaces or commas
/// (`>=1.2 <2`, `>= 1.2, < 2`), alternatives by `||`.
pub fn parse_range(text: &str) -> Result<Vec<VersionReq>, String> {
    let mut out = Vec::new();
    for alt in text.split("||") {
        let mut comparators: Vec<String> = Vec::new();
        let mut pending_op = String::new();
        for tok in alt.split([' ', ',']).filter(|t| !t.is_empty()) {
            if tok.bytes().all(|b| b"<>=~^".contains(&b)) {
                pending_op.push_str(tok);
                continue;
            }
            comparators.push(format!("{}{tok}", std::mem::take(&mut pending_op)));
        }
        if !pending_op.is_empty() || comparators.is_empty() {
            return Err(format!("{text:?} is not a version range (e.g. '>=1.2 <2')"));
        }
        let req = VersionReq::parse(&comparators.join(", "))
            .map_err(|e| format!("{text:?} is not a version range (e.g. '>=1.2 <2'): {e}"))?;
        out.push(req);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    const ALL: &[&str] = &[
        "0.9.0",
        "1.0.0",
        "1.1.0",
        "1.2.0",
        "1.2.1-rc.1",
        "1.3.0",
        "2.0.0",
        "v2.1",
        "latest",
        "dev-abc",
    ];

    #[test]
    fn each_filter_selects_what_it_says() {
        let all = tags(ALL);
        let sel = |f: TagFilter| f.select(&all).tags;
        assert_eq!(sel(TagFilter::default()), all);
        let exact = TagFilter {
            exact: Some(tags(&["latest", "1.0.0"])),
            ..TagFilter::default()
        };
        assert_eq!(sel(exact.clone()), tags(&["latest", "1.0.0"]));
        assert!(exact.select(&all).left.is_empty() && !exact.needs_list());
        let allow = TagFilter {
            allow: vec![Regex::new(r"^1\.").unwrap()],
            deny: vec![Regex::new("-rc").unwrap()],
            ..TagFilter::default()
        };
        assert_eq!(sel(allow), tags(&["1.0.0", "1.1.0", "1.2.0", "1.3.0"]));
        let range = TagFilter {
            semver: parse_range(">=1.2 <2").unwrap(),
            ..TagFilter::default()
        };
        let r = range.select(&all);
        assert_eq!(r.tags, tags(&["1.2.0", "1.3.0"]));
        assert_eq!(r.left.len(), ALL.len() - 2);
        let latest = TagFilter {
            latest: Some(3),
            ..TagFilter::default()
        };
        assert_eq!(sel(latest), tags(&["1.3.0", "2.0.0", "v2.1"]));
        let both = TagFilter {
            semver: parse_range("<2").unwrap(),
            latest: Some(2),
            ..TagFilter::default()
        };
        assert_eq!(sel(both), tags(&["1.2.0", "1.3.0"]));
    }

    #[test]
    fn versions_and_ranges_read_leniently() {
        assert_eq!(version_of("v1.2"), Some(Version::new(1, 2, 0)));
        assert_eq!(version_of("3"), Some(Version::new(3, 0, 0)));
        assert_eq!(version_of("1.2.1-rc.1").unwrap().pre.as_str(), "rc.1");
        assert_eq!(version_of("latest"), None);
        assert_eq!(version_of("1.2.3.4"), None);
        let alts = parse_range(">= 1.2, < 2 || >=4").unwrap();
        assert_eq!(alts.len(), 2);
        assert!(alts[1].matches(&Version::new(4, 1, 0)));
        assert!(parse_range(">=").is_err());
        assert!(parse_range("banana").is_err());
    }
}
