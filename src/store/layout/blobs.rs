//! Blob files of a layout: verified streaming writes (temp file, hash, fsync, rename) and reads.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use tokio::io::AsyncSeekExt;

use super::file_io::{read_chunks, DoubleBufWriter};
use super::index::layout_err;
use crate::digest::{Digest, DigestHasher};
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;
use crate::store::BlobStream;

/// Bytes gathered before each write to disk (two such buffers per blob being written).
const WRITE_BATCH: usize = 1024 * 1024;
/// Bytes per chunk of a blob read (two chunks in memory per blob being read).
const READ_CHUNK: usize = 1024 * 1024;

/// The blob files of one layout directory.
#[derive(Clone, Debug)]
pub(super) struct Blobs {
    dir: PathBuf,
    /// `oci:<root>`, for messages.
    location: String,
}

impl Blobs {
    pub fn new(root: &Path, location: String) -> Self {
        Blobs {
            dir: root.join("blobs").join("sha256"),
            location,
        }
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    fn not_found(&self, digest: &Digest) -> Error {
        Error::NotFound {
            what: format!("blob {digest}"),
            location: self.location.clone(),
        }
    }

    /// The blob's size on disk, or `None` when it is absent.
    pub async fn size(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Err(layout_err(Op::ReadLayout, &path, "not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(layout_err(Op::ReadLayout, &path, e.to_string())),
        }
    }

    /// Reads a whole manifest blob, refusing one over `limit` bytes; `Ok(None)` when absent.
    pub async fn read_manifest(&self, digest: &Digest, limit: usize) -> Result<Option<Vec<u8>>> {
        let Some(size) = self.size(digest).await? else {
            return Ok(None);
        };
        if size > limit as u64 {
            return Err(Error::ManifestTooLarge {
                location: self.location.clone(),
                target: digest.to_string(),
                limit,
            });
        }
        let path = self.path(digest);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| layout_err(Op::ReadLayout, &path, e.to_string()))?;
        Ok(Some(bytes))
    }

    /// Streams a blob from `offset`.
    pub async fn open(&self, digest: &Digest, offset: u64) -> Result<BlobStream> {
        let path = self.path(digest);
        let io_err = |e: std::io::Error| layout_err(Op::ReadLayout, &path, e.to_string());
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.not_found(digest))
            }
            Err(e) => return Err(io_err(e)),
        };
        let len = file.metadata().await.map_err(io_err)?.len();
        if offset > len {
            let msg = format!("offset {offset} is past the end of the blob ({len} bytes)");
            return Err(layout_err(Op::ReadLayout, &path, msg));
        }
        if offset > 0 {
            file.seek(SeekFrom::Start(offset)).await.map_err(io_err)?;
        }
        let file = file.into_std().await;
        let path = path.clone();
        let stream = read_chunks(file, READ_CHUNK)
            .map_err(move |e| layout_err(Op::ReadLayout, &path, e.to_string()));
        Ok(stream.boxed())
    }

    /// Writes `stream` into a temp file next to the blobs while hashing it, and renames it into
    /// place only if it matches `desc` (digest and size). On any failure the temp file is removed.
    /// Returns the number of bytes written.
    pub async fn write(&self, desc: &Descriptor, mut stream: BlobStream) -> Result<u64> {
        let tmp = self.temp_file().await?;
        let tmp_path = tmp.path().to_path_buf();
        let io_err = |e: std::io::Error| layout_err(Op::WriteLayout, &tmp_path, e.to_string());
        let std_file = tmp.as_file().try_clone().map_err(io_err)?;
        let mut out = DoubleBufWriter::new(std_file, WRITE_BATCH);
        let mut hasher = DigestHasher::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            if hasher.len() > desc.size {
                // More bytes than the descriptor says: stop before filling the disk.
                return Err(self.mismatch(desc, hasher));
            }
            out.push(chunk).await.map_err(io_err)?;
        }
        out.finish().await.map_err(io_err)?;
        let (digest, size) = hasher.clone().finish();
        if digest != desc.digest || size != desc.size {
            return Err(self.mismatch(desc, hasher));
        }
        self.persist(tmp, &desc.digest).await?;
        Ok(size)
    }

    /// Writes bytes already in memory (a manifest) as a blob, verified the same way.
    pub async fn write_bytes(&self, desc: &Descriptor, bytes: bytes::Bytes) -> Result<u64> {
        let stream = futures::stream::once(async move { Ok(bytes) });
        self.write(desc, stream.boxed()).await
    }

    async fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.dir.clone();
        let made = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            tempfile::Builder::new().prefix(".tmp-").tempfile_in(&dir)
        })
        .await;
        let err = |m: String| layout_err(Op::WriteLayout, &self.dir, m);
        made.map_err(|e| err(e.to_string()))?
            .map_err(|e| err(e.to_string()))
    }

    async fn persist(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<()> {
        let to = self.path(digest);
        let dest = to.clone();
        let done =
            tokio::task::spawn_blocking(move || tmp.persist(&dest).map_err(|e| e.error)).await;
        let err = |m: String| layout_err(Op::WriteLayout, &to, m);
        done.map_err(|e| err(e.to_string()))?
            .map(|_| ())
            .map_err(|e| err(e.to_string()))
    }

    fn mismatch(&self, desc: &Descriptor, hasher: DigestHasher) -> Error {
        let (actual, actual_size) = hasher.finish();
        Error::DigestMismatch {
            location: self.location.clone(),
            expected: desc.digest.clone(),
            expected_size: desc.size,
            actual,
            actual_size,
        }
    }
}
