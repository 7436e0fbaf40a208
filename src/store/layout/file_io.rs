//! Blob file I/O on the blocking pool, overlapped with the caller: reads that hand over each chunk
//! as it was read while the next one is being read, and double-buffered writes.
//!
//! Unlike `tokio::fs::File`, no byte is copied into an intermediate buffer on the way (reads), or
//! only once into a buffer that stays in cache (writes; `BufWriter<tokio::fs::File>` copied twice).

use std::fs::File;
use std::io::{self, Read, Write};

use bytes::Bytes;
use futures::stream::{self, Stream};
use tokio::task::JoinHandle;

/// The rest of `file` from its current position, in chunks of `chunk` bytes (the last shorter).
/// The next chunk is read while the consumer handles the current one: at most two chunks in memory.
pub(super) fn read_chunks(file: File, chunk: usize) -> impl Stream<Item = io::Result<Bytes>> {
    let first = spawn_read(file, chunk);
    stream::unfold(Some(first), move |pending| async move {
        let (file, read) = match pending?.await {
            Ok(done) => done,
            Err(e) => return Some((Err(io::Error::other(e)), None)),
        };
        match read {
            Ok(b) if b.is_empty() => None,
            Ok(b) => {
                // A short read means the end of the file.
                let next = (b.len() == chunk).then(|| spawn_read(file, chunk));
                Some((Ok(b), next))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// Reads up to `chunk` bytes (fewer only at the end of the file) into a fresh buffer.
fn spawn_read(mut file: File, chunk: usize) -> JoinHandle<(File, io::Result<Bytes>)> {
    tokio::task::spawn_blocking(move || {
        // `read_to_end` reads into the spare capacity without zeroing it first.
        let mut buf = Vec::with_capacity(chunk);
        let read = (&mut file).take(chunk as u64).read_to_end(&mut buf);
        (file, read.map(|_| Bytes::from(buf)))
    })
}

/// Writes bytes to a file through two buffers of `batch` bytes: one is filled while the other is
/// written on the blocking pool. The buffers are reused, so they stay in cache and no fresh memory
/// is touched per byte. Memory: two batches.
pub(super) struct DoubleBufWriter {
    slot: Slot,
    buf: Vec<u8>,
    limit: usize,
}

/// Where the file is: here (with the spare buffer), or on the blocking pool being written to.
enum Slot {
    Idle(File, Vec<u8>),
    Busy(JoinHandle<(File, Vec<u8>, io::Result<()>)>),
    /// An earlier write failed (and was reported).
    Failed,
}

impl DoubleBufWriter {
    pub fn new(file: File, batch: usize) -> Self {
        DoubleBufWriter {
            slot: Slot::Idle(file, Vec::with_capacity(batch)),
            buf: Vec::with_capacity(batch),
            limit: batch,
        }
    }

    /// Copies `chunk` into the current buffer, starting a write each time it fills.
    pub async fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (self.limit - self.buf.len()).min(rest.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() >= self.limit {
                self.start_write().await?;
            }
        }
        Ok(())
    }

    /// Writes what is buffered and waits for it, then `fsync`s the file.
    pub async fn finish(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.start_write().await?;
        }
        let (file, _) = self.idle().await?;
        let synced = tokio::task::spawn_blocking(move || file.sync_all()).await;
        synced.map_err(io::Error::other)?
    }

    /// Hands the full buffer to the blocking pool (once the previous write is done) and carries
    /// on with the spare one.
    async fn start_write(&mut self) -> io::Result<()> {
        let (mut file, mut spare) = self.idle().await?;
        spare.clear();
        let full = std::mem::replace(&mut self.buf, spare);
        self.slot = Slot::Busy(tokio::task::spawn_blocking(move || {
            let written = file.write_all(&full);
            (file, full, written)
        }));
        Ok(())
    }

    /// The file and the spare buffer, once the write in flight (if any) has finished.
    async fn idle(&mut self) -> io::Result<(File, Vec<u8>)> {
        match std::mem::replace(&mut self.slot, Slot::Failed) {
            Slot::Idle(f, b) => Ok((f, b)),
            Slot::Busy(h) => {
                let (f, b, written) = h.await.map_err(io::Error::other)?;
                written.map(|()| (f, b))
            }
            Slot::Failed => Err(io::Error::other("an earlier write to this file failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test]
    async fn writes_batches_and_reads_back_in_chunks() {
        let data = pattern(1_000_003);
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let mut w = DoubleBufWriter::new(tmp.reopen().unwrap(), 64 * 1024);
        // Uneven chunks, an empty one, and chunks larger than a batch.
        for piece in data
            .chunks(99_991)
            .flat_map(|c| [&c[..10], &[][..], &c[10..]])
        {
            w.push(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        w.finish().await.unwrap();
        assert_eq!(std::fs::read(tmp.path()).unwrap(), data);

        for chunk in [4096, 1 << 20, data.len(), data.len() + 1] {
            let chunks: Vec<Bytes> = read_chunks(tmp.reopen().unwrap(), chunk)
                .try_collect()
                .await
                .unwrap();
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= chunk));
            assert_eq!(chunks.concat(), data, "chunk {chunk}");
        }
    }

    #[tokio::test]
    async fn reads_from_the_current_position_and_empty_files() {
        use std::io::{Seek, SeekFrom};
        let data = pattern(10_000);
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), &data).unwrap();
        let mut f = tmp.reopen().unwrap();
        f.seek(SeekFrom::Start(9_000)).unwrap();
        let rest: Vec<Bytes> = read_chunks(f, 300).try_collect().await.unwrap();
        assert_eq!(rest.concat(), &data[9_000..]);

        let empty = tempfile::NamedTempFile::new().unwrap();
        let none: Vec<Bytes> = read_chunks(empty.reopen().unwrap(), 300)
            .try_collect()
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn a_failed_write_is_reported() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let read_only = File::open(tmp.path()).unwrap();
        let mut w = DoubleBufWriter::new(read_only, 16);
        // The first full buffer is written in the background; its failure surfaces when the
        // second one is handed over, and every later call fails too.
        assert!(w.push(Bytes::from_static(&[7; 40])).await.is_err());
        assert!(w.finish().await.is_err());
    }
}
