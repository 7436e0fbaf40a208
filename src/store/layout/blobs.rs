//! Blob files of a layout: verified streaming writes (temp file in `.ferry/tmp/`, hash, fsync,
//! rename) and reads.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use futures::StreamExt;

use super::index::layout_err;
use super::workdir::TempArea;
use crate::digest::{Digest, DigestHasher};
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;
use crate::store::{BlobStream, WriteFailure};

/// Bytes gathered before each write to disk (network frames are often this large already:
/// larger ones go straight through).
const WRITE_BUF: usize = 64 * 1024;
/// Chunks queued between the network side and the disk writer. Each may pin a network read
/// buffer of up to ~400 KiB, times the blobs in flight (8 by default): two keep the disk busy
/// and the peak RSS of a 32-layer export near 25 MiB (four: ~35-43 MiB, no faster).
const IN_FLIGHT: usize = 2;
/// Bytes per chunk of a blob read.
const READ_BUF: usize = 256 * 1024;

/// The blob files of one layout directory.
#[derive(Clone, Debug)]
pub(super) struct Blobs {
    dir: PathBuf,
    /// Where blobs are written before they are verified and renamed into `dir`.
    tmp: TempArea,
    /// `oci:<root>`, for messages.
    location: String,
}

impl Blobs {
    pub fn new(root: &Path, location: String) -> Self {
        Blobs {
            dir: root.join("blobs").join("sha256"),
            tmp: TempArea::new(root),
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

    /// Streams a blob from `offset`. A blocking thread reads the file straight into the
    /// chunks it hands over (one copy), a few chunks ahead of the consumer.
    pub async fn open(&self, digest: &Digest, offset: u64) -> Result<BlobStream> {
        let path = self.path(digest);
        let io_err = |e: std::io::Error| layout_err(Op::ReadLayout, &path, e.to_string());
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.not_found(digest))
            }
            Err(e) => return Err(io_err(e)),
        };
        let len = file.metadata().map_err(io_err)?.len();
        if offset > len {
            let msg = format!("offset {offset} is past the end of the blob ({len} bytes)");
            return Err(layout_err(Op::ReadLayout, &path, msg));
        }
        use std::io::Seek;
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
        tokio::task::spawn_blocking(move || read_chunks(file, path, tx));
        Ok(tokio_stream_from(rx))
    }

    /// Writes `stream` into a temp file while hashing it, and renames it into
    /// place only if it matches `desc` (digest and size). On any failure the temp file is removed.
    /// Returns the number of bytes written.
    ///
    /// Hashing and writing run on a blocking thread fed through a small bounded channel, so the
    /// network side keeps receiving while the disk side works, and memory stays bounded.
    pub async fn write(&self, desc: &Descriptor, mut stream: BlobStream) -> Result<u64> {
        let tmp = self.temp_file().await?;
        let tmp_path = tmp.path().to_path_buf();
        let io_err = |e: std::io::Error| layout_err(Op::WriteLayout, &tmp_path, e.to_string());
        let file = tmp.as_file().try_clone().map_err(io_err)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(IN_FLIGHT);
        let limit = desc.size;
        let writer = tokio::task::spawn_blocking(move || write_hashed(file, rx, limit));
        let fed = crate::store::feed(&mut stream, tx).await;
        let written = writer.await.map_err(|e| io_err(std::io::Error::other(e)))?;
        fed?;
        let hasher = match written {
            Ok(h) => h,
            Err(WriteFailure::TooLong(h)) => return Err(self.mismatch(desc, h)),
            Err(WriteFailure::Io(e)) => return Err(io_err(e)),
        };
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
        let (area, dir) = (self.tmp.clone(), self.dir.clone());
        let made = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            area.file("blob-")
        })
        .await;
        let err = |m: String| layout_err(Op::WriteLayout, self.tmp.dir(), m);
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

/// The blocking side: hash and write each chunk, then flush and fsync.
fn write_hashed(
    file: std::fs::File,
    mut rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    limit: u64,
) -> std::result::Result<DigestHasher, WriteFailure> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUF, file);
    let mut hasher = DigestHasher::new();
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        if hasher.len() > limit {
            return Err(WriteFailure::TooLong(hasher));
        }
        out.write_all(&chunk).map_err(WriteFailure::Io)?;
    }
    let file = out
        .into_inner()
        .map_err(|e| WriteFailure::Io(e.into_error()))?;
    file.sync_all().map_err(WriteFailure::Io)?;
    Ok(hasher)
}

/// The blocking side of a read: fills fresh buffers from the file until EOF or the reader is gone.
fn read_chunks(
    mut file: std::fs::File,
    path: PathBuf,
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes>>,
) {
    use std::io::Read;
    loop {
        let mut buf = bytes::BytesMut::zeroed(READ_BUF);
        let n = match file.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(layout_err(Op::ReadLayout, &path, e.to_string())));
                return;
            }
        };
        buf.truncate(n);
        if tx.blocking_send(Ok(buf.freeze())).is_err() {
            return;
        }
    }
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes>>) -> BlobStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
