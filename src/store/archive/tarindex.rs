//! One pass over an archive's tar headers: entry name → (offset, size), checked against
//! hostile input, so blobs are then read in place by offset (no extraction).
//!
//! A plain archive file is indexed where it lies (headers read, data seeked over). A compressed
//! wrapper (gzip, zstd; by magic bytes) or standard input cannot be seeked: the decompressed tar
//! is copied to a spool file under `$TMPDIR` in the same pass (a tee under the tar reader), and
//! indexed there. Refused, naming the file and the entry: absolute names, `..`, non-UTF-8 names,
//! device files, FIFOs, unknown entry types, links that leave the archive or end at a directory
//! or nowhere, sizes running past the end of the file (tar bomb, truncation), too many entries,
//! small metadata files over [`MAX_META_BYTES`], the same name twice with different contents,
//! a decompression bomb (bounded ratio), xz/bzip2 wrappers.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

pub(crate) use super::stream::stream_verified;
use super::wrapper::{Bounded, Counted, Tee, Wrapper};
use crate::digest::{Digest, DigestHasher};
use crate::error::{Error, Result};
use crate::store::BlobStream;

/// Largest `index.json`, `oci-layout`, `manifest.json` or `repositories` read from an archive.
pub const MAX_META_BYTES: u64 = 4 * 1024 * 1024;
/// Most entries an archive may hold (the index lives in memory).
const MAX_ENTRIES: usize = 100_000;
/// Bytes per read while data streams.
pub(super) const BUF: usize = 256 * 1024;
/// Links followed one after another before giving up.
const MAX_HOPS: usize = 8;

/// An archive refusal naming `file` and, when known, `entry`.
pub(crate) fn refused(file: &Path, entry: Option<&str>, reason: impl Into<String>) -> Error {
    Error::Archive {
        path: file.to_path_buf(),
        entry: entry.map(str::to_string),
        reason: reason.into(),
    }
}

/// Where a regular file's bytes lie in the indexed tar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub offset: u64,
    pub size: u64,
}

/// A checked, indexed tar.
pub(crate) struct TarIndex {
    /// The archive as the user named it (`-` is standard input), for messages.
    pub shown: PathBuf,
    /// The tar read by offset: the archive itself, or the spool copy.
    data: PathBuf,
    /// Regular files, links resolved to their targets' bytes.
    files: HashMap<String, Loc>,
    /// Names that are (or reach through a link) a link: OCI `blobs/` must be plain files.
    linked: HashSet<String>,
    /// The small metadata files asked for, read during the pass.
    metas: HashMap<String, Vec<u8>>,
    /// How many entries the tar held (0: empty, or not a tar).
    pub count: usize,
    /// Whether the tar had to be spooled (a compressed wrapper or standard input).
    pub spooled: bool,
    _spool: Option<tempfile::NamedTempFile>,
}

/// What the pass found, before links are resolved.
#[derive(Default)]
struct Scan {
    files: HashMap<String, Loc>,
    dups: Vec<(String, Loc, Loc)>,
    links: Vec<(String, String, bool)>,
    dirs: HashSet<String>,
    metas: HashMap<String, Vec<u8>>,
    count: usize,
}

impl TarIndex {
    /// Indexes the archive `shown` (`-`: standard input), reading the files named in `metas`.
    pub fn open(shown: &Path, metas: &[&str]) -> Result<TarIndex> {
        let stdin = shown.as_os_str() == "-";
        let mut reader: BufReader<Box<dyn Read>> = if stdin {
            BufReader::with_capacity(BUF, Box::new(std::io::stdin()))
        } else {
            let f = File::open(shown).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound {
                    what: "archive".into(),
                    location: shown.display().to_string(),
                },
                _ => refused(shown, None, format!("cannot open: {e}")),
            })?;
            if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(refused(shown, None, "is a directory, not an archive file"));
            }
            BufReader::with_capacity(BUF, Box::new(f))
        };
        let magic = reader
            .fill_buf()
            .map_err(|e| refused(shown, None, format!("cannot read: {e}")))?
            .to_vec();
        let wrapper = Wrapper::of(&magic);
        if let Wrapper::Unreadable(format, cmd) = wrapper {
            let why = format!(
                "{format}-compressed: ferry reads plain, gzip'd and zstd'd archives; decompress it first ({cmd})"
            );
            return Err(refused(shown, None, why));
        }
        if !stdin && wrapper == Wrapper::Plain {
            drop(reader);
            let f = File::open(shown).map_err(|e| refused(shown, None, e.to_string()))?;
            let len = f
                .metadata()
                .map_err(|e| refused(shown, None, e.to_string()))?
                .len();
            let mut archive = tar::Archive::new(BufReader::with_capacity(64 * 1024, f));
            let entries = archive
                .entries_with_seek()
                .map_err(|e| refused(shown, None, format!("not a tar archive: {e}")))?;
            let scan = scan(shown, entries, metas, Some(len), false)?;
            return finish(shown, shown.to_path_buf(), None, scan, false);
        }
        let spool = tempfile::Builder::new()
            .prefix("ferry-archive-")
            .tempfile()
            .map_err(|e| spool_err(shown, &e))?;
        let out = BufWriter::with_capacity(
            BUF,
            spool
                .as_file()
                .try_clone()
                .map_err(|e| spool_err(shown, &e))?,
        );
        let read_in = Rc::new(Cell::new(0u64));
        let counted = Counted {
            inner: reader,
            n: read_in.clone(),
        };
        let unwrapped: Box<dyn Read> = match wrapper {
            Wrapper::Gzip => Box::new(flate2::read::MultiGzDecoder::new(counted)),
            Wrapper::Zstd => Box::new(
                zstd::stream::read::Decoder::new(counted)
                    .map_err(|e| refused(shown, None, format!("zstd: {e}")))?,
            ),
            _ => Box::new(counted),
        };
        let label = match wrapper {
            Wrapper::Gzip => "gzip",
            Wrapper::Zstd => "zstd",
            _ => "",
        };
        let tee = Tee {
            inner: Bounded {
                inner: unwrapped,
                read_in,
                put_out: 0,
                label,
            },
            out,
        };
        let mut archive = tar::Archive::new(tee);
        let entries = archive
            .entries()
            .map_err(|e| refused(shown, None, format!("not a tar archive: {e}")))?;
        let scan = scan(shown, entries, metas, None, true)?;
        let mut tee = archive.into_inner();
        // The rest of the stream (end blocks, padding) is not needed but is drained so a pipe's
        // writer does not see a broken pipe.
        let _ = std::io::copy(&mut tee.inner, &mut std::io::sink());
        tee.out.flush().map_err(|e| spool_err(shown, &e))?;
        let data = spool.path().to_path_buf();
        finish(shown, data, Some(spool), scan, true)
    }

    /// The bytes' location of the regular file (or link to one) `name`.
    pub fn get(&self, name: &str) -> Option<Loc> {
        self.files.get(name).copied()
    }

    /// Whether `name` is a link (or reached through one).
    pub fn is_link(&self, name: &str) -> bool {
        self.linked.contains(name)
    }

    /// Every regular file's name (links included), unordered.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.files.keys()
    }

    /// A metadata file read during the pass.
    pub fn meta(&self, name: &str) -> Option<&[u8]> {
        self.metas.get(name).map(Vec::as_slice)
    }

    /// Normalises a name as the index keys it (`./a//b` → `a/b`); `None` when it climbs out.
    pub fn key(name: &str) -> Option<String> {
        components(name).ok().map(|p| p.join("/"))
    }

    /// Reads a whole entry (at most `cap` bytes, else refused as over the cap).
    pub fn read_small(&self, name: &str, loc: Loc, cap: u64) -> Result<Vec<u8>> {
        if loc.size > cap {
            return Err(refused(
                &self.shown,
                Some(name),
                format!("is {} bytes, more than the {cap}-byte limit", loc.size),
            ));
        }
        let mut f = File::open(&self.data).map_err(|e| self.read_err(name, &e))?;
        f.seek(SeekFrom::Start(loc.offset))
            .map_err(|e| self.read_err(name, &e))?;
        let mut body = Vec::with_capacity(loc.size as usize);
        f.take(loc.size)
            .read_to_end(&mut body)
            .map_err(|e| self.read_err(name, &e))?;
        if body.len() as u64 != loc.size {
            return Err(refused(&self.shown, Some(name), "truncated archive"));
        }
        Ok(body)
    }

    /// Reads the first bytes of an entry (for magic numbers).
    pub fn peek(&self, name: &str, loc: Loc, n: usize) -> Result<Vec<u8>> {
        let n = (n as u64).min(loc.size);
        self.read_small(
            name,
            Loc {
                offset: loc.offset,
                size: n,
            },
            n,
        )
    }

    /// A blocking reader of an entry's bytes.
    pub fn reader(&self, name: &str, loc: Loc) -> Result<impl Read> {
        let mut f = File::open(&self.data).map_err(|e| self.read_err(name, &e))?;
        f.seek(SeekFrom::Start(loc.offset))
            .map_err(|e| self.read_err(name, &e))?;
        Ok(BufReader::with_capacity(BUF, f).take(loc.size))
    }

    /// Hashes a whole entry (blocking).
    pub fn hash(&self, name: &str, loc: Loc) -> Result<Digest> {
        let mut r = self.reader(name, loc)?;
        let mut h = DigestHasher::new();
        let mut buf = vec![0u8; BUF];
        loop {
            let n = r.read(&mut buf).map_err(|e| self.read_err(name, &e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let (d, n) = h.finish();
        if n != loc.size {
            return Err(refused(&self.shown, Some(name), "truncated archive"));
        }
        Ok(d)
    }

    fn read_err(&self, name: &str, e: &std::io::Error) -> Error {
        refused(
            &self.shown,
            Some(name),
            format!("cannot read the entry: {e}"),
        )
    }

    /// Streams an entry's bytes from `from`, checking they hash to `expected`: the last chunk
    /// is held back until the hash is checked, so a receiver never gets all of a wrong blob.
    pub fn stream(&self, name: &str, loc: Loc, expected: Digest, from: u64) -> BlobStream {
        stream_verified(
            self.data.clone(),
            self.shown.clone(),
            name.to_string(),
            loc,
            Some(expected),
            from,
        )
    }
}

fn spool_err(shown: &Path, e: &std::io::Error) -> Error {
    refused(
        shown,
        None,
        format!(
            "cannot write the spool file under {}: {e}",
            std::env::temp_dir().display()
        ),
    )
}

fn truncated(e: &std::io::Error) -> String {
    format!("cannot read the entry's bytes (truncated or corrupt archive): {e}")
}

/// The pass over the headers.
fn scan<R: Read>(
    shown: &Path,
    entries: tar::Entries<'_, R>,
    metas: &[&str],
    len: Option<u64>,
    drain: bool,
) -> Result<Scan> {
    let mut s = Scan::default();
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            let why = format!("unreadable tar header (truncated, or not a tar archive): {e}");
            refused(shown, None, why)
        })?;
        s.count += 1;
        if s.count > MAX_ENTRIES {
            return Err(refused(
                shown,
                None,
                format!("holds more than {MAX_ENTRIES} entries"),
            ));
        }
        let raw = entry.path_bytes().into_owned();
        let Ok(name) = String::from_utf8(raw.clone()) else {
            let shown_name = String::from_utf8_lossy(&raw).into_owned();
            return Err(refused(
                shown,
                Some(&shown_name),
                "the entry name is not UTF-8",
            ));
        };
        let bad = |why: String| refused(shown, Some(&name), why);
        let parts = components(&name).map_err(|why| bad(why.into()))?;
        let key = parts.join("/");
        let kind = entry.header().entry_type();
        let size = entry.size();
        let offset = entry.raw_file_position();
        if let Some(len) = len {
            if offset.saturating_add(size) > len {
                return Err(bad(format!(
                    "declares {size} bytes at offset {offset}, past the end of the {len}-byte file (truncated archive, or a tar bomb)"
                )));
            }
        }
        use tar::EntryType as T;
        match kind {
            T::Regular | T::Continuous => {}
            T::Directory => {
                s.dirs.insert(key);
                continue;
            }
            T::Symlink | T::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let Ok(target) = String::from_utf8(target_raw) else {
                    return Err(bad("the link target is not UTF-8".into()));
                };
                let what = if kind == T::Symlink {
                    "a symbolic link"
                } else {
                    "a hard link"
                };
                let base: &[String] = if kind == T::Symlink {
                    &parts[..parts.len() - 1]
                } else {
                    &[]
                };
                let Some(resolved) = join_inside(base, &target) else {
                    return Err(bad(format!("is {what} to {target:?}, outside the archive")));
                };
                s.links.push((key, resolved, kind == T::Symlink));
                continue;
            }
            T::Char | T::Block => return Err(bad("is a device file".into())),
            T::Fifo => return Err(bad("is a FIFO".into())),
            T::XHeader | T::XGlobalHeader | T::GNULongName | T::GNULongLink => continue,
            other => return Err(bad(format!("has an unsupported entry type {other:?}"))),
        }
        let loc = Loc { offset, size };
        let mut consumed = 0u64;
        if metas.contains(&key.as_str()) {
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
            consumed = size;
            if let Some(before) = s.metas.get(&key) {
                if before != &body {
                    return Err(bad("appears twice with different contents".into()));
                }
                continue;
            }
            s.metas.insert(key.clone(), body);
        }
        if drain {
            // Read (into the spool) here, not in the next header's read, so a failure names
            // this entry.
            let got = consumed
                + std::io::copy(&mut entry, &mut std::io::sink())
                    .map_err(|e| bad(truncated(&e)))?;
            if got != size {
                return Err(bad(format!("truncated archive: {got} of {size} bytes")));
            }
        }
        if let Some(first) = s.files.get(&key) {
            s.dups.push((key, *first, loc));
            continue;
        }
        s.files.insert(key, loc);
    }
    Ok(s)
}

fn finish(
    shown: &Path,
    data: PathBuf,
    spool: Option<tempfile::NamedTempFile>,
    s: Scan,
    spooled: bool,
) -> Result<TarIndex> {
    let mut idx = TarIndex {
        shown: shown.to_path_buf(),
        data,
        files: s.files,
        linked: HashSet::new(),
        metas: s.metas,
        count: s.count,
        spooled,
        _spool: spool,
    };
    for (name, first, second) in &s.dups {
        let differ =
            first.size != second.size || idx.hash(name, *first)? != idx.hash(name, *second)?;
        if differ {
            return Err(refused(
                shown,
                Some(name),
                "appears twice with different contents",
            ));
        }
    }
    // Links: each must end, within a few hops, at a regular file of the archive.
    let links: HashMap<&str, &str> = s
        .links
        .iter()
        .map(|(n, t, _)| (n.as_str(), t.as_str()))
        .collect();
    for (name, target, _) in &s.links {
        let mut at = target.as_str();
        let mut hops = 0;
        let loc = loop {
            if let Some(loc) = idx.files.get(at) {
                break *loc;
            }
            let prefix = format!("{at}/");
            if s.dirs.contains(at) || idx.files.keys().any(|k| k.starts_with(&prefix)) {
                return Err(refused(
                    shown,
                    Some(name),
                    format!("is a link to {target:?}, a directory"),
                ));
            }
            match links.get(at) {
                Some(next) if hops < MAX_HOPS => {
                    at = next;
                    hops += 1;
                }
                Some(_) => {
                    return Err(refused(
                        shown,
                        Some(name),
                        "is a link in a loop or too long a chain",
                    ))
                }
                None => {
                    return Err(refused(
                        shown,
                        Some(name),
                        format!("is a link to {target:?}, which the archive does not hold"),
                    ))
                }
            }
        };
        if let Some(existing) = idx.files.get(name) {
            if *existing != loc {
                return Err(refused(
                    shown,
                    Some(name),
                    "appears twice with different contents",
                ));
            }
        }
        idx.files.insert(name.clone(), loc);
        idx.linked.insert(name.clone());
    }
    Ok(idx)
}

/// Resolves the link target `target` against the directory `base` (its components); `None`
/// when it is absolute or climbs above the archive's root.
fn join_inside(base: &[String], target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<String> = base.to_vec();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c.to_string()),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_links_stay_inside() {
        assert_eq!(components("./blobs/sha256/").unwrap(), ["blobs", "sha256"]);
        assert!(components("a/../../b").is_err());
        assert!(components("/etc/passwd").is_err());
        assert!(components("./").is_err());
        let base = vec!["abc".to_string()];
        assert_eq!(join_inside(&base, "../x.tar").as_deref(), Some("x.tar"));
        assert_eq!(join_inside(&base, "../../x.tar"), None);
        assert_eq!(join_inside(&[], "/etc/passwd"), None);
        assert_eq!(join_inside(&base, "./y/z").as_deref(), Some("abc/y/z"));
    }
}
