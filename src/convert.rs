//! Manifest format conversion (`copy --format oci|v2s2`): Docker schema 2 manifests and lists
//! become OCI manifests and indexes, or the reverse. Blob bytes never change (a config or layer
//! keeps its digest; only the media type naming it does), but every converted manifest is new
//! bytes, so its digest changes, and so does the digest of every index above it.
//!
//! Converted manifests are built with `oci-spec` types. What the target format cannot say is
//! refused, not dropped: Docker schema 2 has no annotations, `subject`, `artifactType`, zstd or
//! uncompressed layers.

use std::collections::HashMap;

use bytes::Bytes;
use oci_spec::image::{Descriptor as OciDescriptor, ImageIndex, ImageManifest, MediaType};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{
    RawManifest, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};

/// The manifest format a copy writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OCI image manifests and indexes (what OCI layouts, skopeo's and umoci's `oci:` read).
    Oci,
    /// Docker image manifest v2 schema 2 and manifest lists.
    V2s2,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "oci" => Ok(Format::Oci),
            "v2s2" | "docker" => Ok(Format::V2s2),
            _ => Err(format!("unknown format {s:?} (oci, v2s2)")),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Oci => "oci",
            Format::V2s2 => "v2s2",
        })
    }
}

/// Docker media type ↔ OCI media type, for the descriptors of manifests and blobs.
const PAIRS: [(&str, &str); 5] = [
    (DOCKER_MANIFEST, OCI_MANIFEST),
    (DOCKER_MANIFEST_LIST, OCI_INDEX),
    (
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.oci.image.config.v1+json",
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
];

/// The media type `t` has in `format`; `None` when `format` has no equivalent.
fn map_type(t: &str, format: Format) -> Option<&'static str> {
    PAIRS.iter().find_map(|(docker, oci)| {
        (t == *docker || t == *oci).then_some(match format {
            Format::Oci => *oci,
            Format::V2s2 => *docker,
        })
    })
}

/// Whether a manifest of media type `t` is already in `format`.
pub fn is_in(t: &str, format: Format) -> bool {
    match format {
        Format::Oci => t == OCI_MANIFEST || t == OCI_INDEX,
        Format::V2s2 => t == DOCKER_MANIFEST || t == DOCKER_MANIFEST_LIST,
    }
}

/// Converts manifests bottom-up: children first, so that an index names its converted children.
pub struct Converter {
    format: Format,
    /// Old digest → converted manifest (or the same one, when it was already in the format).
    done: HashMap<Digest, RawManifest>,
}

impl Converter {
    pub fn new(format: Format) -> Converter {
        Converter {
            format,
            done: HashMap::new(),
        }
    }

    /// Converts `m`, whose child manifests (for an index) were converted before.
    pub fn convert(&mut self, m: &RawManifest, location: &str) -> Result<RawManifest> {
        if let Some(c) = self.done.get(&m.digest) {
            return Ok(c.clone());
        }
        let refuse = |reason: String| Error::Conversion {
            location: location.to_string(),
            digest: m.digest.clone(),
            format: self.format,
            reason,
        };
        let converted = if m.is_index() {
            self.index(m).map_err(refuse)?
        } else {
            self.image(m).map_err(refuse)?
        };
        self.done.insert(m.digest.clone(), converted.clone());
        Ok(converted)
    }

    fn image(&self, m: &RawManifest) -> std::result::Result<RawManifest, String> {
        let mut doc = ImageManifest::from_reader(&m.bytes[..]).map_err(|e| e.to_string())?;
        if self.format == Format::V2s2 {
            if doc.subject().is_some() || doc.artifact_type().is_some() {
                return Err(
                    "an artifact (subject or artifactType) has no Docker schema 2 form".into(),
                );
            }
            if doc.annotations().as_ref().is_some_and(|a| !a.is_empty()) {
                return Err("Docker schema 2 manifests have no annotations".into());
            }
        }
        let target = if self.format == Format::Oci {
            OCI_MANIFEST
        } else {
            DOCKER_MANIFEST
        };
        let config = self.descriptor(doc.config(), "config")?;
        doc.set_config(config);
        let layers = doc
            .layers()
            .iter()
            .map(|d| self.descriptor(d, "layer"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        doc.set_layers(layers);
        doc.set_media_type(Some(MediaType::from(target)));
        let bytes = doc.to_string().map_err(|e| e.to_string())?;
        raw(bytes, target)
    }

    fn index(&self, m: &RawManifest) -> std::result::Result<RawManifest, String> {
        let mut doc = ImageIndex::from_reader(&m.bytes[..]).map_err(|e| e.to_string())?;
        if self.format == Format::V2s2 {
            if doc.subject().is_some() || doc.artifact_type().is_some() {
                return Err("an artifact index has no Docker manifest list form".into());
            }
            if doc.annotations().as_ref().is_some_and(|a| !a.is_empty()) {
                return Err("Docker manifest lists have no annotations".into());
            }
        }
        let target = if self.format == Format::Oci {
            OCI_INDEX
        } else {
            DOCKER_MANIFEST_LIST
        };
        let mut entries = Vec::new();
        for d in doc.manifests() {
            let old: Digest = d.digest().to_string().parse().map_err(|e| format!("{e}"))?;
            let child = self
                .done
                .get(&old)
                .ok_or_else(|| format!("child manifest {old} was not converted first"))?;
            let mut entry = d.clone();
            entry.set_media_type(MediaType::from(child.media_type.as_str()));
            entry.set_digest(
                child
                    .digest
                    .to_string()
                    .parse()
                    .map_err(|e| format!("{e}"))?,
            );
            entry.set_size(child.bytes.len() as u64);
            if self.format == Format::V2s2 && entry.annotations().is_some() {
                return Err(format!(
                    "index entry {old} has annotations, which a Docker manifest list cannot carry"
                ));
            }
            entries.push(entry);
        }
        doc.set_manifests(entries);
        doc.set_media_type(Some(MediaType::from(target)));
        let bytes = doc.to_string().map_err(|e| e.to_string())?;
        raw(bytes, target)
    }

    /// A config or layer descriptor with its media type in the target format.
    fn descriptor(
        &self,
        d: &OciDescriptor,
        what: &str,
    ) -> std::result::Result<OciDescriptor, String> {
        let t = d.media_type().to_string();
        let mapped = map_type(&t, self.format).ok_or_else(|| {
            format!(
                "{what} {} has media type {t:?}, which has no {} equivalent",
                d.digest(),
                match self.format {
                    Format::Oci => "OCI",
                    Format::V2s2 => "Docker schema 2",
                }
            )
        })?;
        if self.format == Format::V2s2 && d.annotations().as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(format!(
                "{what} {} has annotations, which Docker schema 2 cannot carry",
                d.digest()
            ));
        }
        let mut out = d.clone();
        out.set_media_type(MediaType::from(mapped));
        Ok(out)
    }
}

fn raw(text: String, media_type: &str) -> std::result::Result<RawManifest, String> {
    RawManifest::new(Bytes::from(text), Some(media_type)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_image() -> RawManifest {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": 2, "digest": Digest::of(b"{}").to_string()},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": 3, "digest": Digest::of(b"abc").to_string()}]
        });
        RawManifest::new(Bytes::from(body.to_string()), Some(DOCKER_MANIFEST)).unwrap()
    }

    #[test]
    fn docker_images_and_lists_become_oci_with_new_digests_and_the_same_blobs() {
        let image = docker_image();
        let list = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [{"mediaType": DOCKER_MANIFEST, "size": image.bytes.len(),
                           "digest": image.digest.to_string(),
                           "platform": {"architecture": "amd64", "os": "linux"}}]
        });
        let list = RawManifest::new(Bytes::from(list.to_string()), None).unwrap();
        let mut c = Converter::new(Format::Oci);
        let oci = c.convert(&image, "r/x").unwrap();
        assert_eq!(oci.media_type, OCI_MANIFEST);
        assert_ne!(oci.digest, image.digest);
        let v: serde_json::Value = serde_json::from_slice(&oci.bytes).unwrap();
        assert_eq!(
            v["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(v["config"]["digest"], Digest::of(b"{}").to_string());
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let index = c.convert(&list, "r/x").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
        assert_eq!(index.media_type, OCI_INDEX);
        assert_eq!(v["manifests"][0]["digest"], oci.digest.to_string());
        assert_eq!(v["manifests"][0]["size"], oci.bytes.len());
        assert_eq!(v["manifests"][0]["platform"]["architecture"], "amd64");
        // And back: the Docker types again, blobs untouched.
        let mut back = Converter::new(Format::V2s2);
        let again = back.convert(&oci, "r/x").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&again.bytes).unwrap();
        assert_eq!(again.media_type, DOCKER_MANIFEST);
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }

    #[test]
    fn what_docker_schema_2_cannot_say_is_refused() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "size": 2, "digest": Digest::of(b"{}").to_string()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                        "size": 3, "digest": Digest::of(b"abc").to_string()}]
        });
        let m = RawManifest::new(Bytes::from(body.to_string()), None).unwrap();
        let e = Converter::new(Format::V2s2).convert(&m, "r/x").unwrap_err();
        assert!(e.to_string().contains("tar+zstd"), "{e}");
        assert!(matches!(e, Error::Conversion { .. }));
    }
}
