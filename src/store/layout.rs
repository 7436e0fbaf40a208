//! OCI image layout directories as a store: `oci-layout`, `index.json` (tags), `blobs/sha256/<hex>`.
//!
//! Tags are `index.json` entries annotated `org.opencontainers.image.ref.name`. Blobs are written
//! to a temp file in `.ferry/tmp/` (out of every layout reader's way), verified while they stream,
//! then renamed into place, so a blob file is either complete and correct or absent.
//! `index.json` is replaced atomically, and every read-merge-replace of it holds the layout's
//! writer lock (`.ferry/lock`, an advisory `flock`), so concurrent writers, in this process or
//! others, lose no tag.

mod blobs;
mod index;
mod workdir;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use self::blobs::Blobs;
use self::index::{layout_err, write_atomic, write_atomic_sync, IndexFile};
use self::workdir::{TempArea, WriterLock};
use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{Children, Descriptor, ManifestError, RawManifest, MAX_MANIFEST_BYTES};
use crate::referrers::Referrer;
use crate::store::{BlobSource, BlobStream, Store, StoredImage, Target};

pub use self::index::REF_NAME;
pub use self::workdir::WORK_DIR;

const LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";

/// An OCI image layout directory.
pub struct LayoutStore {
    root: PathBuf,
    blobs: Blobs,
    /// Held across each read-modify-write of `index.json`.
    index_lock: tokio::sync::Mutex<()>,
}

impl LayoutStore {
    /// Opens an existing layout. Fails, naming the path and what is missing or malformed, when
    /// `path` is not a directory holding a valid `oci-layout` and `index.json`; with
    /// [`Error::NotFound`] when there is nothing at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(not_a_layout(path, "is not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: "OCI image layout".into(),
                    location: path.display().to_string(),
                })
            }
            Err(e) => return Err(not_a_layout(path, &e.to_string())),
        }
        check_layout_file(path)?;
        read_index_sync(path)?;
        Ok(Self::at(path))
    }

    /// Opens a layout for writing, creating the directory, `oci-layout`, an empty `index.json`
    /// and `blobs/sha256/` as needed. Existing content is kept (and must be valid); temp files
    /// that killed writers left behind are swept.
    ///
    /// Creating the files waits for the layout's writer lock (a blocking call, held only for
    /// that instant); opening a layout that has them takes no lock.
    pub fn create(path: &Path) -> Result<Self> {
        let blobs = path.join("blobs").join("sha256");
        let complete =
            blobs.is_dir() && path.join(LAYOUT_FILE).is_file() && path.join(INDEX_FILE).is_file();
        if !complete {
            Self::create_files(path)?;
        }
        check_layout_file(path)?;
        read_index_sync(path)?;
        workdir::sweep(path);
        Ok(Self::at(path))
    }

    /// Creates what is missing of a layout, under the writer lock (another writer may be
    /// creating the same layout).
    fn create_files(path: &Path) -> Result<()> {
        let werr = |p: &Path, e: std::io::Error| layout_err(Op::WriteLayout, p, e.to_string());
        std::fs::create_dir_all(path).map_err(|e| werr(path, e))?;
        let _lock = WriterLock::acquire(path)?;
        let tmp = TempArea::new(path);
        let blobs = path.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| werr(&blobs, e))?;
        let layout_file = path.join(LAYOUT_FILE);
        if !layout_file.exists() {
            let doc = oci_spec::image::OciLayoutBuilder::default()
                .image_layout_version(LAYOUT_VERSION)
                .build()
                .map_err(|e| werr(&layout_file, std::io::Error::other(e)))?;
            let body = serde_json::to_vec(&doc).expect("oci-layout serialises");
            write_atomic_sync(&layout_file, &body, &tmp)?;
        }
        let index_file = path.join(INDEX_FILE);
        if !index_file.exists() {
            write_atomic_sync(&index_file, &IndexFile::empty().to_bytes(), &tmp)?;
        }
        Ok(())
    }

    fn at(path: &Path) -> Self {
        let location = format!("oci:{}", path.display());
        LayoutStore {
            root: path.to_path_buf(),
            blobs: Blobs::new(path, location),
            index_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    async fn read_index(&self) -> Result<IndexFile> {
        let path = self.root.join(INDEX_FILE);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| layout_err(Op::ReadLayout, &path, e.to_string()))?;
        IndexFile::parse(&bytes, &path)
    }

    fn not_found(&self, what: String) -> Error {
        Error::NotFound {
            what,
            location: self.location(),
        }
    }

    /// Reads and verifies the manifest blob `digest`; the media type comes from `known` when it
    /// names one, else from the body. `Ok(None)` when there is no such blob.
    async fn load_manifest(
        &self,
        digest: &Digest,
        known: Option<&Descriptor>,
    ) -> Result<Option<RawManifest>> {
        let Some(bytes) = self.blobs.read_manifest(digest, MAX_MANIFEST_BYTES).await? else {
            return Ok(None);
        };
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                location: self.location(),
                expected: digest.clone(),
                expected_size: known.map_or(bytes.len() as u64, |d| d.size),
                actual,
                actual_size: bytes.len() as u64,
            });
        }
        let media_type = known
            .map(|d| d.media_type.as_str())
            .filter(|m| !m.is_empty());
        if media_type.is_none() && !looks_like_manifest(&bytes) {
            let reason = "the blob is not a manifest (no schemaVersion 2 with config or manifests)";
            return Err(ManifestError {
                digest: digest.clone(),
                reason: reason.into(),
            }
            .into());
        }
        Ok(Some(RawManifest::new(bytes.into(), media_type)?))
    }

    /// Whether `digest` is named by an `index.json` entry or by an index that an entry names.
    async fn is_referenced(&self, idx: &IndexFile, digest: &Digest) -> Result<bool> {
        if idx.find_digest(digest).is_some() {
            return Ok(true);
        }
        for entry in idx.entries() {
            if !crate::manifest::is_index(&entry.desc.media_type) {
                continue;
            }
            if let Some(m) = self
                .load_manifest(&entry.desc.digest, Some(&entry.desc))
                .await?
            {
                if child_digests(&m).contains(digest) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// An index's child manifest digests; empty for anything else (or a malformed index).
fn child_digests(m: &RawManifest) -> Vec<Digest> {
    match m.children() {
        Ok(Children::Index { manifests }) => manifests.into_iter().map(|d| d.digest).collect(),
        _ => Vec::new(),
    }
}

/// Whether a blob (whose type is not otherwise known) is an image manifest or index.
fn looks_like_manifest(bytes: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    v["schemaVersion"] == 2 && (v["config"].is_object() || v["manifests"].is_array())
}

fn not_a_layout(path: &Path, why: &str) -> Error {
    layout_err(
        Op::ReadLayout,
        path,
        format!("not an OCI image layout: {why}"),
    )
}

fn check_layout_file(root: &Path) -> Result<()> {
    let path = root.join(LAYOUT_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        let why = format!("cannot read {LAYOUT_FILE} ({e}); an OCI image layout has one");
        layout_err(Op::ReadLayout, &path, why)
    })?;
    let doc: oci_spec::image::OciLayout = serde_json::from_slice(&bytes).map_err(|e| {
        let why = format!("malformed JSON or no \"imageLayoutVersion\" string: {e}");
        layout_err(Op::ReadLayout, &path, why)
    })?;
    let version = doc.image_layout_version();
    if version != LAYOUT_VERSION {
        tracing::warn!(path = %path.display(), version = %version, "unexpected imageLayoutVersion");
    }
    Ok(())
}

fn read_index_sync(root: &Path) -> Result<IndexFile> {
    let path = root.join(INDEX_FILE);
    let bytes = std::fs::read(&path).map_err(|e| {
        let why = format!("cannot read {INDEX_FILE} ({e}); an OCI image layout has one");
        layout_err(Op::ReadLayout, &path, why)
    })?;
    IndexFile::parse(&bytes, &path)
}

#[async_trait]
impl Store for LayoutStore {
    fn location(&self) -> String {
        format!("oci:{}", self.root.display())
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        let idx = self.read_index().await?;
        let (digest, known) = match target {
            Target::Tag(t) => match idx.find_tag(t)? {
                Some(d) => (d.digest.clone(), d.clone()),
                None => return Ok(None),
            },
            Target::Digest(d) => match idx.find_digest(d) {
                Some(desc) => (d.clone(), desc.clone()),
                None => return self.resolve_blob(d).await,
            },
        };
        if !known.media_type.is_empty() {
            return Ok(Some(known));
        }
        let m = self.load_manifest(&digest, None).await?;
        Ok(m.map(|m| m.descriptor()))
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        let idx = self.read_index().await?;
        let (digest, known) = match target {
            Target::Tag(t) => {
                let d = idx
                    .find_tag(t)?
                    .ok_or_else(|| self.not_found(format!("tag {t}")))?;
                (d.digest.clone(), Some(d.clone()))
            }
            Target::Digest(d) => (d.clone(), idx.find_digest(d).cloned()),
        };
        self.load_manifest(&digest, known.as_ref())
            .await?
            .ok_or_else(|| self.not_found(format!("manifest {digest}")))
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        let desc = manifest.descriptor();
        if self.blobs.size(&desc.digest).await? != Some(desc.size) {
            self.blobs
                .write_bytes(&desc, manifest.bytes.clone())
                .await?;
        }
        let children = child_digests(manifest);
        // The mutex keeps this process's writers off the blocking pool while one waits for the
        // file lock; the file lock keeps out other processes (and other stores on this path).
        let _guard = self.index_lock.lock().await;
        let _lock = WriterLock::acquire_async(self.root.clone()).await?;
        let mut idx = self.read_index().await?;
        let before = idx.to_bytes();
        if tags.is_empty() {
            if !self.is_referenced(&idx, &desc.digest).await? {
                idx.add_untagged(&desc);
            }
        } else {
            for tag in tags {
                idx.set_tag(&desc, tag);
            }
        }
        // Children pushed before this index no longer need entries of their own.
        idx.drop_untagged(&children);
        let after = idx.to_bytes();
        if after != before {
            write_atomic(self.root.join(INDEX_FILE), after, TempArea::new(&self.root)).await?;
        }
        tracing::debug!(location = %self.location(), digest = %desc.digest, ?tags, "manifest stored");
        Ok(())
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.blobs.size(&desc.digest).await? == Some(desc.size))
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        self.blobs.open(&desc.digest, offset).await
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        let stream = source.open(0).await?;
        let n = self.blobs.write(desc, stream).await?;
        tracing::debug!(location = %self.location(), digest = %desc.digest, bytes = n, "blob stored");
        Ok(n)
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.read_index().await?.tags())
    }

    /// The `index.json` entries (manifests, not indexes' children) whose `subject` is
    /// `subject`: a layout lists its referrers as entries of their own (ferry adds one for
    /// every manifest pushed untagged).
    async fn find_referrers(
        &self,
        subject: &Digest,
        types: &[String],
        _listed: Option<&std::collections::HashSet<String>>,
    ) -> Result<Vec<Referrer>> {
        let idx = self.read_index().await?;
        let mut out: Vec<Referrer> = Vec::new();
        for entry in idx.entries() {
            if &entry.desc.digest == subject || out.iter().any(|r| r.digest == entry.desc.digest) {
                continue;
            }
            let Some(m) = self
                .load_manifest(&entry.desc.digest, Some(&entry.desc))
                .await?
            else {
                continue;
            };
            out.extend(Referrer::of_subject(&m, subject, types));
        }
        Ok(out)
    }

    async fn list_images(&self) -> Result<Option<Vec<StoredImage>>> {
        let idx = self.read_index().await?;
        let images = idx.entries().iter().map(|e| StoredImage {
            tag: e.tag.clone(),
            descriptor: e.desc.clone(),
        });
        Ok(Some(images.collect()))
    }

    /// Drops the `index.json` entry of `tag`; the manifest and its blobs stay in `blobs/`.
    async fn delete_tag(&self, tag: &str) -> Result<()> {
        let what = format!("tag {tag}");
        self.edit_index(what, |e| e.tag.as_deref() != Some(tag))
            .await
    }

    /// Drops every `index.json` entry naming `digest` (its tags with it); blobs stay.
    async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let what = format!("manifest {digest}");
        self.edit_index(what, |e| &e.desc.digest != digest).await
    }
}

impl LayoutStore {
    /// Rewrites `index.json` without the entries `keep` refuses; `NotFound` (`what`) when it
    /// refuses none.
    async fn edit_index(&self, what: String, keep: impl Fn(&index::Entry) -> bool) -> Result<()> {
        // The same locks as every other index writer (see `put_manifest`).
        let _guard = self.index_lock.lock().await;
        let _lock = WriterLock::acquire_async(self.root.clone()).await?;
        let mut idx = self.read_index().await?;
        if idx.retain(keep) == 0 {
            return Err(self.not_found(what));
        }
        let tmp = TempArea::new(&self.root);
        write_atomic(self.root.join(INDEX_FILE), idx.to_bytes(), tmp).await?;
        tracing::debug!(location = %self.location(), %what, "deleted from index.json");
        Ok(())
    }

    /// `resolve` of a digest that no `index.json` entry names: a manifest blob, if it is one.
    async fn resolve_blob(&self, digest: &Digest) -> Result<Option<Descriptor>> {
        match self.blobs.size(digest).await? {
            Some(size) if size <= MAX_MANIFEST_BYTES as u64 => {}
            _ => return Ok(None),
        }
        match self.load_manifest(digest, None).await {
            Ok(m) => Ok(m.map(|m| m.descriptor())),
            Err(Error::Manifest(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
