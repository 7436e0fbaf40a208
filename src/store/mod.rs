//! The storage abstraction every backend (registry, OCI layout, OCI archive) implements; the copy engine sees only this.
//!
//! Contracts:
//! - Manifests travel as [`RawManifest`]: exact bytes, never re-serialised.
//! - `put_blob` verifies what it stores: the bytes it received must hash to the descriptor's digest
//!   and size, or it fails with [`Error::DigestMismatch`] and commits nothing.
//! - `put_manifest` is only called once every blob and child manifest it names is present.
//! - Retries happen inside a backend; errors that reach the caller are final.
//! - Referrers (OCI 1.1 `subject`): [`Store::referrers`] lists what refers to a manifest here
//!   (a registry's referrers API or its fallback tag; a layout's `index.json` entries);
//!   [`Store::link_referrers`] makes referrers already stored by digest findable from their
//!   subject (a registry without the API gets its fallback tag updated: a tag write).

pub mod archive;
pub mod layout;
pub mod memory;
pub mod registry;
pub mod sided;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{Descriptor, RawManifest};
use crate::referrers::Referrer;

/// A blob's bytes as they arrive.
pub type BlobStream = BoxStream<'static, Result<Bytes>>;

/// What a manifest is asked for by: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Tag(String),
    Digest(Digest),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tag(t) => f.write_str(t),
            Target::Digest(d) => d.fmt(f),
        }
    }
}

/// Something that can (re)open a blob's bytes from an offset; lets an upload resume.
#[async_trait]
pub trait BlobSource: Send + Sync {
    /// The bytes from `offset` to the end. A source that cannot seek may fail for `offset > 0`.
    async fn open(&self, offset: u64) -> Result<BlobStream>;
}

/// Where a registry-backed store lives, so the copy engine can choose a cross-repository mount.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepoLocation {
    /// API host[:port].
    pub registry: String,
    pub repository: String,
}

/// How a blob reached the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Already present; nothing sent.
    Skipped,
    /// Cross-repository mount; no bytes sent.
    Mounted,
    /// Streamed; this many bytes went over the wire to the destination.
    Copied(u64),
}

/// What [`Store::link_referrers`] had to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linked {
    /// The store lists referrers by itself (a registry with the referrers API, a layout whose
    /// `index.json` already names them): nothing written.
    Itself,
    /// The fallback tag already listed every referrer: nothing written.
    Unchanged,
    /// The fallback tag was written (created, or merged with what it listed).
    Updated,
}

/// One repository of a registry, or one OCI layout directory.
#[async_trait]
pub trait Store: Send + Sync {
    /// Human-readable location for messages (`host/repo`, `oci:/path`).
    fn location(&self) -> String;

    /// The registry repository behind this store; `None` for local stores.
    fn repo_location(&self) -> Option<RepoLocation> {
        None
    }

    /// The descriptor (digest, media type, size) a tag or digest resolves to, or `None` when
    /// absent. Cheap: a HEAD on registries.
    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>>;

    /// Fetches a manifest. The store verifies the digest when `target` is a digest.
    async fn get_manifest(&self, target: &Target) -> Result<RawManifest>;

    /// Stores a manifest by digest, then points each of `tags` at it.
    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()>;

    /// Whether the blob is present.
    async fn has_blob(&self, desc: &Descriptor) -> Result<bool>;

    /// Reads a blob from `offset`. Bytes are not verified here; the receiving side verifies.
    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream>;

    /// Stores a blob read from `source`, verifying digest and size while it streams.
    /// Returns the number of bytes sent.
    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64>;

    /// Mounts a blob from another repository of the same registry. `Ok(false)` means "not mounted,
    /// upload instead" (never fatal).
    async fn mount_blob(&self, _desc: &Descriptor, _from_repository: &str) -> Result<bool> {
        Ok(false)
    }

    /// The referrers of `subject` held here (manifests whose `subject` names it), each with its
    /// `artifactType` and annotations; only those of `artifact_types` when it is not empty.
    /// `listed`: this repository's tags, when the caller has just listed them (a store that
    /// reads referrers from a tag, a registry's fallback index, skips reading one not listed).
    /// A store that cannot hold referrers has none.
    async fn find_referrers(
        &self,
        _subject: &Digest,
        _artifact_types: &[String],
        _listed: Option<&std::collections::HashSet<String>>,
    ) -> Result<Vec<Referrer>> {
        Ok(Vec::new())
    }

    /// [`Store::find_referrers`] without a tags list at hand.
    async fn referrers(
        &self,
        subject: &Digest,
        artifact_types: &[String],
    ) -> Result<Vec<Referrer>> {
        self.find_referrers(subject, artifact_types, None).await
    }

    /// Makes `referrers` (already stored here by digest) findable from `subject`. Where the
    /// store does not list them by itself, this writes a tag (the fallback index), so callers
    /// call it in their tag phase.
    async fn link_referrers(&self, _subject: &Digest, _referrers: &[Referrer]) -> Result<Linked> {
        Ok(Linked::Itself)
    }

    /// The tags of this repository or layout.
    async fn list_tags(&self) -> Result<Vec<String>>;

    /// Every image a local store holds (tagged or not), when it can list them without a request
    /// per image; `None` for registries (list their tags instead).
    async fn list_images(&self) -> Result<Option<Vec<StoredImage>>> {
        Ok(None)
    }

    /// Removes the tag `tag`, leaving the manifest and its other tags. Fails with
    /// [`Error::Unsupported`] where tags cannot be deleted apart from their manifest (callers
    /// may then delete the manifest when nothing else names it).
    async fn delete_tag(&self, tag: &str) -> Result<()> {
        Err(unsupported(
            self,
            Op::DeleteTag,
            tag,
            "this store cannot delete tags",
        ))
    }

    /// Removes the manifest `digest` and with it every tag that points at it (blobs stay, for a
    /// registry's garbage collection). [`Error::Unsupported`] where deletion is not possible.
    async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let target = digest.to_string();
        Err(unsupported(
            self,
            Op::DeleteManifest,
            &target,
            "this store cannot delete manifests",
        ))
    }
}

/// One image of a local store: an `index.json` entry of a layout.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredImage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(flatten)]
    pub descriptor: Descriptor,
}

/// The [`Error::Unsupported`] a store answers for a capability it lacks.
pub fn unsupported<S: Store + ?Sized>(store: &S, op: Op, target: &str, reason: &str) -> Error {
    Error::Unsupported {
        op,
        location: store.location(),
        target: target.to_string(),
        reason: reason.to_string(),
    }
}

/// A [`BlobSource`] reading one blob from a store.
pub struct StoreBlob<'a> {
    pub store: &'a dyn Store,
    pub desc: &'a Descriptor,
}

#[async_trait]
impl BlobSource for StoreBlob<'_> {
    async fn open(&self, offset: u64) -> Result<BlobStream> {
        self.store.open_blob(self.desc, offset).await
    }
}

/// Hands `stream`'s chunks to a writer thread through `tx` until the stream ends, fails (its
/// error is returned) or the writer stops (a closed channel: the writer reports why). `tx` is
/// dropped at the end, so the writer sees the end of the blob.
pub(crate) async fn feed(
    stream: &mut BlobStream,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) -> Result<()> {
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        if tx.send(chunk?).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Why a blob writer (a layout's, an archive's) stopped before the end of its stream.
pub(crate) enum WriteFailure {
    /// More bytes arrived than the descriptor's size (hash state of what was seen).
    TooLong(crate::digest::DigestHasher),
    Io(std::io::Error),
}
