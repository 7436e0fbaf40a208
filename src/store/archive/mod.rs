//! `oci-archive:FILE`: an OCI image layout carried as one tar file, served through a private
//! temporary layout (the spool).
//!
//! Reading extracts the archive once, checking every entry (see [`extract`]), into a spool
//! directory under the system temp dir (`$TMPDIR`), then serves it with the layout store, which
//! verifies what it hands on. Writing copies into a spool layout (seeded from `FILE` when it
//! exists, so images accumulate as in a layout directory) and [`ArchiveStore::commit`] packs it
//! into `FILE` by temp file and rename: without a commit (a failed copy) `FILE` is untouched.
//! The spool is removed when the store is dropped. The spool needs as much free space as the
//! archive's contents.

mod extract;
mod pack;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{Descriptor, RawManifest};
use crate::store::layout::LayoutStore;
use crate::store::{unsupported, BlobSource, BlobStream, Store, StoredImage, Target};

pub use self::extract::MAX_META_BYTES;

/// An `oci-archive:` file, read-only (a source) or to be written on [`ArchiveStore::commit`].
pub struct ArchiveStore {
    file: PathBuf,
    inner: LayoutStore,
    writable: bool,
    spool: tempfile::TempDir,
}

fn new_spool(file: &Path) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("ferry-archive-")
        .tempdir()
        .map_err(|e| Error::Layout {
            op: Op::WriteLayout,
            path: std::env::temp_dir(),
            message: format!(
                "cannot create the spool directory for {}: {e}",
                file.display()
            ),
        })
}

impl ArchiveStore {
    /// Opens the archive `file` for reading: extracts and checks it. [`Error::NotFound`] when
    /// there is no such file, [`Error::Archive`] (naming the entry) when it is refused.
    pub fn open(file: &Path) -> Result<Self> {
        let spool = new_spool(file)?;
        extract::extract(file, spool.path())?;
        let inner = LayoutStore::open(spool.path()).map_err(|e| not_layout(file, e))?;
        Ok(ArchiveStore {
            file: file.to_path_buf(),
            inner,
            writable: false,
            spool,
        })
    }

    /// Opens the archive `file` for writing: its images (when it exists) are kept, and
    /// [`ArchiveStore::commit`] replaces the file with them and whatever was copied in.
    pub fn create(file: &Path) -> Result<Self> {
        let spool = new_spool(file)?;
        if file.exists() {
            extract::extract(file, spool.path())?;
        }
        let inner = LayoutStore::create(spool.path()).map_err(|e| not_layout(file, e))?;
        Ok(ArchiveStore {
            file: file.to_path_buf(),
            inner,
            writable: true,
            spool,
        })
    }

    /// The archive file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The one image of an archive that holds exactly one (what `oci-archive:FILE` without a
    /// tag means); an [`Error::Archive`] listing the tags when it holds none or several.
    pub fn only_image(&self) -> Result<Descriptor> {
        let path = self.spool.path().join("index.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| extract::refused(&self.file, Some("index.json"), e.to_string()))?;
        let doc: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| extract::refused(&self.file, Some("index.json"), e.to_string()))?;
        let entries = doc["manifests"].as_array().cloned().unwrap_or_default();
        if let [one] = entries.as_slice() {
            return serde_json::from_value(one.clone())
                .map_err(|e| extract::refused(&self.file, Some("index.json"), e.to_string()));
        }
        let tags: Vec<&str> = entries
            .iter()
            .filter_map(|e| e["annotations"][crate::store::layout::REF_NAME].as_str())
            .collect();
        let why = if entries.is_empty() {
            "holds no image".to_string()
        } else {
            format!(
                "holds {} images (tags: {}): name one, oci-archive:FILE:TAG",
                entries.len(),
                if tags.is_empty() {
                    "none".to_string()
                } else {
                    tags.join(", ")
                }
            )
        };
        Err(extract::refused(&self.file, None, why))
    }

    /// Writes the archive file from the spool (temp file beside it, then rename). Only a store
    /// opened with [`ArchiveStore::create`] writes.
    pub async fn commit(&self) -> Result<()> {
        if !self.writable {
            return Err(self.read_only(Op::WriteLayout, "commit"));
        }
        let (layout, file) = (self.spool.path().to_path_buf(), self.file.clone());
        tokio::task::spawn_blocking(move || pack::pack(&layout, &file))
            .await
            .map_err(|e| Error::Output {
                path: self.file.clone(),
                reason: e.to_string(),
            })?
    }

    fn read_only(&self, op: Op, target: &str) -> Error {
        unsupported(
            self,
            op,
            target,
            "an archive opened as a source is read-only",
        )
    }

    /// Errors of the spool layout name the archive, not the spool.
    fn ours(&self, e: Error) -> Error {
        match e {
            Error::NotFound { what, .. } => Error::NotFound {
                what,
                location: self.location(),
            },
            e => e,
        }
    }
}

/// A spool that is not a valid layout: the archive's `oci-layout` or `index.json` is malformed.
fn not_layout(file: &Path, e: Error) -> Error {
    match e {
        Error::Layout { path, message, .. } => {
            let entry = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let message = message.replace(&path.display().to_string(), "");
            extract::refused(file, entry.as_deref(), message)
        }
        e => e,
    }
}

#[async_trait]
impl Store for ArchiveStore {
    fn location(&self) -> String {
        format!("oci-archive:{}", self.file.display())
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        self.inner.resolve(target).await.map_err(|e| self.ours(e))
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        self.inner
            .get_manifest(target)
            .await
            .map_err(|e| self.ours(e))
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        if !self.writable {
            return Err(self.read_only(Op::PutManifest, &manifest.digest.to_string()));
        }
        self.inner.put_manifest(manifest, tags).await
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.inner.has_blob(desc).await
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        self.inner
            .open_blob(desc, offset)
            .await
            .map_err(|e| self.ours(e))
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        if !self.writable {
            return Err(self.read_only(Op::UploadBlob, &desc.digest.to_string()));
        }
        self.inner.put_blob(desc, source).await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        self.inner.list_tags().await
    }

    async fn list_images(&self) -> Result<Option<Vec<StoredImage>>> {
        self.inner.list_images().await
    }

    async fn referrers(
        &self,
        subject: &Digest,
        types: &[String],
    ) -> Result<Vec<crate::referrers::Referrer>> {
        let r = self.inner.referrers(subject, types).await;
        r.map_err(|e| self.ours(e))
    }

    async fn delete_tag(&self, tag: &str) -> Result<()> {
        Err(unsupported(
            self,
            Op::DeleteTag,
            tag,
            "archives are not edited in place",
        ))
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let target = digest.to_string();
        Err(unsupported(
            self,
            Op::DeleteManifest,
            &target,
            "archives are not edited in place",
        ))
    }
}
