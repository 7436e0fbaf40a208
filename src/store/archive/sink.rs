//! The tar an `oci-archive:` destination streams its blobs into: each blob gets a slot (header
//! and data, sized from its descriptor) reserved at the end of a temp file beside the archive,
//! and its bytes are written there by position as they arrive, hashed on the way, so blobs in
//! flight at once fill their slots in parallel and every byte is written once.
//!
//! A slot's header is written only after its bytes matched the digest; a slot that never
//! matched (a failed transfer) is cut out when the tar is finished. [`TarSink::finish`] appends
//! the manifests and `index.json` last (a reader that finds the index has every blob it names
//! before it), ends the tar, fsyncs and renames it over the archive, or copies it to standard
//! output for `-` (the one case that writes the bytes twice: a pipe cannot be written by
//! position).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::oci::blob_name;
use super::pack::{header, out_err};
use super::tarindex::Loc;
use crate::digest::{Digest, DigestHasher};
use crate::error::{Error, Result};
use crate::manifest::Descriptor;
use crate::store::{BlobStream, WriteFailure};

/// Bytes gathered before a positional write (larger network frames go straight through).
const GATHER: usize = 64 * 1024;
/// Chunks queued between the network side and a slot's writer thread. One (a layout queues
/// two) keeps the 32 x 16 MiB export near 29 MiB peak RSS instead of 33, no slower: a
/// positional write into the file is the whole of the writer's work.
const IN_FLIGHT: usize = 1;
const BLOCK: u64 = 512;

/// The entries every archive starts with: `oci-layout`, then the blob directories.
const LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// One blob's place in the tar: its header at `offset`, its bytes right after.
struct Slot {
    offset: u64,
    size: u64,
    done: AtomicBool,
    /// Held while the slot is written, so a second writer of the same digest waits and finds
    /// it done (or retries it after a failure).
    writing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Slots {
    /// Where the next slot starts.
    end: u64,
    by_digest: HashMap<Digest, Arc<Slot>>,
    /// Digests in the order their slots were reserved (the order in the tar).
    order: Vec<Digest>,
}

/// A tar being written by position: see the module documentation.
pub(super) struct TarSink {
    /// The archive being written (`-`: standard output), for messages and the final rename.
    target: PathBuf,
    tmp: tempfile::NamedTempFile,
    file: Arc<File>,
    slots: Mutex<Slots>,
}

impl TarSink {
    /// A sink for `target`: a temp file beside it (under `$TMPDIR` for `-`), holding the
    /// leading entries already.
    pub fn create(target: &Path) -> Result<Self> {
        let dir = if target.as_os_str() == "-" {
            std::env::temp_dir()
        } else {
            match target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n != "-")
            .unwrap_or_else(|| "archive".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.ferry-"))
            .tempfile_in(&dir)
            .map_err(|e| {
                out_err(
                    target,
                    format!("cannot create a temp file in {}: {e}", dir.display()),
                )
            })?;
        let file = Arc::new(tmp.as_file().try_clone().map_err(|e| out_err(target, e))?);
        let sink = TarSink {
            target: target.to_path_buf(),
            tmp,
            file,
            slots: Mutex::new(Slots::default()),
        };
        let mut lead = Vec::with_capacity(4 * BLOCK as usize);
        let h = named(
            target,
            "oci-layout",
            LAYOUT.len() as u64,
            tar::EntryType::Regular,
        )?;
        lead.extend_from_slice(h.as_bytes());
        lead.extend_from_slice(LAYOUT);
        lead.resize(padded(lead.len() as u64) as usize, 0);
        for d in ["blobs/", "blobs/sha256/"] {
            let h = named(target, d, 0, tar::EntryType::Directory)?;
            lead.extend_from_slice(h.as_bytes());
        }
        sink.file
            .write_all_at(&lead, 0)
            .map_err(|e| out_err(target, e))?;
        sink.slots.lock().unwrap().end = lead.len() as u64;
        Ok(sink)
    }

    /// The slot of `digest`, reserved at the end when it has none.
    fn slot(&self, digest: &Digest, size: u64) -> Arc<Slot> {
        let mut s = self.slots.lock().unwrap();
        if let Some(slot) = s.by_digest.get(digest) {
            if slot.size == size {
                return slot.clone();
            }
        }
        let slot = Arc::new(Slot {
            offset: s.end,
            size,
            done: AtomicBool::new(false),
            writing: tokio::sync::Mutex::new(()),
        });
        s.end += BLOCK + padded(size);
        // A slot of another size for the same digest (a wrong descriptor) is replaced: the old
        // one never matched, so it is cut out at the end.
        if s.by_digest.insert(digest.clone(), slot.clone()).is_none() {
            s.order.push(digest.clone());
        }
        slot
    }

    /// Whether the blob `desc` is written and verified.
    pub fn has(&self, desc: &Descriptor) -> bool {
        let s = self.slots.lock().unwrap();
        s.by_digest
            .get(&desc.digest)
            .is_some_and(|slot| slot.size == desc.size && slot.done.load(Ordering::Acquire))
    }

    /// Writes the blob `desc` from `stream` into its slot, hashing it; the slot counts only
    /// when digest and size match. Returns the bytes written (0 when it was written already).
    pub async fn put(&self, desc: &Descriptor, mut stream: BlobStream) -> Result<u64> {
        let slot = self.slot(&desc.digest, desc.size);
        let _writing = slot.writing.lock().await;
        if slot.done.load(Ordering::Acquire) {
            return Ok(0);
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(IN_FLIGHT);
        let mut w = SlotWriter::new(self.file.clone(), &slot);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                w.write(&chunk)?;
            }
            w.finish()
        });
        let fed = crate::store::feed(&mut stream, tx).await;
        let joined = writer
            .await
            .map_err(|e| out_err(&self.target, format!("the blob writer stopped: {e}")))?;
        fed?;
        let hasher = joined.map_err(|f| self.failure(desc, f))?;
        self.seal(desc, &slot, hasher)
    }

    /// Checks a slot's bytes against `desc` and, when they match, writes its header.
    fn seal(&self, desc: &Descriptor, slot: &Slot, hasher: DigestHasher) -> Result<u64> {
        let (digest, size) = hasher.finish();
        if digest != desc.digest || size != desc.size {
            return Err(self.mismatch(desc, digest, size));
        }
        let name = blob_name(&desc.digest);
        let h = named(&self.target, &name, size, tar::EntryType::Regular)?;
        self.file
            .write_all_at(h.as_bytes(), slot.offset)
            .map_err(|e| out_err(&self.target, e))?;
        slot.done.store(true, Ordering::Release);
        Ok(size)
    }

    /// Copies a blob from a reader (an existing archive's entry being kept), verified the same
    /// way. A blocking call.
    pub fn put_sync(&self, desc: &Descriptor, mut from: impl std::io::Read) -> Result<()> {
        let slot = self.slot(&desc.digest, desc.size);
        if slot.done.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut w = SlotWriter::new(self.file.clone(), &slot);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = from
                .read(&mut buf)
                .map_err(|e| out_err(&self.target, format!("cannot read {}: {e}", desc.digest)))?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).map_err(|f| self.failure(desc, f))?;
        }
        let hasher = w.finish().map_err(|f| self.failure(desc, f))?;
        self.seal(desc, &slot, hasher).map(|_| ())
    }

    /// Streams a blob written earlier from `offset` (its bytes were verified when written).
    pub fn open(&self, desc: &Descriptor, offset: u64) -> Option<BlobStream> {
        let s = self.slots.lock().unwrap();
        let slot = s.by_digest.get(&desc.digest)?;
        if !slot.done.load(Ordering::Acquire) {
            return None;
        }
        let loc = Loc {
            offset: slot.offset + BLOCK,
            size: slot.size,
        };
        Some(super::tarindex::stream_verified(
            self.tmp.path().to_path_buf(),
            self.target.clone(),
            blob_name(&desc.digest),
            loc,
            None,
            offset,
        ))
    }

    /// Ends the tar: the blob files of `extra` not written here already (the spool's
    /// manifests, in name order), then `index` as `index.json`; then the temp file is fsynced
    /// and renamed over the archive (or copied to standard output). A blocking call.
    pub fn finish(self, extra: &Path, index: &[u8]) -> Result<()> {
        let target = self.target.clone();
        let (file, end, written) = self.compacted()?;
        let mut f = file
            .as_file()
            .try_clone()
            .map_err(|e| out_err(&target, e))?;
        f.seek(SeekFrom::Start(end))
            .map_err(|e| out_err(&target, e))?;
        // The last slot's padding may lie past the file's end: zeros, as a tar needs.
        f.set_len(end).map_err(|e| out_err(&target, e))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, f));
        let mut names: Vec<String> = match std::fs::read_dir(extra) {
            Ok(dir) => dir
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(out_err(
                    &target,
                    format!("cannot list {}: {e}", extra.display()),
                ))
            }
        };
        names.sort();
        for n in names.iter().filter(|n| !written.contains(*n)) {
            let from = extra.join(n);
            let src = File::open(&from)
                .map_err(|e| out_err(&target, format!("cannot read {}: {e}", from.display())))?;
            let size = src.metadata().map_err(|e| out_err(&target, e))?.len();
            let mut h = header(size, 0o644, tar::EntryType::Regular);
            tar.append_data(&mut h, format!("blobs/sha256/{n}"), src)
                .map_err(|e| out_err(&target, e))?;
        }
        let mut h = header(index.len() as u64, 0o644, tar::EntryType::Regular);
        tar.append_data(&mut h, "index.json", index)
            .map_err(|e| out_err(&target, e))?;
        let mut out = tar.into_inner().map_err(|e| out_err(&target, e))?;
        out.flush().map_err(|e| out_err(&target, e))?;
        drop(out);
        if target.as_os_str() == "-" {
            let mut f = file.reopen().map_err(|e| out_err(&target, e))?;
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            std::io::copy(&mut f, &mut lock).map_err(|e| out_err(&target, e))?;
            return lock.flush().map_err(|e| out_err(&target, e));
        }
        super::pack::persist(file, &target)
    }

    /// The temp file with every slot that never matched cut out: the file itself when there
    /// is none (the usual case), else a new one holding the verified slots only. Returns it,
    /// where its tar ends, and the names of the blobs it holds.
    fn compacted(self) -> Result<(tempfile::NamedTempFile, u64, Vec<String>)> {
        let s = self.slots.into_inner().unwrap();
        let slots: Vec<(&Digest, &Arc<Slot>)> =
            s.order.iter().map(|d| (d, &s.by_digest[d])).collect();
        let names = |only_done: bool| -> Vec<String> {
            slots
                .iter()
                .filter(|(_, slot)| !only_done || slot.done.load(Ordering::Acquire))
                .map(|(d, _)| d.hex().to_string())
                .collect()
        };
        let holes = s.end
            > slots
                .iter()
                .filter(|(_, slot)| slot.done.load(Ordering::Acquire))
                .map(|(_, slot)| BLOCK + padded(slot.size))
                .sum::<u64>()
                + 3 * BLOCK
                + padded(LAYOUT.len() as u64);
        if !holes {
            return Ok((self.tmp, s.end, names(false)));
        }
        let fresh = TarSink::create(&self.target)?;
        let mut end = fresh.slots.lock().unwrap().end;
        let mut out = fresh
            .tmp
            .as_file()
            .try_clone()
            .map_err(|e| out_err(&self.target, e))?;
        out.seek(SeekFrom::Start(end))
            .map_err(|e| out_err(&self.target, e))?;
        let mut from = self.tmp.reopen().map_err(|e| out_err(&self.target, e))?;
        for (_, slot) in slots
            .iter()
            .filter(|(_, slot)| slot.done.load(Ordering::Acquire))
        {
            let len = BLOCK + padded(slot.size);
            from.seek(SeekFrom::Start(slot.offset))
                .map_err(|e| out_err(&self.target, e))?;
            let n = std::io::copy(&mut (&mut from).take(len), &mut out)
                .map_err(|e| out_err(&self.target, e))?;
            if n != len {
                // The padding of the last slot may be a hole past the file's end.
                out.write_all(&vec![0u8; (len - n) as usize])
                    .map_err(|e| out_err(&self.target, e))?;
            }
            end += len;
        }
        Ok((fresh.tmp, end, names(true)))
    }

    fn failure(&self, desc: &Descriptor, f: WriteFailure) -> Error {
        match f {
            WriteFailure::TooLong(h) => {
                let (digest, size) = h.finish();
                self.mismatch(desc, digest, size)
            }
            WriteFailure::Io(e) => out_err(
                &self.target,
                format!("cannot write blob {}: {e}", desc.digest),
            ),
        }
    }

    fn mismatch(&self, desc: &Descriptor, actual: Digest, actual_size: u64) -> Error {
        Error::DigestMismatch {
            location: format!("oci-archive:{}", self.target.display()),
            expected: desc.digest.clone(),
            expected_size: desc.size,
            actual,
            actual_size,
        }
    }
}

/// Writes one slot's bytes by position, gathering small chunks, hashing everything.
struct SlotWriter {
    file: Arc<File>,
    /// Where the next byte goes.
    pos: u64,
    limit: u64,
    hasher: DigestHasher,
    gather: Vec<u8>,
}

impl SlotWriter {
    fn new(file: Arc<File>, slot: &Slot) -> Self {
        SlotWriter {
            file,
            pos: slot.offset + BLOCK,
            limit: slot.size,
            hasher: DigestHasher::new(),
            gather: Vec::new(),
        }
    }

    fn write(&mut self, chunk: &[u8]) -> std::result::Result<(), WriteFailure> {
        self.hasher.update(chunk);
        if self.hasher.len() > self.limit {
            return Err(WriteFailure::TooLong(self.hasher.clone()));
        }
        if self.gather.len() + chunk.len() > GATHER {
            self.flush()?;
        }
        if chunk.len() >= GATHER {
            return self.put(chunk);
        }
        if self.gather.capacity() == 0 {
            self.gather.reserve_exact(GATHER);
        }
        self.gather.extend_from_slice(chunk);
        Ok(())
    }

    /// Writes what is gathered (the buffer is kept, at most `GATHER` bytes).
    fn flush(&mut self) -> std::result::Result<(), WriteFailure> {
        if self.gather.is_empty() {
            return Ok(());
        }
        let g = std::mem::take(&mut self.gather);
        self.put(&g)?;
        self.gather = g;
        self.gather.clear();
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> std::result::Result<(), WriteFailure> {
        self.file
            .write_all_at(bytes, self.pos)
            .map_err(WriteFailure::Io)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes what is gathered; the hash of every byte.
    fn finish(mut self) -> std::result::Result<DigestHasher, WriteFailure> {
        self.flush()?;
        Ok(self.hasher)
    }
}

/// A complete header for the entry `name` (files 0644, directories 0755).
fn named(target: &Path, name: &str, size: u64, kind: tar::EntryType) -> Result<tar::Header> {
    let mode = match kind {
        tar::EntryType::Directory => 0o755,
        _ => 0o644,
    };
    let mut h = header(size, mode, kind);
    h.set_path(name).map_err(|e| out_err(target, e))?;
    h.set_cksum();
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::archive::tarindex::TarIndex;
    use futures::StreamExt;

    fn desc(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: "application/octet-stream".into(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            platform: None,
        }
    }

    fn stream(parts: Vec<&'static [u8]>) -> BlobStream {
        futures::stream::iter(parts.into_iter().map(|p| Ok(bytes::Bytes::from_static(p)))).boxed()
    }

    /// Entries of a finished archive, in order, with their contents.
    fn entries(file: &Path) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(File::open(file).unwrap());
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mut body = Vec::new();
                e.read_to_end(&mut body).unwrap();
                (name, body)
            })
            .collect()
    }

    #[tokio::test]
    async fn blobs_land_in_their_slots_and_a_failed_slot_is_cut_out() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.tar");
        let sink = TarSink::create(&target).unwrap();
        let good: &'static [u8] = b"hello, archive";
        let big: &'static [u8] = &[7u8; 100_000];
        // Out of order, in pieces: each lands in its own slot.
        let (big_d, good_d) = (desc(big), desc(good));
        let (a, b) = tokio::join!(
            sink.put(&big_d, stream(vec![&big[..70_000], &big[70_000..]])),
            sink.put(&good_d, stream(vec![&good[..5], &good[5..]])),
        );
        assert_eq!((a.unwrap(), b.unwrap()), (100_000, 14));
        // Wrong bytes: refused, the slot stays unverified.
        let bad = sink
            .put(&desc(b"expected"), stream(vec![b"xxxxxxxx"]))
            .await
            .unwrap_err();
        assert!(matches!(bad, Error::DigestMismatch { .. }), "{bad}");
        // Too many bytes: refused as well.
        let long = sink
            .put(&desc(b"ab"), stream(vec![b"abc"]))
            .await
            .unwrap_err();
        assert!(matches!(long, Error::DigestMismatch { .. }), "{long}");
        assert!(sink.has(&desc(good)) && !sink.has(&desc(b"expected")));
        // Written again: nothing to do.
        assert_eq!(sink.put(&desc(good), stream(vec![good])).await.unwrap(), 0);
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        let m = b"{\"schemaVersion\":2}";
        std::fs::write(spool.join(Digest::of(m).hex()), m).unwrap();
        // A spool file the tar has already is not appended twice.
        std::fs::write(spool.join(Digest::of(good).hex()), good).unwrap();
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        tokio::task::spawn_blocking(move || sink.finish(&spool, index))
            .await
            .unwrap()
            .unwrap();
        let got = entries(&target);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        let blob = |b: &[u8]| format!("blobs/sha256/{}", Digest::of(b).hex());
        assert_eq!(
            names,
            vec![
                "oci-layout",
                "blobs/",
                "blobs/sha256/",
                &blob(big),
                &blob(good),
                &blob(m),
                "index.json"
            ]
        );
        assert_eq!(got[3].1, big);
        assert_eq!(got[4].1, good);
        assert_eq!(got[6].1, index);
        // ferry's own reader indexes it without complaint.
        let idx = TarIndex::open(&target, &["oci-layout", "index.json"]).unwrap();
        assert_eq!(idx.meta("index.json").unwrap(), index);
        // Nothing is left beside the archive.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[tokio::test]
    async fn without_failures_the_file_is_renamed_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("b.tar");
        let sink = TarSink::create(&target).unwrap();
        let one: &'static [u8] = &[1u8; 513];
        sink.put(&desc(one), stream(vec![one])).await.unwrap();
        let index = br#"{"schemaVersion":2,"manifests":[]}"#;
        let spool = dir.path().join("none");
        tokio::task::spawn_blocking(move || sink.finish(&spool, index))
            .await
            .unwrap()
            .unwrap();
        let got = entries(&target);
        assert_eq!(got.len(), 5);
        assert_eq!(got[3].1, one);
        // 3 lead entries (oci-layout with its data block), the blob (header + 2 blocks), the
        // index (header + 1 block), two end blocks.
        let len = std::fs::metadata(&target).unwrap().len();
        assert_eq!(len % 512, 0);
        assert!(len >= (4 + 3 + 2 + 2) * 512, "{len}");
    }
}
