//! Reading an `oci-archive:` file: one pass over the tar (plain, or wrapped in gzip), extracting
//! only the layout's own files into a private spool directory, refusing anything hostile.
//!
//! Kept: `oci-layout`, `index.json` (each at most [`MAX_META_BYTES`]) and `blobs/sha256/<hex>`,
//! each blob hashed while it streams and refused unless its bytes are its name. Directories
//! are implied; other regular files (a Docker-25 `manifest.json`, `repositories`) are skipped.
//! Refused, naming the file and the entry: absolute names, `..`, names that are not UTF-8,
//! symbolic and hard links, device files, FIFOs, unknown entry types, a truncated archive, a
//! zstd/xz/bzip2 wrapper (not read yet), a gzip bomb, two different `index.json`s. Every path
//! written is built from checked components under the spool, so nothing lands outside it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path};

use crate::digest::DigestHasher;
use crate::error::{Error, Op, Result};

/// Largest `index.json` or `oci-layout` read from an archive.
pub const MAX_META_BYTES: u64 = 4 * 1024 * 1024;
/// Bytes per read while a blob streams to the spool.
const COPY_BUF: usize = 256 * 1024;
/// A gzip wrapper may expand this many times what it read (layers inside are compressed
/// already, so real archives stay near 1:1)...
const MAX_GZIP_RATIO: u64 = 200;
/// ...once past this many bytes out (small, very compressible archives are fine).
const GZIP_RATIO_AFTER: u64 = 64 * 1024 * 1024;

/// An archive refusal naming `file` and, when known, `entry`.
pub(super) fn refused(file: &Path, entry: Option<&str>, reason: impl Into<String>) -> Error {
    Error::Archive {
        path: file.to_path_buf(),
        entry: entry.map(str::to_string),
        reason: reason.into(),
    }
}

fn spool_err(path: &Path, e: std::io::Error) -> Error {
    Error::Layout {
        op: Op::WriteLayout,
        path: path.to_path_buf(),
        message: format!("cannot write the archive's spool: {e}"),
    }
}

/// What an archive entry is, for the layout.
enum Wanted {
    /// `oci-layout` or `index.json`.
    Meta(&'static str),
    /// `blobs/sha256/<hex>`.
    Blob(String),
    /// Anything else a layout reader does not look at.
    Skip,
}

/// Extracts the OCI layout held by the archive `file` into the (empty) directory `spool`.
pub(super) fn extract(file: &Path, spool: &Path) -> Result<()> {
    let f = File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            what: "OCI archive".into(),
            location: format!("oci-archive:{}", file.display()),
        },
        _ => refused(file, None, format!("cannot open: {e}")),
    })?;
    let mut reader = BufReader::with_capacity(COPY_BUF, f);
    let magic = reader
        .fill_buf()
        .map_err(|e| refused(file, None, format!("cannot read: {e}")))?
        .to_vec();
    let unwrapped: Box<dyn Read> = match magic.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(Bounded::gunzip(reader)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => return Err(wrapper(file, "zstd", "zstd -d")),
        [0xfd, b'7', b'z', b'X', b'Z', ..] => return Err(wrapper(file, "xz", "xz -d")),
        [b'B', b'Z', b'h', ..] => return Err(wrapper(file, "bzip2", "bzip2 -d")),
        _ => Box::new(reader),
    };
    let mut archive = tar::Archive::new(unwrapped);
    let entries = archive
        .entries()
        .map_err(|e| refused(file, None, format!("not a tar archive: {e}")))?;
    let mut metas: HashMap<&'static str, Vec<u8>> = HashMap::new();
    let mut blob_dir_made = false;
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            let why = format!("unreadable tar header (truncated, or not a tar archive): {e}");
            refused(file, None, why)
        })?;
        count += 1;
        let raw = entry.path_bytes().into_owned();
        let Ok(name) = String::from_utf8(raw.clone()) else {
            let shown = String::from_utf8_lossy(&raw).into_owned();
            return Err(refused(file, Some(&shown), "the entry name is not UTF-8"));
        };
        let bad = |why: String| refused(file, Some(&name), why);
        let parts = components(&name).map_err(|why| bad(why.into()))?;
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {}
            T::Directory => continue,
            T::Symlink | T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let what = if kind == T::Symlink {
                    "a symbolic link"
                } else {
                    "a hard link"
                };
                let escapes = (components(&target).is_err() && kind == T::Link)
                    || Path::new(&target).is_absolute()
                    || target.split('/').any(|c| c == "..");
                let where_ = if escapes { ", outside the archive" } else { "" };
                return Err(bad(format!(
                    "is {what} to {target:?}{where_}: an OCI archive holds plain files only"
                )));
            }
            T::Char | T::Block => return Err(bad("is a device file".into())),
            T::Fifo => return Err(bad("is a FIFO".into())),
            T::XHeader | T::XGlobalHeader | T::GNULongName | T::GNULongLink => continue,
            other => return Err(bad(format!("has an unsupported entry type {other:?}"))),
        }
        let size = entry.header().size().unwrap_or(0);
        match wanted(&parts).map_err(bad)? {
            Wanted::Skip => {
                tracing::debug!(entry = %name, "skipped an archive entry a layout does not use");
            }
            Wanted::Meta(meta) => {
                if size > MAX_META_BYTES {
                    return Err(bad(format!(
                        "is {size} bytes, more than the {MAX_META_BYTES}-byte limit"
                    )));
                }
                let mut body = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(MAX_META_BYTES + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| bad(truncated(&e)))?;
                if body.len() as u64 != size {
                    let got = body.len();
                    return Err(bad(format!("truncated archive: {got} of {size} bytes")));
                }
                if let Some(before) = metas.get(meta) {
                    if before != &body {
                        return Err(bad("appears twice with different contents".into()));
                    }
                    continue;
                }
                let path = spool.join(meta);
                std::fs::write(&path, &body).map_err(|e| spool_err(&path, e))?;
                metas.insert(meta, body);
            }
            Wanted::Blob(hex) => {
                let dir = spool.join("blobs").join("sha256");
                if !blob_dir_made {
                    std::fs::create_dir_all(&dir).map_err(|e| spool_err(&dir, e))?;
                    blob_dir_made = true;
                }
                let path = dir.join(&hex);
                let hasher = copy_hashed(&mut entry, &path).map_err(|e| match e {
                    CopyError::Read(e) => bad(truncated(&e)),
                    CopyError::Write(e) => spool_err(&path, e),
                })?;
                let (actual, got) = hasher.finish();
                if got != size {
                    let _ = std::fs::remove_file(&path);
                    return Err(bad(format!("truncated archive: {got} of {size} bytes")));
                }
                if actual.hex() != hex {
                    let _ = std::fs::remove_file(&path);
                    return Err(bad(format!(
                        "the bytes hash to {actual}, not to the digest the entry is named after"
                    )));
                }
            }
        }
    }
    for meta in ["oci-layout", "index.json"] {
        if !metas.contains_key(meta) {
            let why = if count == 0 {
                "empty, or not a tar archive".to_string()
            } else {
                format!("no {meta}: not an OCI archive (a docker-archive holds manifest.json)")
            };
            return Err(refused(file, None, why));
        }
    }
    if !blob_dir_made {
        let dir = spool.join("blobs").join("sha256");
        std::fs::create_dir_all(&dir).map_err(|e| spool_err(&dir, e))?;
    }
    Ok(())
}

/// A gzip decoder that fails once it has put out more than [`MAX_GZIP_RATIO`] times the
/// compressed bytes it read (past [`GZIP_RATIO_AFTER`]): a gzip bomb would fill the spool.
struct Bounded {
    decoder: flate2::read::MultiGzDecoder<Counted>,
    read_in: std::rc::Rc<std::cell::Cell<u64>>,
    put_out: u64,
}

/// Counts the bytes read through it.
struct Counted {
    inner: BufReader<File>,
    n: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

impl Bounded {
    fn gunzip(inner: BufReader<File>) -> Self {
        let read_in = std::rc::Rc::new(std::cell::Cell::new(0));
        let counted = Counted {
            inner,
            n: read_in.clone(),
        };
        Bounded {
            decoder: flate2::read::MultiGzDecoder::new(counted),
            read_in,
            put_out: 0,
        }
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.decoder.read(buf)?;
        self.put_out += k as u64;
        let read_in = self.read_in.get().max(1);
        if self.put_out > GZIP_RATIO_AFTER && self.put_out / read_in > MAX_GZIP_RATIO {
            let why = format!(
                "the gzip wrapper expands {read_in} bytes to more than {} (ratio over {MAX_GZIP_RATIO}:1): refused as a gzip bomb",
                self.put_out
            );
            return Err(std::io::Error::other(why));
        }
        Ok(k)
    }
}

fn wrapper(file: &Path, format: &str, command: &str) -> Error {
    let why = format!(
        "{format}-compressed: ferry reads plain and gzip'd archives; decompress it first ({command})"
    );
    refused(file, None, why)
}

fn truncated(e: &std::io::Error) -> String {
    format!("cannot read the entry's bytes (truncated or corrupt archive): {e}")
}

/// The normal components of an entry name (`./` and trailing `/` dropped); refuses absolute
/// names, `..` and empty names.
fn components(name: &str) -> std::result::Result<Vec<String>, &'static str> {
    let path = Path::new(name);
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err("the name climbs out with '..'"),
            Component::RootDir | Component::Prefix(_) => return Err("the name is absolute"),
        }
    }
    if parts.is_empty() {
        return Err("the name is empty");
    }
    Ok(parts)
}

/// Which layout file an entry is; refuses blob names a layout store could not serve.
fn wanted(parts: &[String]) -> std::result::Result<Wanted, String> {
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(match p.as_slice() {
        ["oci-layout"] => Wanted::Meta("oci-layout"),
        ["index.json"] => Wanted::Meta("index.json"),
        ["blobs", "sha256", hex] => {
            let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !ok {
                return Err("is not named after a sha256 digest (64 lowercase hex digits)".into());
            }
            Wanted::Blob(hex.to_string())
        }
        ["blobs", alg, _] => {
            return Err(format!(
                "uses digest algorithm {alg:?}; ferry reads sha256 blobs only"
            ))
        }
        _ => Wanted::Skip,
    })
}

enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Streams `from` into a new file at `to`, hashing it; memory stays at one buffer.
fn copy_hashed(from: &mut impl Read, to: &Path) -> std::result::Result<DigestHasher, CopyError> {
    let file = File::create(to).map_err(CopyError::Write)?;
    let mut out = std::io::BufWriter::with_capacity(COPY_BUF, file);
    let mut hasher = DigestHasher::new();
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
    out.flush().map_err(CopyError::Write)?;
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_component_by_component() {
        assert_eq!(components("./blobs/sha256/").unwrap(), ["blobs", "sha256"]);
        assert!(components("a/../../b").is_err());
        assert!(components("/etc/passwd").is_err());
        assert!(components("./").is_err());
        let hex = "a".repeat(64);
        let blob = |h: &str| vec!["blobs".to_string(), "sha256".into(), h.to_string()];
        assert!(matches!(wanted(&blob(&hex)), Ok(Wanted::Blob(h)) if h == hex));
        assert!(wanted(&blob("ABC")).is_err());
        assert!(wanted(&["blobs".into(), "sha512".into(), hex.clone()]).is_err());
        assert!(matches!(
            wanted(&["manifest.json".into()]),
            Ok(Wanted::Skip)
        ));
        assert!(matches!(
            wanted(&["index.json".into()]),
            Ok(Wanted::Meta("index.json"))
        ));
    }
}
