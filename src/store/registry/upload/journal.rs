//! The upload journal: where a chunked upload stands (its session's newest `Location` and the
//! bytes the registry acknowledged), kept on disk so that a rerun after the process died
//! (`kill -9`, a crash, a lost CI runner) asks the registry where that session stands and goes
//! on from there instead of sending the blob again.
//!
//! One small JSON file per (registry, repository, digest) in the journal directory (the CLI
//! uses `$XDG_CACHE_HOME/ferry/uploads`), rewritten after every acknowledged chunk. The file is
//! locked (`fs4`) for as long as an upload uses it, so two processes never drive one session;
//! a process that finds it locked uploads in a session of its own. An entry is removed when
//! its upload ends in this process, whatever the outcome (committed, failed, cancelled: the
//! session is then committed or deleted); only a process that died leaves one behind.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::digest::Digest;
use crate::manifest::Descriptor;

/// Where journal entries live.
#[derive(Clone, Debug)]
pub struct Journal {
    dir: PathBuf,
}

/// What one entry records.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    registry: String,
    repository: String,
    digest: Digest,
    size: u64,
    /// The session's newest `Location`.
    location: String,
    /// Bytes the registry acknowledged.
    offset: u64,
}

impl Journal {
    pub fn new(dir: impl Into<PathBuf>) -> Journal {
        Journal { dir: dir.into() }
    }

    fn path(&self, registry: &str, repository: &str, digest: &Digest) -> PathBuf {
        let key = Digest::of(format!("{registry}\n{repository}\n{digest}").as_bytes());
        self.dir.join(format!("{}.json", &key.hex()[..32]))
    }

    /// Takes the entry of this blob's upload for this process: `None` when another process
    /// holds it, or when the journal cannot be used (the upload then goes on without it;
    /// resuming is an optimisation, never a reason to fail).
    pub fn claim(&self, registry: &str, repository: &str, desc: &Descriptor) -> Option<Claim> {
        let path = self.path(registry, repository, &desc.digest);
        let open = || -> std::io::Result<File> {
            create_private_dir(&self.dir)?;
            let mut o = File::options();
            o.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            o.open(&path)
        };
        let file = match open() {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "upload journal unusable");
                return None;
            }
        };
        if fs4::FileExt::try_lock(&file).is_err() {
            tracing::debug!(path = %path.display(), "upload journal entry in use by another process");
            return None;
        }
        let saved = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
            .filter(|e| {
                e.registry == registry
                    && e.repository == repository
                    && e.digest == desc.digest
                    && e.size == desc.size
            });
        Some(Claim {
            file,
            path,
            entry: Entry {
                registry: registry.to_string(),
                repository: repository.to_string(),
                digest: desc.digest.clone(),
                size: desc.size,
                location: String::new(),
                offset: 0,
            },
            saved,
        })
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// This process's hold on one blob's journal entry; removed when dropped.
pub struct Claim {
    file: File,
    path: PathBuf,
    entry: Entry,
    /// What a process before this one recorded.
    saved: Option<Entry>,
}

impl Claim {
    /// The session a previous process left: its `Location` and the bytes it had acknowledged.
    pub fn saved(&self) -> Option<(Url, u64)> {
        let e = self.saved.as_ref()?;
        Some((Url::parse(&e.location).ok()?, e.offset))
    }

    /// Records that the session at `location` holds `offset` bytes. Failures are logged only.
    pub fn record(&mut self, location: &Url, offset: u64) {
        self.entry.location = location.to_string();
        self.entry.offset = offset;
        let body = serde_json::to_vec(&self.entry).expect("an entry serialises");
        // Rewritten in place: the lock is on this file, a rename would drop it.
        let write = |f: &mut File| -> std::io::Result<()> {
            f.seek(SeekFrom::Start(0))?;
            f.set_len(0)?;
            f.write_all(&body)
        };
        if let Err(e) = write(&mut self.file) {
            tracing::debug!(path = %self.path.display(), error = %e, "cannot record the upload in the journal");
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Still locked while removed: no other process can have taken it meanwhile.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc() -> Descriptor {
        Descriptor {
            media_type: String::new(),
            digest: Digest::of(b"blob"),
            size: 4,
            platform: None,
        }
    }

    #[test]
    fn a_claim_records_is_exclusive_and_is_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("uploads"));
        let mut c = j.claim("r:5000", "a/b", &desc()).unwrap();
        assert_eq!(c.saved(), None);
        let url = Url::parse("http://r:5000/v2/a/b/blobs/uploads/u?_state=1").unwrap();
        c.record(&url, 3);
        let path = j.path("r:5000", "a/b", &desc().digest);
        let left = std::fs::read(&path).unwrap();
        // Held: nobody else gets it.
        assert!(j.claim("r:5000", "a/b", &desc()).is_none());
        assert!(j.claim("r:5000", "a/other", &desc()).is_some());
        drop(c);
        assert!(!path.exists(), "a dropped claim removes its entry");
        // What a killed process leaves is found by the next one, for this blob only.
        std::fs::write(&path, &left).unwrap();
        let again = j.claim("r:5000", "a/b", &desc()).unwrap();
        assert_eq!(again.saved(), Some((url, 3)));
        drop(again);
        std::fs::write(&path, &left).unwrap();
        let bigger = Descriptor { size: 5, ..desc() };
        assert_eq!(j.claim("r:5000", "a/b", &bigger).unwrap().saved(), None);
    }
}
