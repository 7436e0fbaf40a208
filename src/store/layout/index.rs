//! A layout's `index.json`: parsed strictly, edited as JSON (unknown fields kept), replaced atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::workdir::TempArea;
use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{Descriptor, OCI_INDEX};

/// The annotation of an `index.json` entry that holds its tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One entry of `index.json`.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub desc: Descriptor,
    pub tag: Option<String>,
}

/// The contents of `index.json`, with every entry already validated.
#[derive(Clone, Debug)]
pub(super) struct IndexFile {
    doc: Map<String, Value>,
    entries: Vec<Entry>,
    /// The file, for messages.
    path: PathBuf,
}

impl IndexFile {
    /// An index with no entries.
    pub fn empty() -> Self {
        let doc = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        let Value::Object(doc) = doc else {
            unreachable!()
        };
        IndexFile {
            doc,
            entries: Vec::new(),
            path: PathBuf::from("index.json"),
        }
    }

    /// Parses `index.json`; `path` names the file in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |message: String| layout_err(Op::ReadLayout, path, message);
        let doc: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed JSON: {e}")))?;
        let Value::Object(doc) = doc else {
            return Err(bad("expected a JSON object (an OCI image index)".into()));
        };
        let manifests = doc
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no \"manifests\" array: not an OCI image index".into()))?;
        let mut entries = Vec::with_capacity(manifests.len());
        for (i, m) in manifests.iter().enumerate() {
            let desc: Descriptor = serde_json::from_value(m.clone())
                .map_err(|e| bad(format!("manifests[{i}] is not a valid descriptor: {e}")))?;
            let tag = m["annotations"][REF_NAME].as_str().map(str::to_string);
            entries.push(Entry { desc, tag });
        }
        Ok(IndexFile {
            doc,
            entries,
            path: path.to_path_buf(),
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The descriptor tagged `tag`. Several entries with that tag are an error when they name
    /// different manifests: which one the tag means cannot be told.
    pub fn find_tag(&self, tag: &str) -> Result<Option<&Descriptor>> {
        let mut found = self
            .entries
            .iter()
            .filter(|e| e.tag.as_deref() == Some(tag));
        let Some(first) = found.next() else {
            return Ok(None);
        };
        let mut digests = vec![first.desc.digest.to_string()];
        for e in found {
            let d = e.desc.digest.to_string();
            if !digests.contains(&d) {
                digests.push(d);
            }
        }
        if digests.len() > 1 {
            let message = format!(
                "tag {tag:?} is on {} entries naming different manifests ({}): which one it \
                 means is ambiguous; keep one entry with this tag",
                digests.len(),
                digests.join(", ")
            );
            return Err(layout_err(Op::ReadLayout, &self.path, message));
        }
        Ok(Some(&first.desc))
    }

    /// An entry naming `digest` (tagged or not).
    pub fn find_digest(&self, digest: &Digest) -> Option<&Descriptor> {
        let mut found = self.entries.iter().map(|e| &e.desc);
        found.find(|d| &d.digest == digest)
    }

    /// The tags, in `index.json` order, each once.
    pub fn tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for t in self.entries.iter().filter_map(|e| e.tag.as_ref()) {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        tags
    }

    /// Points `tag` at `desc`: replaces the entries with that tag (in place), else appends one.
    /// An untagged entry for the same digest is dropped, since the tagged one now holds it.
    pub fn set_tag(&mut self, desc: &Descriptor, tag: &str) {
        let raw = self.raw_entries();
        let new = entry_json(desc, Some(tag));
        let mut kept = Vec::with_capacity(raw.len() + 1);
        let mut placed = false;
        for (e, v) in self.entries.iter().zip(raw) {
            if e.tag.as_deref() == Some(tag) {
                if !placed {
                    kept.push(new.clone());
                    placed = true;
                }
            } else if !(e.tag.is_none() && e.desc.digest == desc.digest) {
                kept.push(v);
            }
        }
        if !placed {
            kept.push(new);
        }
        self.replace_entries(kept);
    }

    /// Adds an untagged entry for `desc` unless an entry already names its digest.
    pub fn add_untagged(&mut self, desc: &Descriptor) -> bool {
        if self.find_digest(&desc.digest).is_some() {
            return false;
        }
        let mut raw = self.raw_entries();
        raw.push(entry_json(desc, None));
        self.replace_entries(raw);
        true
    }

    /// Drops untagged entries whose digest is in `digests` (children now reachable via a parent).
    pub fn drop_untagged(&mut self, digests: &[Digest]) {
        let raw = self.raw_entries();
        let kept = self
            .entries
            .iter()
            .zip(raw)
            .filter(|(e, _)| e.tag.is_some() || !digests.contains(&e.desc.digest))
            .map(|(_, v)| v)
            .collect();
        self.replace_entries(kept);
    }

    /// Keeps only the entries `keep` accepts; how many were dropped.
    pub fn retain(&mut self, keep: impl Fn(&Entry) -> bool) -> usize {
        let raw = self.raw_entries();
        let before = raw.len();
        let kept: Vec<Value> = self
            .entries
            .iter()
            .zip(raw)
            .filter(|(e, _)| keep(e))
            .map(|(_, v)| v)
            .collect();
        let dropped = before - kept.len();
        self.replace_entries(kept);
        dropped
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(&self.doc).expect("JSON values serialise");
        out.push(b'\n');
        out
    }

    fn raw_entries(&self) -> Vec<Value> {
        self.doc["manifests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn replace_entries(&mut self, raw: Vec<Value>) {
        self.doc.insert("manifests".into(), Value::Array(raw));
        let bytes = serde_json::to_vec(&self.doc).expect("JSON values serialise");
        *self = IndexFile::parse(&bytes, &self.path).expect("entries written by us are valid");
    }
}

fn entry_json(desc: &Descriptor, tag: Option<&str>) -> Value {
    let mut v = json!({"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size});
    if let Some(p) = &desc.platform {
        v["platform"] = json!(p);
    }
    if let Some(t) = tag {
        v["annotations"] = json!({ REF_NAME: t });
    }
    v
}

pub(super) fn layout_err(op: Op, path: &Path, message: impl Into<String>) -> Error {
    Error::Layout {
        op,
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Replaces `path` with `bytes` atomically: a temp file in `tmp` (same filesystem), fsync,
/// rename, then fsync of the directory so the rename itself is durable.
pub(super) async fn write_atomic(path: PathBuf, bytes: Vec<u8>, tmp: TempArea) -> Result<()> {
    let p = path.clone();
    tokio::task::spawn_blocking(move || write_atomic_sync(&p, &bytes, &tmp))
        .await
        .map_err(|e| layout_err(Op::WriteLayout, &path, e.to_string()))?
}

/// The blocking body of [`write_atomic`].
pub(super) fn write_atomic_sync(path: &Path, bytes: &[u8], area: &TempArea) -> Result<()> {
    let job = || -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = area.file("meta-")?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        std::fs::File::open(dir)?.sync_all()
    };
    job().map_err(|e| layout_err(Op::WriteLayout, path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(s: &str) -> Descriptor {
        Descriptor {
            media_type: crate::manifest::OCI_MANIFEST.into(),
            digest: Digest::of(s.as_bytes()),
            size: s.len() as u64,
            platform: None,
        }
    }

    #[test]
    fn tags_replace_in_place_and_untagged_entries_are_not_duplicated() {
        let mut idx = IndexFile::empty();
        assert!(idx.add_untagged(&desc("a")));
        assert!(!idx.add_untagged(&desc("a")));
        idx.set_tag(&desc("b"), "one");
        idx.set_tag(&desc("c"), "two");
        idx.set_tag(&desc("d"), "one");
        assert_eq!(idx.tags(), ["one", "two"]);
        assert_eq!(
            idx.find_tag("one").unwrap().unwrap().digest,
            desc("d").digest
        );
        idx.set_tag(&desc("a"), "three");
        assert_eq!(
            idx.entries().len(),
            3,
            "the untagged entry became the tagged one"
        );
        idx.add_untagged(&desc("x"));
        idx.drop_untagged(&[desc("x").digest]);
        assert!(idx.find_digest(&desc("x").digest).is_none());
    }

    #[test]
    fn unknown_fields_survive_and_bad_entries_are_named() {
        let body = br#"{"schemaVersion":2,"annotations":{"k":"v"},"manifests":[]}"#;
        let mut idx = IndexFile::parse(body, Path::new("/l/index.json")).unwrap();
        idx.set_tag(&desc("a"), "t");
        let out: Value = serde_json::from_slice(&idx.to_bytes()).unwrap();
        assert_eq!(out["annotations"]["k"], "v");
        let bad = br#"{"manifests":[{"digest":"sha256:nope","size":1}]}"#;
        let e = IndexFile::parse(bad, Path::new("/l/index.json")).unwrap_err();
        assert!(e.to_string().contains("/l/index.json"), "{e}");
        assert!(e.to_string().contains("manifests[0]"), "{e}");
    }
}
