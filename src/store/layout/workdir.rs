//! A layout's `.ferry/` directory, where no layout reader looks: the lock that serialises writers
//! and the temp files of writes in progress.
//!
//! Writers (in this process or others) take an advisory `flock` on `.ferry/lock` around every
//! read-merge-replace of `index.json` and around creating a layout's files, so concurrent copies
//! into one layout keep every tag. Readers take no lock: `index.json` is only ever replaced by a
//! rename, so they see the old or the new file, never a torn one. The lock is advisory: another
//! tool writing `index.json` without it is not coordinated with.
//!
//! Temp files live in `.ferry/tmp/` (the same filesystem as `blobs/`, so they can be renamed into
//! place), never under `blobs/sha256/`, where tools such as `umoci gc` take every name for a
//! digest. Each is locked by its writer while it is open; one that no writer holds and that has
//! not changed for [`STALE_AFTER`] was left by a killed process, and is swept when a writer next
//! opens the layout. Files are created with mode 0666 and directories 0777, less the umask.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::index::layout_err;
use crate::error::{Op, Result};

/// The directory, beside `blobs/`, that holds ferry's lock.
pub const WORK_DIR: &str = ".ferry";
const LOCK_FILE: &str = "lock";
const TMP_DIR: &str = "tmp";
/// How long an unlocked temp file must have been left unchanged before a sweep removes it. A
/// writer locks its file right after creating it, so this only has to cover that instant; it
/// is generous so that clock steps and slow filesystems do no harm.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// Name prefix of the temp files older ferry versions wrote into `blobs/sha256/`.
const LEGACY_BLOB_TMP: &str = ".tmp-";

/// This process holds the writer lock of one layout while this lives; dropping it (closing the
/// file) releases the lock, also when the process dies.
pub(super) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Blocks until the writer lock of the layout at `root` is held, creating `.ferry/lock`.
    pub fn acquire(root: &Path) -> Result<WriterLock> {
        let dir = root.join(WORK_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| layout_err(Op::WriteLayout, &dir, format!("cannot create: {e}")))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| layout_err(Op::WriteLayout, &path, format!("cannot open: {e}")))?;
        fs4::FileExt::lock(&file)
            .map_err(|e| layout_err(Op::WriteLayout, &path, format!("cannot lock: {e}")))?;
        Ok(WriterLock { _file: file })
    }

    /// [`WriterLock::acquire`] on a blocking thread, so waiting for it stalls no async worker.
    pub async fn acquire_async(root: PathBuf) -> Result<WriterLock> {
        let at = root.join(WORK_DIR).join(LOCK_FILE);
        tokio::task::spawn_blocking(move || WriterLock::acquire(&root))
            .await
            .map_err(|e| layout_err(Op::WriteLayout, &at, e.to_string()))?
    }
}

/// The directory where a layout's writes in progress live (`.ferry/tmp/`).
#[derive(Clone, Debug)]
pub(super) struct TempArea {
    dir: PathBuf,
}

impl TempArea {
    pub fn new(root: &Path) -> TempArea {
        TempArea {
            dir: root.join(WORK_DIR).join(TMP_DIR),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new temp file named `PREFIX…`, mode 0666 less the umask, locked while it is open so
    /// that no sweep removes it. Removed when dropped unless persisted.
    pub fn file(&self, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
        std::fs::create_dir_all(&self.dir)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(&self.dir)?;
        fs4::FileExt::try_lock(tmp.as_file()).map_err(io::Error::from)?;
        Ok(tmp)
    }
}

/// Removes the temp files killed writers left in the layout at `root`: those in `.ferry/tmp/`
/// and older ferry versions' `blobs/sha256/.tmp-*`, when unlocked and older than
/// [`STALE_AFTER`]. Best effort: what cannot be removed is logged and left.
pub(super) fn sweep(root: &Path) {
    let places = [
        (TempArea::new(root).dir, ""),
        (root.join("blobs").join("sha256"), LEGACY_BLOB_TMP),
    ];
    for (dir, prefix) in places {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(prefix) {
                continue;
            }
            let path = entry.path();
            let removed = abandoned(&path).and_then(|lock| match lock {
                Some(_held) => std::fs::remove_file(&path).map(|()| true),
                None => Ok(false),
            });
            match removed {
                Ok(true) => {
                    tracing::debug!(path = %path.display(), "removed an abandoned temp file")
                }
                Ok(false) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let path = path.display();
                    tracing::warn!(%path, error = %e, "cannot remove an abandoned temp file")
                }
            }
        }
    }
}

/// The file, locked by us, when it is a regular file no writer holds that has not changed for
/// [`STALE_AFTER`]; `None` when it is in use (or not a file).
fn abandoned(path: &Path) -> io::Result<Option<File>> {
    let meta = std::fs::symlink_metadata(path)?;
    let age = SystemTime::now()
        .duration_since(meta.modified()?)
        .unwrap_or_default();
    if !meta.is_file() || age < STALE_AFTER {
        return Ok(None);
    }
    let file = File::open(path)?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => Ok(Some(file)),
        Err(fs4::TryLockError::WouldBlock) => Ok(None),
        Err(fs4::TryLockError::Error(e)) => Err(e),
    }
}
