//! `docker-archive:FILE` as a destination: a spool layout collects blobs and manifests, tags
//! become `RepoTags` (`NAME:TAG`), and `commit` packs the archive ([`super::docker_pack`]).

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::new_spool;
use crate::error::{Error, Result};
use crate::manifest::{Descriptor, RawManifest};
use crate::store::layout::LayoutStore;
use crate::store::{BlobSource, BlobStream, Store, Target};

/// A `docker-archive:` file to be written on [`DockerWriter::commit`].
pub struct DockerWriter {
    file: PathBuf,
    /// The repository a bare tag is put under (`docker-archive:FILE:NAME[:TAG]`).
    name: Option<String>,
    inner: LayoutStore,
    spool: tempfile::TempDir,
}

impl DockerWriter {
    /// A writer of `file` (`-`: standard output); `name` is the repository of bare tags.
    pub fn create(file: &Path, name: Option<String>) -> Result<Self> {
        let spool = new_spool(file)?;
        let inner = LayoutStore::create(spool.path())?;
        Ok(DockerWriter {
            file: file.to_path_buf(),
            name,
            inner,
            spool,
        })
    }

    /// A `RepoTags` entry for `tag`: a full `NAME:TAG` as it is, a bare tag under the name;
    /// `None` (the image is written untagged, as skopeo does) when there is no name.
    fn repo_tag(&self, tag: &str) -> Option<String> {
        let last = tag.rsplit('/').next().unwrap_or(tag);
        if last.contains(':') {
            return Some(tag.to_string());
        }
        self.name.as_ref().map(|n| format!("{n}:{tag}"))
    }

    /// Writes the archive (temp file and rename, or standard output).
    pub async fn commit(&self) -> Result<()> {
        let (layout, file) = (self.spool.path().to_path_buf(), self.file.clone());
        tokio::task::spawn_blocking(move || super::docker_pack::pack(&layout, &file))
            .await
            .map_err(|e| Error::Output {
                path: self.file.clone(),
                reason: e.to_string(),
            })?
    }
}

#[async_trait]
impl Store for DockerWriter {
    fn location(&self) -> String {
        format!("docker-archive:{}", self.file.display())
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        match target {
            Target::Tag(t) => match self.repo_tag(t) {
                Some(t) => self.inner.resolve(&Target::Tag(t)).await,
                None => Ok(None),
            },
            t => self.inner.resolve(t).await,
        }
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        match target {
            Target::Tag(t) => {
                let named = self.repo_tag(t).ok_or_else(|| Error::NotFound {
                    what: format!("tag {t}"),
                    location: self.location(),
                })?;
                self.inner.get_manifest(&Target::Tag(named)).await
            }
            t => self.inner.get_manifest(t).await,
        }
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        let tags: Vec<String> = tags.iter().filter_map(|t| self.repo_tag(t)).collect();
        self.inner.put_manifest(manifest, &tags).await
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.inner.has_blob(desc).await
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        self.inner.open_blob(desc, offset).await
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        self.inner.put_blob(desc, source).await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        self.inner.list_tags().await
    }
}
