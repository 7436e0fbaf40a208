//! The output side of archive writers: deterministic tar headers (mode 0644/0755, owner 0,
//! mtime 0), and a tar written to a temp file beside the destination, fsynced, then renamed
//! over it, so the file is the old one or the complete new one, never half of either (`-`
//! writes to standard output instead).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

const WRITE_BUF: usize = 256 * 1024;

pub(super) fn out_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// A tar being written, and the temp file it goes to (`None`: standard output).
pub(super) type Output = (
    tar::Builder<Box<dyn Write>>,
    Option<tempfile::NamedTempFile>,
);

/// A tar writer onto a temp file beside `file` (returned, to be persisted by
/// [`finish_output`]), or onto standard output when `file` is `-`.
pub(super) fn open_output(file: &Path) -> Result<Output> {
    if file.as_os_str() == "-" {
        let out: Box<dyn Write> = Box::new(BufWriter::with_capacity(WRITE_BUF, std::io::stdout()));
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        return Ok((tar, None));
    }
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.ferry-"))
        .tempfile_in(dir)
        .map_err(|e| {
            out_err(
                file,
                format!("cannot create a temp file in {}: {e}", dir.display()),
            )
        })?;
    let out: Box<dyn Write> = Box::new(BufWriter::with_capacity(
        WRITE_BUF,
        tmp.as_file().try_clone().map_err(|e| out_err(file, e))?,
    ));
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    Ok((tar, Some(tmp)))
}

/// Ends the tar; a temp file is fsynced and renamed over `file`.
pub(super) fn finish_output(
    tar: tar::Builder<Box<dyn Write>>,
    tmp: Option<tempfile::NamedTempFile>,
    file: &Path,
) -> Result<()> {
    let mut out = tar.into_inner().map_err(|e| out_err(file, e))?;
    out.flush().map_err(|e| out_err(file, e))?;
    drop(out);
    match tmp {
        Some(tmp) => persist(tmp, file),
        None => Ok(()),
    }
}

/// Fsyncs the finished temp file, renames it over `file` and fsyncs the directory.
pub(super) fn persist(tmp: tempfile::NamedTempFile, file: &Path) -> Result<()> {
    tmp.as_file().sync_all().map_err(|e| out_err(file, e))?;
    tmp.persist(file).map_err(|e| out_err(file, e.error))?;
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(super) fn header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(kind);
    h
}
