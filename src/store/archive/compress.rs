//! Layer compression for docker-archive conversions: gzip or zstd streamed from one reader to
//! a spool file, hashing what goes in (the diffID) and what comes out (the new blob's digest);
//! and the other way, decompressing a stored layer by its magic bytes.

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::digest::{Digest, DigestHasher};

/// How uncompressed layers are stored when they leave a docker-archive (`--dest-compress`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compress {
    /// Kept as they are (already compressed layers too): digests kept where the archive has a
    /// manifest, the layers uncompressed (`application/vnd.oci.image.layer.v1.tar`).
    #[default]
    None,
    Gzip,
    Zstd,
}

impl std::str::FromStr for Compress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compress::None),
            "gzip" => Ok(Compress::Gzip),
            "zstd" => Ok(Compress::Zstd),
            _ => Err(format!("{s:?}: expected gzip, zstd or none")),
        }
    }
}

impl std::fmt::Display for Compress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compress::None => "none",
            Compress::Gzip => "gzip",
            Compress::Zstd => "zstd",
        })
    }
}

impl Compress {
    /// The OCI layer media type of a layer compressed this way.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            Compress::None => "application/vnd.oci.image.layer.v1.tar",
            Compress::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compress::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// What the first bytes of a layer say it is compressed with.
    pub fn of_magic(magic: &[u8]) -> Compress {
        match magic {
            [0x1f, 0x8b, ..] => Compress::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compress::Zstd,
            _ => Compress::None,
        }
    }
}

/// Hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: DigestHasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: DigestHasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What [`transcode`] read and wrote.
pub(crate) struct Transcoded {
    /// Digest and size of the bytes read (a layer's diffID when it read uncompressed bytes).
    pub input: (Digest, u64),
    /// Digest and size of the file written.
    pub output: (Digest, u64),
}

/// Streams `from` into the new file `to`: compressed with `with`, or decompressed from
/// `from_kind` when `with` is [`Compress::None`]. Memory stays at the codecs' buffers.
pub(crate) fn transcode(
    from: impl Read,
    from_kind: Compress,
    with: Compress,
    to: &Path,
) -> std::io::Result<Transcoded> {
    let mut input = Hashing {
        inner: from,
        hasher: DigestHasher::new(),
    };
    let file = std::fs::File::create(to)?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(256 * 1024, file),
        hasher: DigestHasher::new(),
    };
    match (from_kind, with) {
        (Compress::None, Compress::Gzip) => {
            let mut enc = flate2::write::GzEncoder::new(&mut out, flate2::Compression::new(6));
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?;
        }
        (Compress::None, Compress::Zstd) => {
            let mut enc = zstd::stream::write::Encoder::new(&mut out, 3)?;
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?;
        }
        (Compress::Gzip, Compress::None) => {
            let mut dec = flate2::read::MultiGzDecoder::new(&mut input);
            std::io::copy(&mut dec, &mut out)?;
        }
        (Compress::Zstd, Compress::None) => {
            let mut dec = zstd::stream::read::Decoder::new(&mut input)?;
            std::io::copy(&mut dec, &mut out)?;
        }
        _ => {
            std::io::copy(&mut input, &mut out)?;
        }
    }
    // Whatever the codec left unread still counts towards the input's hash.
    std::io::copy(&mut input, &mut std::io::sink())?;
    out.flush()?;
    out.inner.get_ref().sync_data().ok();
    Ok(Transcoded {
        input: input.hasher.finish(),
        output: out.hasher.finish(),
    })
}
