//! `--digestfile FILE` (skopeo's flag): the destination digest, written atomically (a temp file
//! beside FILE, then renamed over it), so a reader sees the old content or the new, never half.

use std::io::Write;
use std::path::Path;

use ferry::{Digest, Error, Result};

/// Writes `digest` (no newline, like skopeo) to `path`.
pub fn write(path: &Path, digest: &Digest) -> Result<()> {
    let failed = |e: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".digestfile")
        .tempfile_in(dir)
        .map_err(failed)?;
    tmp.write_all(digest.to_string().as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(failed)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o644);
        tmp.as_file().set_permissions(mode).map_err(failed)?;
    }
    tmp.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}
