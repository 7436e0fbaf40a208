//! Archive transports: `oci-archive:FILE` (a tar of an OCI image layout) and
//! `docker-archive:FILE` (the `docker save` format), read in place and written whole.
//!
//! Reading indexes the tar's entries in one pass over its headers ([`tarindex`]) and serves
//! manifests and blobs by offset, each verified against its digest (a blob while it streams,
//! its last chunk held back until the hash matches). Only a compressed wrapper or standard
//! input forces a spool: the decompressed tar is copied to a temp file under `$TMPDIR` in the
//! same pass. Writing an oci-archive streams each blob straight into its place in the tar
//! ([`sink`]: a temp file beside `FILE`, each blob's slot sized from its descriptor, filled by
//! position while blobs arrive in parallel); manifests and `index.json` are kept in a small
//! spool layout (seeded from `FILE` when it exists, so images accumulate as in a layout
//! directory) and `commit` appends them, the index last, then renames the temp file over
//! `FILE` (or copies it to standard output for `-`): without a commit (a failed copy) `FILE`
//! is untouched. A docker-archive is still packed from a spool layout, since its layers are
//! stored uncompressed and their sizes are not known until they are decompressed. Spools and
//! temp files are removed when the store is dropped.

pub mod compress;
pub mod docker;
mod docker_pack;
mod docker_write;
mod oci;
mod pack;
mod sink;
mod stream;
mod tarindex;
mod wrapper;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{Descriptor, RawManifest};
use crate::store::layout::LayoutStore;
use crate::store::{unsupported, BlobSource, BlobStream, Store, StoredImage, Target};

pub use self::compress::Compress;
pub use self::docker::DockerArchiveStore;
pub use self::docker_write::DockerWriter;
use self::oci::OciView;
pub use self::tarindex::MAX_META_BYTES;
use self::tarindex::{refused, TarIndex};

/// The metadata files read during the index pass.
const METAS: [&str; 4] = ["oci-layout", "index.json", "manifest.json", "repositories"];

/// Which archive format a file holds, from its entries (for `ferry import FILE`, `ferry ls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    Oci,
    Docker,
}

/// Tells an OCI archive from a docker-archive by its entries: `manifest.json` without
/// `index.json` is Docker's; both (Docker 25+) read as a docker-archive too, since its
/// `RepoTags` name the images.
pub fn detect(file: &Path) -> Result<ArchiveFormat> {
    let idx = TarIndex::open(file, &METAS)?;
    Ok(format_of(&idx))
}

fn format_of(idx: &TarIndex) -> ArchiveFormat {
    if idx.meta("manifest.json").is_some() {
        ArchiveFormat::Docker
    } else {
        ArchiveFormat::Oci
    }
}

/// An `oci-archive:` file, read-only (a source) or to be written on [`ArchiveStore::commit`].
pub struct ArchiveStore {
    file: PathBuf,
    mode: Mode,
}

enum Mode {
    Read {
        idx: TarIndex,
        view: OciView,
    },
    Write {
        /// Manifests and `index.json` (and an existing archive's small blobs).
        inner: LayoutStore,
        spool: tempfile::TempDir,
        /// Blobs, streamed into the tar itself; `None` once committed.
        sink: std::sync::Mutex<Option<std::sync::Arc<sink::TarSink>>>,
    },
}

pub(crate) fn new_spool(file: &Path) -> Result<tempfile::TempDir> {
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
    /// Opens the archive `file` (`-`: standard input) for reading: indexes and checks it.
    /// [`Error::NotFound`] when there is no such file, [`Error::Archive`] (naming the entry)
    /// when it is refused.
    pub fn open(file: &Path) -> Result<Self> {
        let idx = TarIndex::open(file, &METAS)?;
        let view = OciView::open(&idx)?;
        Ok(ArchiveStore {
            file: file.to_path_buf(),
            mode: Mode::Read { idx, view },
        })
    }

    /// Opens the archive `file` for writing (`-`: standard output): its images (when it
    /// exists) are kept, and [`ArchiveStore::commit`] replaces the file with them and whatever
    /// was copied in.
    pub fn create(file: &Path) -> Result<Self> {
        let spool = new_spool(file)?;
        let sink = sink::TarSink::create(file)?;
        if file.as_os_str() != "-" && file.exists() {
            let idx = TarIndex::open(file, &METAS)?;
            OciView::open(&idx)?;
            seed(&idx, spool.path(), &sink)?;
        }
        let inner = LayoutStore::create(spool.path())?;
        Ok(ArchiveStore {
            file: file.to_path_buf(),
            mode: Mode::Write {
                inner,
                spool,
                sink: std::sync::Mutex::new(Some(std::sync::Arc::new(sink))),
            },
        })
    }

    /// The sink of a store being written, or an error once it was committed.
    fn sink(&self) -> Result<std::sync::Arc<sink::TarSink>> {
        let Mode::Write { sink, .. } = &self.mode else {
            return Err(self.read_only(Op::WriteLayout, "sink"));
        };
        let guard = sink.lock().unwrap();
        match guard.as_ref() {
            Some(s) => Ok(s.clone()),
            None => Err(unsupported(
                self,
                Op::WriteLayout,
                "blob",
                "the archive was written already",
            )),
        }
    }

    /// The archive file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether reading had to spool the archive (compressed, or standard input).
    pub fn spooled(&self) -> bool {
        matches!(&self.mode, Mode::Read { idx, .. } if idx.spooled)
    }

    /// The one image of an archive that holds exactly one (what `oci-archive:FILE` without a
    /// tag means); an [`Error::Archive`] listing the tags when it holds none or several.
    pub fn only_image(&self) -> Result<Descriptor> {
        match &self.mode {
            Mode::Read { view, .. } => view.only_image(&self.file, "oci-archive:"),
            Mode::Write { .. } => Err(self.write_only("only_image")),
        }
    }

    /// Finishes the archive: the spool's manifests and `index.json` go after the blobs, then
    /// the temp file is renamed over `FILE` (or copied to standard output). Only a store
    /// opened with [`ArchiveStore::create`] writes, once.
    pub async fn commit(&self) -> Result<()> {
        let Mode::Write { spool, sink, .. } = &self.mode else {
            return Err(self.read_only(Op::WriteLayout, "commit"));
        };
        let taken = sink.lock().unwrap().take();
        let Some(sink) = taken.and_then(std::sync::Arc::into_inner) else {
            return Err(unsupported(
                self,
                Op::WriteLayout,
                "commit",
                "the archive was written already, or a blob is still being written",
            ));
        };
        let layout = spool.path().to_path_buf();
        let index = std::fs::read(layout.join("index.json")).map_err(|e| Error::Output {
            path: self.file.clone(),
            reason: format!("cannot read the spool's index.json: {e}"),
        })?;
        let blobs = layout.join("blobs").join("sha256");
        tokio::task::spawn_blocking(move || sink.finish(&blobs, &index))
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

    fn write_only(&self, target: &str) -> Error {
        unsupported(
            self,
            Op::ReadLayout,
            target,
            "an archive being written is not read back",
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

/// Keeps an existing archive's images: `index.json` and blobs that may be manifests (up to
/// the manifest size cap) go into the spool `dir`, larger blobs straight into the new tar;
/// each blob verified.
fn seed(idx: &TarIndex, dir: &Path, sink: &sink::TarSink) -> Result<()> {
    let werr = |p: &Path, e: std::io::Error| Error::Layout {
        op: Op::WriteLayout,
        path: p.to_path_buf(),
        message: format!("cannot write the archive's spool: {e}"),
    };
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| werr(&blobs, e))?;
    for meta in ["oci-layout", "index.json"] {
        let p = dir.join(meta);
        std::fs::write(&p, idx.meta(meta).unwrap_or_default()).map_err(|e| werr(&p, e))?;
    }
    let names: Vec<String> = idx
        .names()
        .filter(|n| n.starts_with("blobs/sha256/"))
        .cloned()
        .collect();
    for name in names {
        let hex = &name["blobs/sha256/".len()..];
        let loc = idx.get(&name).expect("listed");
        let mut r = idx.reader(&name, loc)?;
        if loc.size > crate::manifest::MAX_MANIFEST_BYTES as u64 {
            let digest: Digest = format!("sha256:{hex}")
                .parse()
                .map_err(|_| refused(&idx.shown, Some(&name), "not named after a digest"))?;
            let desc = Descriptor {
                media_type: String::new(),
                digest,
                size: loc.size,
                platform: None,
            };
            sink.put_sync(&desc, r).map_err(|e| match e {
                Error::DigestMismatch { actual, .. } => refused(
                    &idx.shown,
                    Some(&name),
                    format!(
                        "the bytes hash to {actual}, not to the digest the entry is named after"
                    ),
                ),
                e => e,
            })?;
            continue;
        }
        let to = blobs.join(hex);
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&to).map_err(|e| werr(&to, e))?);
        let mut h = crate::digest::DigestHasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = std::io::Read::read(&mut r, &mut buf)
                .map_err(|e| refused(&idx.shown, Some(&name), format!("cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            std::io::Write::write_all(&mut out, &buf[..n]).map_err(|e| werr(&to, e))?;
        }
        std::io::Write::flush(&mut out).map_err(|e| werr(&to, e))?;
        let (d, _) = h.finish();
        if d.hex() != hex {
            return Err(refused(
                &idx.shown,
                Some(&name),
                format!("the bytes hash to {d}, not to the digest the entry is named after"),
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl Store for ArchiveStore {
    fn location(&self) -> String {
        format!("oci-archive:{}", self.file.display())
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        match &self.mode {
            Mode::Read { idx, view } => {
                let Some(d) = view.find(idx, target)? else {
                    return Ok(None);
                };
                if !d.media_type.is_empty() {
                    return Ok(Some(d));
                }
                Ok(Some(
                    view.manifest(idx, &d.digest, None, "index.json", &target.to_string())?
                        .descriptor(),
                ))
            }
            Mode::Write { inner, .. } => inner.resolve(target).await.map_err(|e| self.ours(e)),
        }
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        match &self.mode {
            Mode::Read { idx, view } => view.get_manifest(idx, target, self.location()),
            Mode::Write { inner, .. } => inner.get_manifest(target).await.map_err(|e| self.ours(e)),
        }
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        match &self.mode {
            Mode::Write { inner, .. } => inner.put_manifest(manifest, tags).await,
            Mode::Read { .. } => Err(self.read_only(Op::PutManifest, &manifest.digest.to_string())),
        }
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        match &self.mode {
            Mode::Read { idx, view } => Ok(view.has_blob(idx, desc)),
            Mode::Write { inner, .. } => Ok(self.sink()?.has(desc) || inner.has_blob(desc).await?),
        }
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        match &self.mode {
            Mode::Read { idx, view } => view.open_blob(idx, desc, offset, self.location()),
            Mode::Write { inner, .. } => match self.sink()?.open(desc, offset) {
                Some(stream) => Ok(stream),
                None => inner
                    .open_blob(desc, offset)
                    .await
                    .map_err(|e| self.ours(e)),
            },
        }
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        match &self.mode {
            Mode::Write { .. } => {
                let sink = self.sink()?;
                sink.put(desc, source.open(0).await?).await
            }
            Mode::Read { .. } => Err(self.read_only(Op::UploadBlob, &desc.digest.to_string())),
        }
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        match &self.mode {
            Mode::Read { view, .. } => Ok(view.tags()),
            Mode::Write { inner, .. } => inner.list_tags().await,
        }
    }

    async fn list_images(&self) -> Result<Option<Vec<StoredImage>>> {
        match &self.mode {
            Mode::Read { view, .. } => Ok(Some(view.images())),
            Mode::Write { inner, .. } => inner.list_images().await,
        }
    }

    async fn find_referrers(
        &self,
        subject: &Digest,
        types: &[String],
        _listed: Option<&std::collections::HashSet<String>>,
    ) -> Result<Vec<crate::referrers::Referrer>> {
        let (idx, view) = match &self.mode {
            Mode::Write { inner, .. } => {
                return inner
                    .referrers(subject, types)
                    .await
                    .map_err(|e| self.ours(e))
            }
            Mode::Read { idx, view } => (idx, view),
        };
        // As in a layout: referrers are manifests listed in index.json with this subject.
        let mut out: Vec<crate::referrers::Referrer> = Vec::new();
        for image in view.images() {
            let d = &image.descriptor.digest;
            if d == subject || out.iter().any(|r| &r.digest == d) {
                continue;
            }
            let m = view.get_manifest(idx, &Target::Digest(d.clone()), self.location())?;
            out.extend(crate::referrers::Referrer::of_subject(&m, subject, types));
        }
        Ok(out)
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
