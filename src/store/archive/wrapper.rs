//! The readers under an archive's tar reader when it must be spooled: the wrapper format by
//! magic bytes, a decompression-bomb bound, and the tee that copies the tar into the spool file.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::rc::Rc;

/// A wrapper may expand this many times what it read (layers inside are compressed already, so
/// real archives stay near 1:1)...
const MAX_RATIO: u64 = 200;
/// ...once past this many bytes out (small, very compressible archives are fine).
const RATIO_AFTER: u64 = 64 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wrapper {
    Plain,
    Gzip,
    Zstd,
    Unreadable(&'static str, &'static str),
}

impl Wrapper {
    pub(super) fn of(magic: &[u8]) -> Wrapper {
        match magic {
            [0x1f, 0x8b, ..] => Wrapper::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Wrapper::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', ..] => Wrapper::Unreadable("xz", "xz -d"),
            [b'B', b'Z', b'h', ..] => Wrapper::Unreadable("bzip2", "bzip2 -d"),
            _ => Wrapper::Plain,
        }
    }
}

/// Counts the compressed bytes read.
pub(super) struct Counted<R> {
    pub inner: R,
    pub n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// Fails once the decompressor has put out more than [`MAX_RATIO`] times what it read (past
/// [`RATIO_AFTER`]): a decompression bomb would fill the spool.
pub(super) struct Bounded {
    pub inner: Box<dyn Read>,
    pub read_in: Rc<Cell<u64>>,
    pub put_out: u64,
    pub label: &'static str,
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.put_out += k as u64;
        let read_in = self.read_in.get().max(1);
        if !self.label.is_empty()
            && self.put_out > RATIO_AFTER
            && self.put_out / read_in > MAX_RATIO
        {
            let why = format!(
                "the {} wrapper expands {read_in} bytes to more than {} (ratio over {MAX_RATIO}:1): refused as a {} bomb",
                self.label, self.put_out, self.label
            );
            return Err(std::io::Error::other(why));
        }
        Ok(k)
    }
}

/// Copies what the tar reader reads into the spool file.
pub(super) struct Tee {
    pub inner: Bounded,
    pub out: BufWriter<File>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.out.write_all(&buf[..k])?;
        Ok(k)
    }
}
