//! OCI 1.1 referrers (signatures, SBOMs, attestations: manifests whose `subject` names an
//! image): their descriptors, the `sha256-<hex>` fallback tag schema, cosign's legacy tags, and
//! the options that say which referrers travel with a copy.
//!
//! Discovery (per store) is [`Store::referrers`](crate::store::Store::referrers); the walk that
//! follows referrers of referrers and copies them is in [`crate::copy`].

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::manifest::{Descriptor, RawManifest, OCI_INDEX};

/// cosign's legacy tag suffixes: `sha256-<hex>.sig`, `.att`, `.sbom`.
pub const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// cosign v3's signature bundles, stored as referrers.
pub const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// One referrer as a referrers list (the API's answer, or the fallback index) names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referrer {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Referrer {
    /// `m`'s entry when `m` refers to `subject` and has one of `types` (any, when empty): how
    /// a store without the referrers API finds referrers among the manifests it holds.
    pub fn of_subject(m: &RawManifest, subject: &Digest, types: &[String]) -> Option<Referrer> {
        let refers = m.subject().is_some_and(|s| &s.digest == subject);
        refers.then(|| Referrer::of(m)).filter(|r| wanted(types, r))
    }

    /// The entry a referrers list holds for `m`, as the distribution spec asks: its
    /// `artifactType`, else its config's media type; its annotations copied.
    pub fn of(m: &RawManifest) -> Referrer {
        let probe: Option<Probe> = serde_json::from_slice(&m.bytes).ok();
        let (artifact_type, annotations) = match probe {
            Some(p) => (
                p.artifact_type.or(p.config.map(|c| c.media_type)),
                p.annotations,
            ),
            None => (None, BTreeMap::new()),
        };
        Referrer {
            media_type: m.media_type.clone(),
            digest: m.digest.clone(),
            size: m.bytes.len() as u64,
            artifact_type,
            annotations,
        }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
        }
    }
}

/// The fallback tag of `subject`: `<alg>-<hex>`, the algorithm cut to 32 characters and the
/// hex to 64 (the distribution spec's tag schema).
pub fn fallback_tag(subject: &Digest) -> String {
    let alg: String = subject.algorithm().chars().take(32).collect();
    let hex: String = subject.hex().chars().take(64).collect();
    format!("{alg}-{hex}")
}

/// cosign's legacy tags for `subject`: `sha256-<hex>.sig`, `.att`, `.sbom`.
pub fn cosign_tags(subject: &Digest) -> Vec<String> {
    let base = fallback_tag(subject);
    COSIGN_SUFFIXES
        .iter()
        .map(|s| format!("{base}.{s}"))
        .collect()
}

/// Whether `tag` is one of the tags referrers live under: a fallback index tag
/// (`sha256-<hex>`) or a cosign legacy tag (`sha256-<hex>.sig|.att|.sbom`).
pub fn is_referrer_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = [".sig", ".att", ".sbom"]
        .iter()
        .find_map(|s| rest.strip_suffix(s))
        .unwrap_or(rest);
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Which referrers travel with a copy. Shared by `copy`, `promote` and plan files (and any
/// other bulk command), so every command reads the same flags and keys the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReferrerOptions {
    /// Discover and copy referrers (and cosign's legacy tags).
    pub enabled: bool,
    /// Only referrers of these `artifactType`s (empty: every type). Applies at every level of
    /// referrers of referrers, and to legacy tags (by their config's media type).
    pub artifact_types: Vec<String>,
}

impl ReferrerOptions {
    /// Referrers on, every type.
    pub fn all() -> Self {
        ReferrerOptions {
            enabled: true,
            artifact_types: Vec::new(),
        }
    }

    /// Referrers off.
    pub fn none() -> Self {
        ReferrerOptions::default()
    }

    /// Whether `r` passes the type filter.
    pub fn wants(&self, r: &Referrer) -> bool {
        wanted(&self.artifact_types, r)
    }
}

/// Whether `r` is one of `types` (every referrer when `types` is empty).
pub fn wanted(types: &[String], r: &Referrer) -> bool {
    types.is_empty()
        || r.artifact_type
            .as_deref()
            .is_some_and(|t| types.iter().any(|w| w == t))
}

/// The entries of a referrers index (the API's answer or a fallback tag's index); `None` when
/// the bytes are not an index with a `manifests` list.
pub fn parse_index(bytes: &[u8]) -> Option<Vec<Referrer>> {
    #[derive(Deserialize)]
    struct Index {
        manifests: Vec<Referrer>,
    }
    serde_json::from_slice::<Index>(bytes)
        .ok()
        .map(|i| i.manifests)
}

/// `existing` plus every entry of `new` whose digest it lacks (each entry kept as it was,
/// `artifactType` and annotations with it); `None` when nothing is new.
pub fn merge(existing: &[Referrer], new: &[Referrer]) -> Option<Vec<Referrer>> {
    let mut seen: HashSet<&Digest> = existing.iter().map(|r| &r.digest).collect();
    let mut out = existing.to_vec();
    for r in new {
        if seen.insert(&r.digest) {
            out.push(r.clone());
        }
    }
    (out.len() > existing.len()).then_some(out)
}

/// The fallback index listing `entries`, built with `oci-spec` types; keys sorted, so the same
/// entries always give the same bytes.
pub fn build_index(entries: &[Referrer]) -> RawManifest {
    use oci_spec::image::{DescriptorBuilder, ImageIndexBuilder, MediaType};
    use std::str::FromStr;
    let manifests: Vec<oci_spec::image::Descriptor> = entries
        .iter()
        .map(|r| {
            let mut b = DescriptorBuilder::default()
                .media_type(MediaType::from(r.media_type.as_str()))
                .digest(
                    oci_spec::image::Digest::from_str(&r.digest.to_string())
                        .expect("a parsed digest is valid"),
                )
                .size(r.size);
            if let Some(t) = &r.artifact_type {
                b = b.artifact_type(MediaType::from(t.as_str()));
            }
            if !r.annotations.is_empty() {
                b = b.annotations(
                    r.annotations
                        .clone()
                        .into_iter()
                        .collect::<std::collections::HashMap<_, _>>(),
                );
            }
            b.build().expect("every required descriptor field is set")
        })
        .collect();
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .expect("every required index field is set");
    // Through a `Value` (whose maps are sorted) so annotation order never varies.
    let value = serde_json::to_value(&index).expect("an index serialises");
    let bytes = serde_json::to_vec(&value).expect("an index serialises");
    RawManifest::new(bytes.into(), Some(OCI_INDEX)).expect("a built index parses")
}

/// What refers to one manifest, for `ferry referrers`.
#[derive(Clone, Debug, Serialize)]
pub struct Subject {
    pub digest: Digest,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The platform, for a manifest of an index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<crate::manifest::Platform>,
    pub referrers: Vec<Node>,
}

/// One referrer and what refers to it in turn.
#[derive(Clone, Debug, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub referrer: Referrer,
    /// The cosign legacy tag it was found under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub referrers: Vec<Node>,
}

/// Levels of referrers of referrers listed.
const MAX_TREE_DEPTH: usize = 8;

/// The referrers of `root` and of every manifest of its index (one level of entries), each
/// with its own referrers, and cosign's legacy tags; only `types` when not empty.
pub async fn tree(
    store: &dyn crate::store::Store,
    root: &RawManifest,
    types: &[String],
) -> crate::Result<Vec<Subject>> {
    let mut subjects = vec![Subject {
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        platform: None,
        referrers: Vec::new(),
    }];
    if let Ok(crate::manifest::Children::Index { manifests }) = root.children() {
        subjects.extend(manifests.into_iter().map(|d| Subject {
            digest: d.digest,
            media_type: d.media_type,
            platform: d.platform,
            referrers: Vec::new(),
        }));
    }
    let tags: HashSet<String> = store.list_tags().await?.into_iter().collect();
    for s in &mut subjects {
        s.referrers = nodes(store, &s.digest, types, &tags, 0).await?;
    }
    Ok(subjects)
}

fn nodes<'a>(
    store: &'a dyn crate::store::Store,
    subject: &'a Digest,
    types: &'a [String],
    tags: &'a HashSet<String>,
    depth: usize,
) -> futures::future::BoxFuture<'a, crate::Result<Vec<Node>>> {
    Box::pin(async move {
        if depth >= MAX_TREE_DEPTH {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for r in store.referrers(subject, types).await? {
            let below = nodes(store, &r.digest, types, tags, depth + 1).await?;
            out.push(Node {
                referrer: r,
                tag: None,
                referrers: below,
            });
        }
        for tag in cosign_tags(subject)
            .into_iter()
            .filter(|t| tags.contains(t))
        {
            let m = store
                .get_manifest(&crate::store::Target::Tag(tag.clone()))
                .await?;
            let r = Referrer::of(&m);
            if wanted(types, &r) {
                out.push(Node {
                    referrer: r,
                    tag: Some(tag),
                    referrers: Vec::new(),
                });
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_tags_are_recognised() {
        let d = Digest::of(b"x");
        assert!(is_referrer_tag(&fallback_tag(&d)));
        for t in cosign_tags(&d) {
            assert!(is_referrer_tag(&t), "{t}");
        }
        for t in [
            "latest",
            "sha256-abc",
            "sha256-",
            &format!("{}.txt", fallback_tag(&d)),
        ] {
            assert!(!is_referrer_tag(t), "{t}");
        }
    }
    use crate::manifest::OCI_MANIFEST;

    fn manifest(json: serde_json::Value) -> RawManifest {
        RawManifest::new(
            serde_json::to_vec(&json).unwrap().into(),
            Some(OCI_MANIFEST),
        )
        .unwrap()
    }

    #[test]
    fn entries_hoist_artifact_type_and_copy_annotations() {
        let cfg = Digest::of(b"{}");
        let sig = manifest(serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIGSTORE_BUNDLE,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg, "size": 2},
            "layers": [], "annotations": {"b": "2", "a": "1"}
        }));
        let r = Referrer::of(&sig);
        assert_eq!(r.artifact_type.as_deref(), Some(SIGSTORE_BUNDLE));
        assert_eq!(r.annotations.len(), 2);
        let sbom = manifest(serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/spdx+json", "digest": cfg, "size": 2}, "layers": []
        }));
        assert_eq!(
            Referrer::of(&sbom).artifact_type.as_deref(),
            Some("application/spdx+json")
        );
        let index = build_index(&[r.clone(), Referrer::of(&sbom)]);
        let back = parse_index(&index.bytes).unwrap();
        assert_eq!(back, vec![r.clone(), Referrer::of(&sbom)]);
        assert_eq!(build_index(&back).digest, index.digest, "bytes are stable");
        assert!(merge(&back, &[r]).is_none());
        let only = ReferrerOptions {
            enabled: true,
            artifact_types: vec!["application/spdx+json".into()],
        };
        assert_eq!(back.iter().filter(|r| only.wants(r)).count(), 1);
    }

    #[test]
    fn tag_schema() {
        let d = Digest::of(b"x");
        assert_eq!(fallback_tag(&d), format!("sha256-{}", d.hex()));
        assert_eq!(cosign_tags(&d)[0], format!("sha256-{}.sig", d.hex()));
    }
}
