//! The persistent blob-location cache: which registry repositories were seen holding which
//! digest, kept between runs so a later `ferry` process mounts a blob instead of sending it again
//! (what containers/image calls its blob-info cache).
//!
//! One JSON file, `blob-locations.json`, in the cache directory (`$FERRY_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/ferry`, else `~/.cache/ferry`). A run reads it once when it starts and, at the
//! end, merges what it learned into the file as it is then: under an exclusive lock on
//! `blob-locations.lock`, written to a temporary file and renamed over it, so concurrent
//! processes neither lose each other's entries nor read a half-written file. The file is bounded:
//! past [`MAX_ENTRIES`] locations the least recently seen are dropped.
//!
//! An entry is a hint, never trusted: the registry's answer to the mount decides. A mount that
//! is refused (the registry answers 202 with an upload session, or 404) drops the entry and the
//! blob is uploaded as if there had been none. An unreadable or malformed file is treated as
//! empty (and replaced by the next save).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::RepoLocation;

/// The most locations the file keeps (about 3 MB); the least recently seen go first.
pub const MAX_ENTRIES: usize = 20_000;
/// A file larger than this is not read (it was not written by ferry).
const MAX_FILE: u64 = 16 * 1024 * 1024;
const FILE: &str = "blob-locations.json";
const LOCK: &str = "blob-locations.lock";
const VERSION: u32 = 1;

/// One location of one digest, and when a run last saw it (seconds since the epoch).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    digest: Digest,
    registry: String,
    repository: String,
    seen: u64,
}

#[derive(Serialize, Deserialize)]
struct Contents {
    version: u32,
    entries: Vec<Entry>,
}

type Key = (Digest, RepoLocation);

/// The cache as one run uses it: what the file held when the run started, plus what the run
/// learned (saved by [`LocationCache::save`]).
pub struct LocationCache {
    dir: PathBuf,
    /// Locations per digest from the file, most recently seen first.
    loaded: HashMap<Digest, Vec<RepoLocation>>,
    learned: Mutex<Learned>,
}

#[derive(Default)]
struct Learned {
    seen: HashSet<Key>,
    stale: HashSet<Key>,
}

impl LocationCache {
    /// The cache directory the environment names: `$FERRY_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/ferry`, else `$HOME/.cache/ferry`; `None` without any of them.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        var("FERRY_CACHE_DIR")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("ferry")))
            .or_else(|| var("HOME").map(|d| d.join(".cache").join("ferry")))
    }

    /// Reads the cache in `dir` (which need not exist yet). Never fails: a file that cannot be
    /// read or parsed is an empty cache.
    pub fn open(dir: &Path) -> LocationCache {
        let mut entries = match read(&dir.join(FILE)) {
            Ok(e) => e,
            Err(reason) => {
                tracing::debug!(dir = %dir.display(), %reason, "blob-location cache not used");
                Vec::new()
            }
        };
        entries.sort_by_key(|e| std::cmp::Reverse(e.seen));
        let mut loaded: HashMap<Digest, Vec<RepoLocation>> = HashMap::new();
        for e in entries {
            loaded.entry(e.digest).or_default().push(RepoLocation {
                registry: e.registry,
                repository: e.repository,
            });
        }
        LocationCache {
            dir: dir.to_path_buf(),
            loaded,
            learned: Mutex::default(),
        }
    }

    /// A repository of `registry`, other than `not`, that an earlier run saw holding `digest`
    /// (the most recently seen), unless this run found it stale.
    pub fn lookup(&self, digest: &Digest, registry: &str, not: &str) -> Option<String> {
        let learned = self.learned.lock().unwrap();
        self.loaded
            .get(digest)?
            .iter()
            .filter(|l| l.registry == registry && l.repository != not)
            .find(|l| !learned.stale.contains(&(digest.clone(), (*l).clone())))
            .map(|l| l.repository.clone())
    }

    /// This run saw `loc` holding `digest`.
    pub fn record(&self, digest: &Digest, loc: &RepoLocation) {
        let key = (digest.clone(), loc.clone());
        let mut learned = self.learned.lock().unwrap();
        learned.stale.remove(&key);
        learned.seen.insert(key);
    }

    /// A mount from `loc` was refused: the entry is dropped.
    pub fn forget(&self, digest: &Digest, loc: &RepoLocation) {
        let key = (digest.clone(), loc.clone());
        let mut learned = self.learned.lock().unwrap();
        learned.seen.remove(&key);
        learned.stale.insert(key);
    }

    /// Merges what this run learned into the file as it is now (other processes may have
    /// saved meanwhile), keeping the [`MAX_ENTRIES`] most recently seen.
    pub fn save(&self) -> Result<()> {
        let (seen, stale) = {
            let l = self.learned.lock().unwrap();
            (l.seen.clone(), l.stale.clone())
        };
        if seen.is_empty() && stale.is_empty() {
            return Ok(());
        }
        let fail = |what: &str, e: std::io::Error| Error::Cache {
            path: self.dir.clone(),
            reason: format!("{what}: {e}"),
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| fail("creating the directory", e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK))
            .map_err(|e| fail("opening the lock", e))?;
        fs4::FileExt::lock(&lock).map_err(|e| fail("locking", e))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut merged: HashMap<Key, u64> = read(&self.dir.join(FILE))
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let loc = RepoLocation {
                    registry: e.registry,
                    repository: e.repository,
                };
                ((e.digest, loc), e.seen)
            })
            .collect();
        for k in &stale {
            merged.remove(k);
        }
        for k in seen {
            merged.insert(k, now);
        }
        let mut entries: Vec<Entry> = merged
            .into_iter()
            .map(|((digest, loc), seen)| Entry {
                digest,
                registry: loc.registry,
                repository: loc.repository,
                seen,
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.seen));
        entries.truncate(MAX_ENTRIES);
        let body = serde_json::to_vec(&Contents {
            version: VERSION,
            entries,
        })
        .map_err(|e| fail("encoding", std::io::Error::other(e)))?;
        let mut tmp =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| fail("a temporary file", e))?;
        tmp.write_all(&body).map_err(|e| fail("writing", e))?;
        tmp.persist(self.dir.join(FILE))
            .map_err(|e| fail("replacing the file", e.error))?;
        Ok(())
    }
}

/// The entries of the cache file; an error says why it cannot be used.
fn read(path: &Path) -> std::result::Result<Vec<Entry>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{} bytes is over the {MAX_FILE} byte cap",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let c: Contents = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if c.version != VERSION {
        return Err(format!(
            "version {} (this ferry writes {VERSION})",
            c.version
        ));
    }
    Ok(c.entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(reg: &str, repo: &str) -> RepoLocation {
        RepoLocation {
            registry: reg.into(),
            repository: repo.into(),
        }
    }

    #[test]
    fn a_later_run_finds_what_an_earlier_one_saw_and_stale_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"layer");
        let first = LocationCache::open(dir.path());
        assert_eq!(first.lookup(&d, "r:5000", "b"), None);
        first.record(&d, &loc("r:5000", "a"));
        first.record(&d, &loc("other:5000", "x"));
        first.save().unwrap();

        let second = LocationCache::open(dir.path());
        assert_eq!(second.lookup(&d, "r:5000", "b").as_deref(), Some("a"));
        assert_eq!(second.lookup(&d, "r:5000", "a"), None, "not from itself");
        second.forget(&d, &loc("r:5000", "a"));
        assert_eq!(
            second.lookup(&d, "r:5000", "b"),
            None,
            "stale within the run"
        );
        second.save().unwrap();

        let third = LocationCache::open(dir.path());
        assert_eq!(
            third.lookup(&d, "r:5000", "b"),
            None,
            "dropped from the file"
        );
        assert_eq!(third.lookup(&d, "other:5000", "y").as_deref(), Some("x"));
    }

    #[test]
    fn concurrent_saves_keep_every_entry_and_the_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let dir = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    for round in 0..5 {
                        let c = LocationCache::open(&dir);
                        c.record(
                            &Digest::of(format!("{t}-{round}").as_bytes()),
                            &loc("r", "repo"),
                        );
                        c.save().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let c = LocationCache::open(dir.path());
        for t in 0..8 {
            for round in 0..5 {
                let d = Digest::of(format!("{t}-{round}").as_bytes());
                assert!(c.lookup(&d, "r", "other").is_some(), "{t}-{round} lost");
            }
        }

        let big = LocationCache::open(dir.path());
        for i in 0..MAX_ENTRIES + 10 {
            big.record(&Digest::of(&i.to_le_bytes()), &loc("r", "repo"));
        }
        big.save().unwrap();
        assert_eq!(read(&dir.path().join(FILE)).unwrap().len(), MAX_ENTRIES);
    }

    #[test]
    fn a_malformed_file_is_an_empty_cache_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let c = LocationCache::open(dir.path());
        let d = Digest::of(b"x");
        assert_eq!(c.lookup(&d, "r", "b"), None);
        c.record(&d, &loc("r", "a"));
        c.save().unwrap();
        let again = LocationCache::open(dir.path());
        assert_eq!(again.lookup(&d, "r", "b").as_deref(), Some("a"));
    }
}
