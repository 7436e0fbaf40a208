//! A layout's `.ferry/` directory, where no layout reader looks: the lock that serialises writers.
//!
//! Writers (in this process or others) take an advisory `flock` on `.ferry/lock` around every
//! read-merge-replace of `index.json` and around creating a layout's files, so concurrent copies
//! into one layout keep every tag. Readers take no lock: `index.json` is only ever replaced by a
//! rename, so they see the old or the new file, never a torn one. The lock is advisory: another
//! tool writing `index.json` without it is not coordinated with.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::index::layout_err;
use crate::error::{Op, Result};

/// The directory, beside `blobs/`, that holds ferry's lock.
pub const WORK_DIR: &str = ".ferry";
const LOCK_FILE: &str = "lock";

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
