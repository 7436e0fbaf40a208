//! Sync config files: YAML (so JSON too) read with line numbers; every problem (unknown keys,
//! wrong types, bad references, regexes or ranges) is reported as `file:line:column` before any
//! request is sent.
//!
//! ```yaml
//! limits: {mirror.internal: 8}            # blob transfers in flight per registry
//! sync:
//!   - source: registry.example.com/team   # registry[/namespace]
//!     repositories: [api, web]            # names below the namespace; "*" patterns use the catalog
//!     destination: mirror.internal/team   # registry[/prefix], or oci:DIR / oci-archive:DIR
//!     mapping: {web: frontend}            # optional: another path below the prefix
//!     tags:                               # no tags: every tag; a list: exactly these
//!       allow: ['^1\.']                   # regexes; a tag must match one
//!       deny: ['-rc']                     # and none of these
//!       semver: '>=1.2 <2'                # tags that read as versions in this range
//!       latest: 5                         # then only the newest N by version
//!       digests: [sha256:...]             # manifests copied by digest as well (untagged)
//!     platforms: [linux/amd64]            # default: all
//!   - images: [registry.example.com/base/alpine:3.20]   # explicit images (tag or digest)
//!     destination: mirror.internal/base
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use marked_yaml::Spanned;
use regex::Regex;
use serde::de::{self, value::MapAccessDeserializer, value::SeqAccessDeserializer, Visitor};
use serde::Deserialize;

use super::error::SyncError;
use super::filter::{parse_range, TagFilter};
use super::{Destination, DestinationSpec, SourceSpec, SyncEntry, SyncPlan};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Platform;
use crate::promote::plan::{read_yaml, Position};
use crate::promote::PlanProblem;
use crate::reference::{is_valid_tag, ImageRef, LayoutKind, RegistryRef};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    limits: HashMap<Spanned<String>, Spanned<usize>>,
    sync: Option<Spanned<Vec<Spanned<EntryFile>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    source: Option<Spanned<String>>,
    repositories: Option<Spanned<Vec<Spanned<String>>>>,
    images: Option<Spanned<Vec<Spanned<String>>>>,
    destination: Spanned<String>,
    #[serde(default)]
    mapping: HashMap<Spanned<String>, Spanned<String>>,
    tags: Option<Spanned<TagsEntry>>,
    #[serde(default)]
    platforms: Vec<Spanned<String>>,
    /// Copy signatures, SBOMs and attestations too (default: the command's, on).
    referrers: Option<Spanned<bool>>,
    /// Only referrers of these artifactTypes (implies `referrers: true`).
    #[serde(rename = "referrers-type")]
    referrers_type: Option<Vec<Spanned<String>>>,
}

/// `tags:` as a list (exact names and digests) or a mapping of filters.
#[derive(Debug)]
enum TagsEntry {
    List(Vec<Spanned<String>>),
    Filter(Box<FilterFile>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterFile {
    exact: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    semver: Option<Spanned<String>>,
    latest: Option<Spanned<usize>>,
    #[serde(default)]
    digests: Vec<Spanned<String>>,
}

impl<'de> Deserialize<'de> for TagsEntry {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TagsEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a list of tags, or a mapping of allow/deny/semver/latest/exact/digests",
                )
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> std::result::Result<TagsEntry, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(a)).map(TagsEntry::List)
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                a: A,
            ) -> std::result::Result<TagsEntry, A::Error> {
                FilterFile::deserialize(MapAccessDeserializer::new(a))
                    .map(|f| TagsEntry::Filter(Box::new(f)))
            }
        }
        d.deserialize_any(V)
    }
}

impl SyncPlan {
    /// Reads and checks a sync config file.
    pub fn load(path: &Path) -> Result<SyncPlan> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::from(SyncError::Config {
                file: file.clone(),
                problems: vec![Position::default().problem(format!("cannot read the config: {e}"))],
            })
        })?;
        SyncPlan::parse(&file, &text)
    }

    /// Checks config text; `file` names it in problems and entry labels.
    pub fn parse(file: &str, text: &str) -> Result<SyncPlan> {
        let fail = |problems| {
            Error::from(SyncError::Config {
                file: file.to_string(),
                problems,
            })
        };
        let parsed: ConfigFile = read_yaml(text, "a sync config is a mapping with a `sync:` list")
            .map_err(|p| fail(vec![p]))?;
        let mut x = Checker {
            problems: Vec::new(),
        };
        let plan = x.plan(file, &parsed);
        if x.problems.is_empty() {
            return Ok(plan);
        }
        x.problems.sort_by_key(|p| (p.line, p.column));
        Err(fail(x.problems))
    }
}

struct Checker {
    problems: Vec<PlanProblem>,
}

impl Checker {
    fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Position::at(at).problem(message));
    }

    fn plan(&mut self, file: &str, f: &ConfigFile) -> SyncPlan {
        let mut entries = Vec::new();
        match &f.sync {
            None => self.problems.push(
                Position { line: 1, column: 1 }
                    .problem("a sync config lists its entries under `sync:`"),
            ),
            Some(s) if s.is_empty() => self.problem(s, "`sync:` has no entries"),
            Some(s) => {
                for e in s.iter() {
                    let label = format!("{file}:{}", Position::at(e).line);
                    if let Some(entry) = self.entry(e, label) {
                        entries.push(entry);
                    }
                }
            }
        }
        let mut limits: Vec<(String, usize)> =
            f.limits.iter().map(|(k, v)| (k.to_string(), **v)).collect();
        limits.sort();
        SyncPlan { entries, limits }
    }

    fn entry(&mut self, e: &Spanned<EntryFile>, label: String) -> Option<SyncEntry> {
        let source = self.source(e);
        let destination = self.destination(e);
        let tags = match &e.tags {
            None => Some(TagFilter::default()),
            Some(t) if e.images.is_some() => {
                self.problem(
                    t,
                    "`images:` name their own tags or digests: no `tags:` with them",
                );
                None
            }
            Some(t) => self.tags(t),
        };
        let mut platforms = Vec::new();
        for p in &e.platforms {
            match p.parse::<Platform>() {
                Ok(p) => platforms.push(p),
                Err(m) => self.problem(p, m),
            }
        }
        let referrers = match (&e.referrers, &e.referrers_type) {
            (Some(on), Some(_)) if !**on => {
                self.problem(on, "`referrers: false` with `referrers-type:`: choose one");
                None
            }
            (_, Some(types)) => Some(crate::referrers::ReferrerOptions {
                enabled: true,
                artifact_types: types.iter().map(|t| t.to_string()).collect(),
            }),
            (Some(on), None) => Some(match **on {
                true => crate::referrers::ReferrerOptions::all(),
                false => crate::referrers::ReferrerOptions::none(),
            }),
            (None, None) => None,
        };
        Some(SyncEntry {
            label,
            source: source?,
            destination: destination?,
            tags: tags?,
            platforms,
            referrers,
        })
    }

    fn source(&mut self, e: &Spanned<EntryFile>) -> Option<SourceSpec> {
        match (&e.source, &e.repositories, &e.images) {
            (Some(s), Some(repos), None) => {
                let Some((registry, namespace)) = split_registry(s) else {
                    self.problem(s, format!("source {:?}: expected registry[/namespace], e.g. registry.example.com/team", s.as_str()));
                    return None;
                };
                if repos.is_empty() {
                    self.problem(
                        repos,
                        "`repositories:` is empty (\"*\": every repository under the namespace)",
                    );
                    return None;
                }
                let mut ok = true;
                for r in repos.iter() {
                    if !valid_pattern(r) {
                        self.problem(r, format!("{:?} is not a repository name or pattern (lowercase letters, digits, . _ - /, and *)", r.as_str()));
                        ok = false;
                    }
                }
                ok.then(|| SourceSpec::Repositories {
                    registry,
                    namespace,
                    repositories: repos.iter().map(|r| r.to_string()).collect(),
                })
            }
            (None, None, Some(images)) => {
                if images.is_empty() {
                    self.problem(images, "`images:` is empty");
                    return None;
                }
                let mut refs = Vec::new();
                for i in images.iter() {
                    match i.parse::<ImageRef>() {
                        Ok(ImageRef::Registry(r)) => refs.push(r),
                        Ok(ImageRef::Layout(_)) => self.problem(
                            i,
                            "sync reads images from registries; a layout is not a source",
                        ),
                        Err(err) => self.problem(i, err.to_string()),
                    }
                }
                (refs.len() == images.len()).then_some(SourceSpec::Images(refs))
            }
            (Some(s), None, None) => {
                self.problem(s, "a `source:` needs `repositories:` (names, or \"*\")");
                None
            }
            (None, Some(r), _) => {
                self.problem(r, "`repositories:` needs a `source:` registry[/namespace]");
                None
            }
            (Some(s), _, Some(_)) => {
                self.problem(
                    s,
                    "an entry has either `source:` with `repositories:`, or `images:`",
                );
                None
            }
            (None, None, None) => {
                self.problem(
                    e,
                    "an entry needs `source:` with `repositories:`, or `images:`",
                );
                None
            }
        }
    }

    fn destination(&mut self, e: &EntryFile) -> Option<DestinationSpec> {
        let d = &e.destination;
        let local = |prefix: &str, kind| {
            d.strip_prefix(prefix).map(|dir| Destination::Local {
                dir: PathBuf::from(dir),
                kind,
            })
        };
        let base = match local("oci:", LayoutKind::Directory)
            .or_else(|| local("oci-archive:", LayoutKind::Archive))
        {
            Some(Destination::Local { dir, .. }) if dir.as_os_str().is_empty() => {
                self.problem(d, "the destination names no directory");
                return None;
            }
            Some(local) => local,
            None => match split_registry(d) {
                Some((registry, prefix)) => Destination::Registry { registry, prefix },
                None => {
                    self.problem(d, format!("destination {:?}: expected registry[/prefix], oci:DIR or oci-archive:DIR", d.as_str()));
                    return None;
                }
            },
        };
        let mut mapping = std::collections::BTreeMap::new();
        for (k, v) in &e.mapping {
            let to = v.trim_matches('/');
            if to.is_empty() || !valid_pattern(v) || to.contains('*') {
                self.problem(
                    v,
                    format!(
                        "mapping {:?}: {:?} is not a repository path",
                        k.as_str(),
                        v.as_str()
                    ),
                );
                continue;
            }
            mapping.insert(k.trim_matches('/').to_string(), to.to_string());
        }
        Some(DestinationSpec { base, mapping })
    }

    fn tags(&mut self, t: &Spanned<TagsEntry>) -> Option<TagFilter> {
        let mut f = TagFilter::default();
        let before = self.problems.len();
        match &**t {
            TagsEntry::List(list) => {
                if list.is_empty() {
                    self.problem(t, "the tag list is empty (leave `tags:` out for every tag)");
                }
                let (exact, digests) = self.names(list);
                f.exact = Some(exact);
                f.digests = digests;
            }
            TagsEntry::Filter(ff) => {
                if let Some(list) = &ff.exact {
                    let (exact, digests) = self.names(list);
                    f.exact = Some(exact);
                    f.digests = digests;
                }
                f.allow = self.regexes(&ff.allow);
                f.deny = self.regexes(&ff.deny);
                if let Some(s) = &ff.semver {
                    match parse_range(s) {
                        Ok(r) => f.semver = r,
                        Err(m) => self.problem(s, format!("semver: {m}")),
                    }
                }
                if let Some(n) = &ff.latest {
                    if **n == 0 {
                        self.problem(n, "latest: 0 would select nothing");
                    }
                    f.latest = Some(**n);
                }
                for d in &ff.digests {
                    match d.parse::<Digest>() {
                        Ok(x) => f.digests.push(x),
                        Err(err) => self.problem(d, format!("digests: {err}")),
                    }
                }
            }
        }
        (self.problems.len() == before).then_some(f)
    }

    /// An exact list: tag names, and `sha256:...` digests.
    fn names(&mut self, list: &[Spanned<String>]) -> (Vec<String>, Vec<Digest>) {
        let (mut tags, mut digests) = (Vec::new(), Vec::new());
        for t in list {
            if t.contains(':') {
                match t.parse::<Digest>() {
                    Ok(d) => digests.push(d),
                    Err(err) => self.problem(t, err.to_string()),
                }
            } else if is_valid_tag(t) {
                if !tags.iter().any(|x: &String| x == t.as_str()) {
                    tags.push(t.to_string());
                }
            } else {
                self.problem(t, format!("{:?} is not a valid tag", t.as_str()));
            }
        }
        (tags, digests)
    }

    fn regexes(&mut self, list: &[Spanned<String>]) -> Vec<Regex> {
        list.iter()
            .filter_map(|r| {
                Regex::new(r)
                    .map_err(|e| self.problem(r, format!("regex {:?}: {e}", r.as_str())))
                    .ok()
            })
            .collect()
    }
}

/// `registry[/path]` → (registry, path without slashes at the ends); `None` when the first
/// component is not a registry host (a `.` or `:` in it, or `localhost`).
fn split_registry(s: &str) -> Option<(String, String)> {
    let s = s
        .strip_prefix("docker://")
        .unwrap_or(s)
        .trim_end_matches('/');
    let (host, path) = s.split_once('/').unwrap_or((s, ""));
    let is_host = host.contains(['.', ':']) || host == "localhost";
    let path_ok = path.is_empty() || valid_pattern(path) && !path.contains('*');
    (is_host && path_ok).then(|| (host.to_string(), path.trim_matches('/').to_string()))
}

fn valid_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/*".contains(&b))
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters (slashes too).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The registry reference of one repository of a source.
pub(super) fn repository_ref(registry: &str, repository: &str) -> RegistryRef {
    RegistryRef {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag: None,
        digest: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<PlanProblem> {
        match SyncPlan::parse("s.yaml", text).unwrap_err() {
            Error::Sync(s) => match *s {
                SyncError::Config { problems, .. } => problems,
                e => panic!("{e}"),
            },
            e => panic!("{e}"),
        }
    }

    #[test]
    fn the_issue_example_parses() {
        let p = SyncPlan::parse(
            "s.yaml",
            "limits: {mirror.internal: 8}\nsync:\n  - source: registry.example.com/team\n    repositories: [api, web]\n    destination: mirror.internal/team\n    tags:\n      allow: ['^1\\.']\n      deny: ['-rc']\n      semver: '>=1.2 <2'\n      latest: 5\n    platforms: [linux/amd64]\n  - images: [registry.example.com/base/alpine:3.20]\n    destination: mirror.internal/base\n  - source: localhost:5000\n    repositories: [\"team/*\"]\n    destination: oci:/tmp/mirror\n    tags: [latest, 'sha256:0000000000000000000000000000000000000000000000000000000000000000']\n",
        )
        .unwrap();
        assert_eq!(p.limits, vec![("mirror.internal".to_string(), 8)]);
        assert_eq!(p.entries.len(), 3);
        assert_eq!(p.entries[0].label, "s.yaml:3");
        let f = &p.entries[0].tags;
        assert_eq!((f.allow.len(), f.deny.len(), f.latest), (1, 1, Some(5)));
        assert_eq!(p.entries[0].platforms.len(), 1);
        assert!(
            matches!(&p.entries[1].source, SourceSpec::Images(i) if i[0].repository == "base/alpine")
        );
        let SourceSpec::Repositories { namespace, .. } = &p.entries[2].source else {
            panic!()
        };
        assert_eq!(namespace, "");
        assert_eq!(p.entries[2].tags.exact, Some(vec!["latest".to_string()]));
        assert_eq!(p.entries[2].tags.digests.len(), 1);
        assert!(matches!(
            p.entries[2].destination.base,
            Destination::Local { .. }
        ));
        let j = SyncPlan::parse("s.json", "{\"sync\": [\n {\"source\": \"r.io/a\", \"repositories\": [\"*\"],\n  \"destination\": \"m.io\"}]}").unwrap();
        assert_eq!(j.entries[0].label, "s.json:2");
    }

    #[test]
    fn problems_point_at_their_line() {
        let head =
            "sync:\n  - source: r.io/team\n    repositories: [api]\n    destination: m.io/team\n";
        let p = problems(&format!("{head}    tagz: [x]\n"));
        assert_eq!((p[0].line, p[0].column), (5, 5), "{p:?}");
        assert!(p[0].message.contains("tagz"), "{p:?}");
        let p = problems(&format!(
            "{head}    tags:\n      allow: ['(']\n      semver: 'banana'\n"
        ));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].line, p[1].line), (6, 7), "{p:?}");
        let p = problems(&format!("{head}    tags: {{latets: 3}}\n"));
        assert_eq!(p[0].line, 5, "{p:?}");
        assert!(p[0].message.contains("latets"), "{p:?}");
        let p =
            problems("sync:\n  - source: team\n    repositories: [api]\n    destination: m.io\n");
        assert_eq!(p[0].line, 2, "{p:?}");
        let p = problems(
            "sync:\n  - images: [r.io/a:1]\n    destination: m.io\n    platforms: [linux]\n",
        );
        assert_eq!(p[0].line, 4, "{p:?}");
        let p = problems("sync:\n  - source: r.io/a\n    destination: m.io\n");
        assert!(p[0].message.contains("repositories"), "{p:?}");
        let p = problems("limits: {m.io: many}\nsync: []\n");
        assert_eq!(p[0].line, 1, "{p:?}");
        let p = problems("sync: []\n");
        assert!(p[0].message.contains("no entries"), "{p:?}");
        let p = problems("- a\n");
        assert!(p[0].message.contains("mapping"), "{p:?}");
        let p =
            problems("sync:\n  - source: r.io/a\n    repositories: [Bad]\n    destination: m.io\n");
        assert_eq!((p[0].line, p[0].column), (3, 20), "{p:?}");
    }

    #[test]
    fn globs_match() {
        assert!(glob_match("*", "team/api"));
        assert!(glob_match("team/*", "team/api"));
        assert!(!glob_match("team/*", "other/api"));
        assert!(glob_match("r0*", "r07"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxc"));
        assert!(glob_match("api", "api") && !glob_match("api", "apis"));
    }
}
