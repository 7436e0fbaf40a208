//! Manifests kept as raw bytes (digests never change) with typed views of what they reference.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every manifest type ferry asks for, in the `Accept` header of manifest requests.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (the distribution spec expects at least 4 MB).
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// True for the two index/list types.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A platform as named in an index entry or on the command line (`os/arch[/variant]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad =
            || format!("invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8");
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: parts[1].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Whether `self` (what the user asked for) selects `entry`; a missing variant matches any.
    pub fn selects(&self, entry: &Platform) -> bool {
        self.os == entry.os
            && self.architecture == entry.architecture
            && (self.variant.is_none() || self.variant == entry.variant)
    }
}

/// A reference from one manifest to a blob or another manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// What a manifest names, by kind.
#[derive(Clone, Debug)]
pub enum Children {
    /// An image (or artifact) manifest: its config and layers (blobs).
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    /// An index / manifest list: child manifests.
    Index { manifests: Vec<Descriptor> },
}

/// A manifest exactly as received; never re-serialised.
#[derive(Clone, Debug)]
pub struct RawManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

/// A manifest body that cannot be understood.
#[derive(Debug, thiserror::Error)]
#[error("malformed manifest {digest}: {reason}")]
pub struct ManifestError {
    pub digest: Digest,
    pub reason: String,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
}

impl RawManifest {
    /// Wraps received bytes. The media type is the one the server sent (`Content-Type`) or, when
    /// absent or generic, the one the body declares.
    pub fn new(bytes: Bytes, content_type: Option<&str>) -> Result<Self, ManifestError> {
        let digest = Digest::of(&bytes);
        let probe = parse_probe(&bytes, &digest)?;
        let declared = probe.media_type.clone();
        let guessed = if probe.manifests.is_some() {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        };
        let media_type = match content_type.map(|c| c.split(';').next().unwrap_or("").trim()) {
            Some(c) if c.starts_with("application/vnd.") => c.to_string(),
            _ => declared.unwrap_or_else(|| guessed.to_string()),
        };
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    pub fn is_index(&self) -> bool {
        is_index(&self.media_type)
    }

    /// A Docker schema 1 manifest: by its media type (`…manifest.v1+json`, `+prettyjws`) or,
    /// whatever the type says, `"schemaVersion": 1` in the body.
    pub fn is_schema1(&self) -> bool {
        self.media_type
            .starts_with("application/vnd.docker.distribution.manifest.v1+")
            || parse_probe(&self.bytes, &self.digest).is_ok_and(|p| p.schema_version == Some(1))
    }

    /// The descriptor another manifest (or a layout's index.json) would use for this one.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
        }
    }

    /// The blobs or manifests this manifest names (a `subject` is not a child: it is not copied).
    pub fn children(&self) -> Result<Children, ManifestError> {
        let p = parse_probe(&self.bytes, &self.digest)?;
        let bad = |reason: &str| ManifestError {
            digest: self.digest.clone(),
            reason: reason.to_string(),
        };
        if self.is_index() {
            return Ok(Children::Index {
                manifests: p
                    .manifests
                    .ok_or_else(|| bad("index has no \"manifests\""))?,
            });
        }
        if p.schema_version == Some(1) {
            return Err(bad("Docker schema 1 manifests are not supported"));
        }
        let config = p
            .config
            .ok_or_else(|| bad("image manifest has no \"config\""))?;
        Ok(Children::Image {
            config,
            layers: p.layers.unwrap_or_default(),
        })
    }

    /// The `subject` this manifest refers to (signatures, SBOMs), if any.
    pub fn subject(&self) -> Option<Descriptor> {
        parse_probe(&self.bytes, &self.digest)
            .ok()
            .and_then(|p| p.subject)
    }

    /// A new index holding only the entries `keep` accepts, every other field kept as it was.
    /// Its bytes (and so its digest) differ from the original.
    pub fn filter_index(
        &self,
        keep: impl Fn(&Descriptor) -> bool,
    ) -> Result<RawManifest, ManifestError> {
        let bad = |reason: String| ManifestError {
            digest: self.digest.clone(),
            reason,
        };
        let mut doc: serde_json::Value =
            serde_json::from_slice(&self.bytes).map_err(|e| bad(e.to_string()))?;
        let entries = doc
            .get_mut("manifests")
            .and_then(|m| m.as_array_mut())
            .ok_or_else(|| bad("index has no \"manifests\" array".into()))?;
        let mut kept = Vec::new();
        for e in entries.drain(..) {
            let d: Descriptor =
                serde_json::from_value(e.clone()).map_err(|e| bad(e.to_string()))?;
            if keep(&d) {
                kept.push(e);
            }
        }
        *entries = kept;
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| bad(e.to_string()))?;
        Ok(RawManifest {
            digest: Digest::of(&bytes),
            bytes: bytes.into(),
            media_type: self.media_type.clone(),
        })
    }
}

fn parse_probe(bytes: &[u8], digest: &Digest) -> Result<Probe, ManifestError> {
    serde_json::from_slice(bytes).map_err(|e| ManifestError {
        digest: digest.clone(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    fn index() -> RawManifest {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d("a"), "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": d("b"), "size": 11, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
            ],
            "annotations": {"x": "y"}
        });
        RawManifest::new(serde_json::to_vec(&body).unwrap().into(), None).unwrap()
    }

    #[test]
    fn index_children_and_filter() {
        let m = index();
        assert!(m.is_index());
        let Children::Index { manifests } = m.children().unwrap() else {
            panic!()
        };
        assert_eq!(manifests.len(), 2);
        let want: Platform = "linux/arm64".parse().unwrap();
        let sub = m
            .filter_index(|e| e.platform.as_ref().is_some_and(|p| want.selects(p)))
            .unwrap();
        assert_ne!(sub.digest, m.digest);
        let Children::Index { manifests } = sub.children().unwrap() else {
            panic!()
        };
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].digest, d("b"));
        assert!(std::str::from_utf8(&sub.bytes)
            .unwrap()
            .contains("annotations"));
    }

    #[test]
    fn image_children_and_content_type() {
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": d("c"), "size": 3},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d("l"), "size": 5}]
        });
        let bytes: Bytes = serde_json::to_vec(&body).unwrap().into();
        let m = RawManifest::new(bytes.clone(), Some("application/json")).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(m.digest, Digest::of(&bytes));
        let Children::Image { config, layers } = m.children().unwrap() else {
            panic!()
        };
        assert_eq!((config.digest, layers.len()), (d("c"), 1));
    }

    #[test]
    fn malformed_manifests_are_errors() {
        assert!(RawManifest::new(Bytes::from_static(b"{not json"), None).is_err());
        let m = RawManifest::new(
            Bytes::from_static(b"{\"schemaVersion\":2}"),
            Some(OCI_MANIFEST),
        )
        .unwrap();
        assert!(m.children().unwrap_err().to_string().contains("config"));
    }

    #[test]
    fn platforms() {
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
    }
}
