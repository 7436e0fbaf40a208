//! Reading an OCI layout held in a tar, in place: `index.json` and manifests read by offset
//! (each digest checked), blobs streamed by offset and verified while they stream.
//!
//! On open, every image `index.json` names is walked (index → manifests → config and layers):
//! a manifest over the size cap, one whose bytes are not its digest, or one naming a blob the
//! archive lacks (or holds at another size) is refused before anything is copied. `blobs/`
//! entries must be plain files (no links).

use std::collections::HashSet;
use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Children, Descriptor, RawManifest, MAX_MANIFEST_BYTES};
use crate::store::layout::REF_NAME;
use crate::store::{BlobStream, StoredImage, Target};

use super::tarindex::{refused, Loc, TarIndex};

/// What `index.json` says: entries in order, with their tags.
pub(crate) struct OciView {
    pub entries: Vec<(Descriptor, Option<String>)>,
}

/// The entry name of a blob.
pub(crate) fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

impl OciView {
    /// Reads `index.json` and `oci-layout` of an indexed archive and walks every image.
    pub fn open(idx: &TarIndex) -> Result<OciView> {
        let view = Self::parse(idx)?;
        let mut seen = HashSet::new();
        for (desc, tag) in &view.entries {
            let label = tag.clone().unwrap_or_else(|| desc.digest.to_string());
            view.walk(idx, desc, &label, "index.json", 0, &mut seen)?;
        }
        Ok(view)
    }

    /// Reads `index.json` and `oci-layout` without walking the images (a docker-archive's OCI
    /// layout may name platforms whose blobs it does not carry).
    pub fn parse(idx: &TarIndex) -> Result<OciView> {
        let file = idx.shown.as_path();
        for meta in ["oci-layout", "index.json"] {
            if idx.meta(meta).is_none() {
                let why = if idx.count == 0 {
                    "empty, or not a tar archive".to_string()
                } else if idx.meta("manifest.json").is_some() {
                    format!("no {meta}: a docker-archive (it holds manifest.json): read it as docker-archive:{}", file.display())
                } else {
                    format!("no {meta}: not an OCI archive")
                };
                return Err(refused(file, None, why));
            }
            if idx.is_link(meta) {
                return Err(refused(
                    file,
                    Some(meta),
                    "is a link: an OCI archive holds plain files",
                ));
            }
        }
        let layout: serde_json::Value =
            serde_json::from_slice(idx.meta("oci-layout").unwrap_or_default())
                .map_err(|e| refused(file, Some("oci-layout"), format!("malformed JSON: {e}")))?;
        if !layout["imageLayoutVersion"].is_string() {
            return Err(refused(
                file,
                Some("oci-layout"),
                "no \"imageLayoutVersion\" string",
            ));
        }
        let doc: serde_json::Value =
            serde_json::from_slice(idx.meta("index.json").unwrap_or_default())
                .map_err(|e| refused(file, Some("index.json"), format!("malformed JSON: {e}")))?;
        let manifests = doc["manifests"].as_array().ok_or_else(|| {
            refused(
                file,
                Some("index.json"),
                "no \"manifests\" array: not an OCI image index",
            )
        })?;
        let mut entries = Vec::with_capacity(manifests.len());
        for (i, m) in manifests.iter().enumerate() {
            let desc: Descriptor = serde_json::from_value(m.clone()).map_err(|e| {
                refused(
                    file,
                    Some("index.json"),
                    format!("manifests[{i}] is not a valid descriptor: {e}"),
                )
            })?;
            let tag = m["annotations"][REF_NAME].as_str().map(str::to_string);
            entries.push((desc, tag));
        }
        for name in idx.names() {
            if name.starts_with("blobs/") && idx.is_link(name) {
                return Err(refused(
                    file,
                    Some(name),
                    "is a link: OCI blobs/ entries are plain files",
                ));
            }
            if let Some(rest) = name.strip_prefix("blobs/") {
                check_blob_name(rest).map_err(|why| refused(file, Some(name), why))?;
            }
        }
        Ok(OciView { entries })
    }

    /// Checks that `desc` (named by `parent`) and everything under it is in the archive.
    fn walk(
        &self,
        idx: &TarIndex,
        desc: &Descriptor,
        label: &str,
        parent: &str,
        depth: usize,
        seen: &mut HashSet<Digest>,
    ) -> Result<()> {
        if !seen.insert(desc.digest.clone()) {
            return Ok(());
        }
        if depth > 4 {
            return Err(refused(&idx.shown, Some(parent), "indexes nested too deep"));
        }
        let m = self.manifest(idx, &desc.digest, Some(desc), parent, label)?;
        let parent = blob_name(&desc.digest);
        match m.children()? {
            Children::Index { manifests } => {
                for child in &manifests {
                    self.walk(idx, child, label, &parent, depth + 1, seen)?;
                }
            }
            Children::Image { config, layers } => {
                for b in std::iter::once(&config).chain(&layers) {
                    if b.media_type.contains("nondistributable") || b.media_type.contains("foreign")
                    {
                        continue;
                    }
                    present(idx, b, &parent, label)?;
                }
            }
        }
        Ok(())
    }

    /// Reads and checks the manifest `digest`; `parent` and `label` say who named it.
    pub fn manifest(
        &self,
        idx: &TarIndex,
        digest: &Digest,
        known: Option<&Descriptor>,
        parent: &str,
        label: &str,
    ) -> Result<RawManifest> {
        let name = blob_name(digest);
        let loc = match known {
            Some(d) => present(idx, d, parent, label)?,
            None => idx
                .get(&name)
                .ok_or_else(|| not_held(idx, &name, parent, label))?,
        };
        if loc.size > MAX_MANIFEST_BYTES as u64 {
            return Err(refused(
                &idx.shown,
                Some(&name),
                format!(
                    "a manifest of {} bytes, over the {MAX_MANIFEST_BYTES}-byte cap",
                    loc.size
                ),
            ));
        }
        let bytes = idx.read_small(&name, loc, MAX_MANIFEST_BYTES as u64)?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(refused(
                &idx.shown,
                Some(&name),
                format!("the bytes hash to {actual}, not to the digest the entry is named after"),
            ));
        }
        let media_type = known
            .map(|d| d.media_type.as_str())
            .filter(|m| !m.is_empty());
        RawManifest::new(bytes.into(), media_type).map_err(|e| {
            refused(
                &idx.shown,
                Some(&name),
                format!("not a manifest: {}", e.reason),
            )
        })
    }

    /// The `index.json` descriptor a target names (a tag, or a digest `index.json` or a
    /// manifest blob holds).
    pub fn find(&self, idx: &TarIndex, target: &Target) -> Result<Option<Descriptor>> {
        match target {
            Target::Tag(t) => {
                let mut found = self
                    .entries
                    .iter()
                    .filter(|(_, tag)| tag.as_deref() == Some(t));
                let Some((first, _)) = found.next() else {
                    return Ok(None);
                };
                if let Some((other, _)) = found.find(|(d, _)| d.digest != first.digest) {
                    return Err(refused(
                        &idx.shown,
                        Some("index.json"),
                        format!(
                            "tag {t:?} names two manifests ({} and {}): ambiguous",
                            first.digest, other.digest
                        ),
                    ));
                }
                Ok(Some(first.clone()))
            }
            Target::Digest(d) => {
                if let Some((desc, _)) = self.entries.iter().find(|(e, _)| &e.digest == d) {
                    return Ok(Some(desc.clone()));
                }
                let name = blob_name(d);
                match idx.get(&name) {
                    Some(loc) if loc.size <= MAX_MANIFEST_BYTES as u64 => {
                        match self.manifest(idx, d, None, "index.json", &d.to_string()) {
                            Ok(m) => Ok(Some(m.descriptor())),
                            Err(_) => Ok(None),
                        }
                    }
                    _ => Ok(None),
                }
            }
        }
    }

    pub fn get_manifest(
        &self,
        idx: &TarIndex,
        target: &Target,
        location: String,
    ) -> Result<RawManifest> {
        let desc = self.find(idx, target)?.ok_or_else(|| Error::NotFound {
            what: match target {
                Target::Tag(t) => format!("tag {t}"),
                Target::Digest(d) => format!("manifest {d}"),
            },
            location,
        })?;
        let label = target.to_string();
        self.manifest(idx, &desc.digest, Some(&desc), "index.json", &label)
    }

    pub fn open_blob(
        &self,
        idx: &TarIndex,
        desc: &Descriptor,
        offset: u64,
        location: String,
    ) -> Result<BlobStream> {
        let name = blob_name(&desc.digest);
        let loc = idx.get(&name).ok_or_else(|| Error::NotFound {
            what: format!("blob {}", desc.digest),
            location,
        })?;
        Ok(idx.stream(&name, loc, desc.digest.clone(), offset))
    }

    pub fn has_blob(&self, idx: &TarIndex, desc: &Descriptor) -> bool {
        idx.get(&blob_name(&desc.digest)).map(|l| l.size) == Some(desc.size)
    }

    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for t in self.entries.iter().filter_map(|(_, t)| t.as_ref()) {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        tags
    }

    pub fn images(&self) -> Vec<StoredImage> {
        self.entries
            .iter()
            .map(|(d, t)| StoredImage {
                tag: t.clone(),
                descriptor: d.clone(),
            })
            .collect()
    }

    /// The one image (what `FILE` alone means), or a refusal listing the tags.
    pub fn only_image(&self, file: &Path, prefix: &str) -> Result<Descriptor> {
        if let [(one, _)] = self.entries.as_slice() {
            return Ok(one.clone());
        }
        let tags = self.tags();
        let why = if self.entries.is_empty() {
            "holds no image".to_string()
        } else {
            format!(
                "holds {} images (tags: {}): name one, {prefix}FILE:TAG",
                self.entries.len(),
                if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(", ")
                }
            )
        };
        Err(refused(file, None, why))
    }
}

/// The location of the blob `d` names, checked to be there at its size.
fn present(idx: &TarIndex, d: &Descriptor, parent: &str, label: &str) -> Result<Loc> {
    let name = blob_name(&d.digest);
    let loc = idx
        .get(&name)
        .ok_or_else(|| not_held(idx, &name, parent, label))?;
    if loc.size != d.size {
        return Err(refused(
            &idx.shown,
            Some(&name),
            format!(
                "is {} bytes, but {parent} (image {label}) says {}",
                loc.size, d.size
            ),
        ));
    }
    Ok(loc)
}

fn not_held(idx: &TarIndex, name: &str, parent: &str, label: &str) -> Error {
    refused(
        &idx.shown,
        Some(name),
        format!("is named by {parent} (image {label}) but the archive does not hold it"),
    )
}

fn check_blob_name(rest: &str) -> std::result::Result<(), String> {
    let mut parts = rest.split('/');
    let (alg, hex) = (parts.next().unwrap_or(""), parts.next());
    let Some(hex) = hex else {
        return Ok(());
    };
    if alg != "sha256" {
        return Err(format!(
            "uses digest algorithm {alg:?}; ferry reads sha256 blobs only"
        ));
    }
    let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok || parts.next().is_some() {
        return Err("is not named after a sha256 digest (64 lowercase hex digits)".into());
    }
    Ok(())
}
