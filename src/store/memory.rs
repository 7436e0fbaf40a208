//! An in-memory [`Store`]: blobs, manifests and tags in maps, verified like any backend, with a
//! log of every write in order, so tests of the copy engine (ordering, skips, failures) need no
//! registry process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::{BlobSource, BlobStream, Store, Target};
use crate::digest::{Digest, DigestHasher};
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, RawManifest};

/// One write, as the store saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Blob(Digest),
    Manifest(Digest),
    Tag(String, Digest),
}

#[derive(Default)]
struct Content {
    blobs: HashMap<Digest, Bytes>,
    manifests: HashMap<Digest, RawManifest>,
    tags: HashMap<String, Digest>,
    writes: Vec<Write>,
}

/// A store held in memory.
#[derive(Default)]
pub struct MemoryStore {
    name: String,
    content: Mutex<Content>,
}

impl MemoryStore {
    pub fn new(name: &str) -> Self {
        MemoryStore {
            name: name.to_string(),
            content: Mutex::default(),
        }
    }

    /// Every write so far, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.content.lock().unwrap().writes.clone()
    }

    /// The digest `tag` names, if any.
    pub fn tag(&self, tag: &str) -> Option<Digest> {
        self.content.lock().unwrap().tags.get(tag).cloned()
    }

    /// Stores bytes as a blob without verification (for building sources, or corrupt ones).
    pub fn insert_blob(&self, digest: Digest, bytes: Bytes) {
        self.content.lock().unwrap().blobs.insert(digest, bytes);
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            what,
            location: self.location(),
        }
    }

    fn find(&self, target: &Target) -> Option<RawManifest> {
        let c = self.content.lock().unwrap();
        let digest = match target {
            Target::Digest(d) => d.clone(),
            Target::Tag(t) => c.tags.get(t)?.clone(),
        };
        c.manifests.get(&digest).cloned()
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn location(&self) -> String {
        format!("memory:{}", self.name)
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        Ok(self.find(target).map(|m| m.descriptor()))
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        self.find(target)
            .ok_or_else(|| self.not_found(format!("manifest {target}")))
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        let mut c = self.content.lock().unwrap();
        c.manifests
            .insert(manifest.digest.clone(), manifest.clone());
        c.writes.push(Write::Manifest(manifest.digest.clone()));
        for t in tags {
            c.tags.insert(t.clone(), manifest.digest.clone());
            c.writes
                .push(Write::Tag(t.clone(), manifest.digest.clone()));
        }
        Ok(())
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self
            .content
            .lock()
            .unwrap()
            .blobs
            .contains_key(&desc.digest))
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        let bytes = self
            .content
            .lock()
            .unwrap()
            .blobs
            .get(&desc.digest)
            .cloned()
            .ok_or_else(|| self.not_found(format!("blob {}", desc.digest)))?;
        let from = (offset as usize).min(bytes.len());
        Ok(futures::stream::iter(vec![Ok(bytes.slice(from..))]).boxed())
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        let mut stream = source.open(0).await?;
        let mut hasher = DigestHasher::new();
        let mut body = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            body.extend_from_slice(&chunk);
        }
        let (actual, size) = hasher.finish();
        if actual != desc.digest || size != desc.size {
            return Err(Error::DigestMismatch {
                location: self.location(),
                expected: desc.digest.clone(),
                expected_size: desc.size,
                actual,
                actual_size: size,
            });
        }
        let mut c = self.content.lock().unwrap();
        c.blobs.insert(desc.digest.clone(), body.freeze());
        c.writes.push(Write::Blob(desc.digest.clone()));
        Ok(size)
    }

    /// Every stored manifest whose `subject` is `subject` (sorted by digest).
    async fn find_referrers(
        &self,
        subject: &Digest,
        types: &[String],
        _listed: Option<&std::collections::HashSet<String>>,
    ) -> Result<Vec<crate::referrers::Referrer>> {
        let c = self.content.lock().unwrap();
        let mut out: Vec<_> = c
            .manifests
            .values()
            .filter_map(|m| crate::referrers::Referrer::of_subject(m, subject, types))
            .collect();
        out.sort_by_key(|a| a.digest.to_string());
        Ok(out)
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self.content.lock().unwrap().tags.keys().cloned().collect();
        tags.sort();
        Ok(tags)
    }
}
