//! Plan files: YAML (so JSON too) read with line numbers; unknown keys, wrong types and
//! duplicate keys are problems reported as `file:line:column` before any request is sent.
//!
//! ```yaml
//! vars:                       # template values; --var NAME=VALUE overrides
//!   version: 1.4.2
//! defaults:
//!   registry: prod.example.com          # destination registry
//!   prefix: team                        # destination repository prefix
//!   tags: ["{version}", "{major}.{minor}", latest]
//!   overwrite: [latest]                 # tags that may move without --force ("*": any)
//!   referrers: true                     # signatures/SBOMs travel too (default true)
//!   referrers-type: [application/vnd.dev.sigstore.bundle.v0.3+json]   # only these types
//! limits:                     # blob transfers in flight per registry
//!   prod.example.com: 8
//! images:
//!   - source: registry.example.com/team/api:feature-x-3f2a1c
//!     destination: api                  # under registry/prefix; or a full reference
//!     expect-digest: sha256:...         # refuse unless the source is this digest
//!     tags: ["{version}"]               # replaces defaults.tags
//!     overwrite: []                     # replaces defaults.overwrite
//!     vars: {version: 2.0.0}            # per-image values
//!     referrers: false                  # replaces defaults.referrers (so does referrers-type)
//! charts:                     # checked with the images, pushed after every tag
//!   - path: deploy/chart                # a chart directory or a .tgz (relative to the plan)
//!     destination: https://charts.example.com/team   # ChartMuseum, or oci://REGISTRY/PATH
//!     version: "{version}"              # rewrites Chart.yaml's version (directories only)
//!     app-version: "{version}"          # rewrites appVersion (directories only)
//!     prov: dist/api-1.4.2.tgz.prov     # provenance (default: beside a .tgz)
//! ```

use std::collections::{BTreeMap, HashMap};

use marked_yaml::{LoadError, LoaderOptions, Marker, Node, Spanned};
use serde::Deserialize;

use super::error::{PlanProblem, PromoteError};
use crate::error::Error;

/// A plan file as written (templates not yet rendered, references not yet parsed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlanFile {
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub limits: HashMap<Spanned<String>, Spanned<usize>>,
    pub images: Option<Spanned<Vec<Spanned<ImageEntry>>>>,
    #[serde(default)]
    pub charts: Vec<Spanned<ChartEntry>>,
}

/// `defaults:` of a plan file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct Defaults {
    pub registry: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    pub tags: Option<Vec<Spanned<String>>>,
    pub overwrite: Option<Vec<Spanned<String>>>,
    pub referrers: Option<Spanned<bool>>,
    pub referrers_type: Option<Vec<Spanned<String>>>,
}

/// One entry of `images:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ImageEntry {
    pub source: Spanned<String>,
    pub destination: Option<Spanned<String>>,
    pub tags: Option<Vec<Spanned<String>>>,
    pub expect_digest: Option<Spanned<String>>,
    pub overwrite: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub vars: BTreeMap<String, Spanned<String>>,
    pub referrers: Option<Spanned<bool>>,
    pub referrers_type: Option<Vec<Spanned<String>>>,
}

/// One entry of `charts:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ChartEntry {
    pub path: Spanned<String>,
    pub destination: Spanned<String>,
    pub version: Option<Spanned<String>>,
    pub app_version: Option<Spanned<String>>,
    pub prov: Option<Spanned<String>>,
}

/// Where something is in a plan file (1-based).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    fn of(m: Option<&Marker>) -> Position {
        m.map(|m| Position {
            line: m.line(),
            column: m.column(),
        })
        .unwrap_or(Position { line: 1, column: 1 })
    }

    /// The start of a spanned value.
    pub(crate) fn at<T>(s: &Spanned<T>) -> Position {
        Self::of(s.span().start())
    }

    pub(crate) fn problem(self, message: impl Into<String>) -> PlanProblem {
        PlanProblem {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// Parses plan text; `file` names it in problems.
pub(super) fn parse(file: &str, text: &str) -> Result<PlanFile, Error> {
    read_yaml(
        text,
        "a plan is a mapping with an `images:` list (and perhaps `charts:`)",
    )
    .map_err(|p| {
        Error::from(PromoteError::Plan {
            file: file.to_string(),
            problems: vec![p],
        })
    })
}

/// Reads a YAML (or JSON) mapping into `T`: unknown keys, wrong types and duplicate keys become
/// one problem at its `line:column`. `not_a_mapping` is the message when the top level is not a
/// mapping. Shared by every file ferry reads (plans, sync configs).
pub(crate) fn read_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    not_a_mapping: &str,
) -> Result<T, PlanProblem> {
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .toplevel_mapping();
    let node = marked_yaml::parse_yaml_with_options(0, text, options)
        .map_err(|e| load_problem(&e, not_a_mapping))?;
    marked_yaml::from_node::<T>(&node).map_err(|e| {
        let path = e.path().map(str::to_string);
        let pos = path
            .as_deref()
            .and_then(|p| locate(&node, p))
            .unwrap_or_else(|| Position::of(e.start_mark().as_ref()));
        pos.problem(e.to_string())
    })
}

fn load_problem(e: &LoadError, not_a_mapping: &str) -> PlanProblem {
    let marker = match e {
        LoadError::TopLevelMustBeMapping(m)
        | LoadError::TopLevelMustBeSequence(m)
        | LoadError::UnexpectedAnchor(m)
        | LoadError::MappingKeyMustBeScalar(m)
        | LoadError::UnexpectedTag(m)
        | LoadError::ScanError(m, _) => Some(*m),
        LoadError::DuplicateKey(d) => d.key.span().start().copied(),
    };
    let text = e.to_string();
    // The loader's message starts with "line:column: "; keep only what follows.
    let message = match text.split_once(": ") {
        Some((pos, rest)) if pos.bytes().all(|b| b.is_ascii_digit() || b == b':') => rest,
        _ => text.as_str(),
    };
    let message = if matches!(e, LoadError::TopLevelMustBeMapping(_)) {
        not_a_mapping.to_string()
    } else {
        message.to_string()
    };
    Position::of(marker.as_ref()).problem(message)
}

/// The position of a serde path (`images[3].tagz`) in the node tree: the key itself when the
/// last step names a key (so an unknown key points at its own line).
fn locate(root: &Node, path: &str) -> Option<Position> {
    let mut node = root;
    let mut pos = None;
    let mut rest = path;
    while !rest.is_empty() {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        if let Some(after) = rest.strip_prefix('[') {
            let (index, tail) = after.split_once(']')?;
            node = node.as_sequence()?.get(index.parse::<usize>().ok()?)?;
            pos = Some(Position::of(node.span().start()));
            rest = tail;
            continue;
        }
        let map = node.as_mapping()?;
        // Keys may contain dots (registry hosts): take the longest key the path starts with.
        let (key, value) = map
            .iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                rest.starts_with(k)
                    && matches!(rest.as_bytes().get(k.len()), None | Some(b'.' | b'['))
            })
            .max_by_key(|(k, _)| k.as_str().len())
            .map(|(k, v)| (k.clone(), v))
            .or_else(|| {
                // An unknown key: serde names it, the mapping still holds it.
                let name = rest.split(['.', '[']).next()?;
                map.iter()
                    .find(|(k, _)| k.as_str() == name)
                    .map(|(k, v)| (k.clone(), v))
            })?;
        pos = Some(Position::of(key.span().start()));
        rest = &rest[key.as_str().len()..];
        node = value;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> PlanProblem {
        match parse("p.yaml", text).unwrap_err() {
            Error::Promote(p) => match *p {
                PromoteError::Plan { mut problems, .. } => problems.remove(0),
                e => panic!("{e}"),
            },
            e => panic!("{e}"),
        }
    }

    #[test]
    fn yaml_and_json_parse_with_lines() {
        let p = parse(
            "p.yaml",
            "images:\n  - source: a/b:1\n    tags: [x]\n  - source: c\n",
        )
        .unwrap();
        let images = p.images.unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(Position::at(&images[1]).line, 4);
        let j = parse("p.json", "{\"images\": [\n {\"source\": \"a/b:1\", \"tags\": [\"x\"]},\n {\"source\": \"q\", \"expect-digest\": \"sha256:00\"}]}").unwrap();
        assert_eq!(Position::at(&j.images.unwrap()[1].source).line, 3);
    }

    #[test]
    fn problems_point_at_their_line() {
        let p = problem("images:\n  - source: a\n    tagz: [x]\n");
        assert_eq!((p.line, p.column), (3, 5), "{p:?}");
        assert!(p.message.contains("tagz"), "{p:?}");
        let p = problem("defaults:\n  registry: r\nimages: []\nbogus: 1\n");
        assert_eq!(p.line, 4, "{p:?}");
        let p = problem("images:\n  - destination: x\n");
        assert!(p.message.contains("missing field `source`"), "{p:?}");
        assert_eq!(p.line, 2);
        let p = problem("limits:\n  prod.example.com: many\nimages: []\n");
        assert_eq!(p.line, 2, "{p:?}");
        let p = problem("images: []\nimages: []\n");
        assert_eq!(p.line, 2, "{p:?}");
        assert!(p.message.contains("Duplicate key"), "{p:?}");
        let p = problem("images:\n  - source: a\n  bad: [\n");
        assert_eq!(p.line, 3, "{p:?}");
        let p = problem(
            "images: []\ncharts:\n  - path: c\n    destination: oci://r/x\n    verison: \"1\"\n",
        );
        assert_eq!((p.line, p.column), (5, 5), "{p:?}");
        assert!(p.message.contains("verison"), "{p:?}");
        let p = problem("charts:\n  - destination: oci://r/x\n");
        assert!(p.message.contains("missing field `path`"), "{p:?}");
        assert_eq!(p.line, 2, "{p:?}");
        let p = problem("- a\n");
        assert!(p.message.contains("mapping"), "{p:?}");
    }
}
