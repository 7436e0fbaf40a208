//! `helm package` without Helm: walk a chart directory (honouring `.helmignore`, following
//! symbolic links that stay inside the chart), check it like Helm's loader, and write a
//! deterministic gzip'd tar with every file under `<name>/`.
//!
//! Archive layout, after Helm's `save.go`: `Chart.yaml` first, then `Chart.lock`, `values.yaml`,
//! `values.schema.json`, `templates/…`, the other files, and `charts/…` last; regular files only
//! (no directory entries), mode 0644, uid/gid 0, no owner names, one fixed mtime. Unlike Helm,
//! files are kept byte for byte (Chart.yaml is only edited for `--version`/`--app-version`) and
//! subcharts are kept as they are in `charts/`.

use std::path::{Path, PathBuf};

use super::archive::{check_files, ChartFile, MAX_CHART_BYTES, MAX_FILE_BYTES};
use super::error::ChartError;
use super::ignore::IgnoreRules;
use super::meta::rewrite_field;
use super::Chart;

/// How to package a chart directory.
#[derive(Clone, Debug, Default)]
pub struct PackageOptions {
    /// Replaces `version` in the packaged Chart.yaml.
    pub version: Option<String>,
    /// Replaces (or adds) `appVersion` in the packaged Chart.yaml.
    pub app_version: Option<String>,
    /// Modification time of every entry, in seconds since the epoch (0 unless the caller picks
    /// one, e.g. from `SOURCE_DATE_EPOCH`).
    pub mtime: u64,
}

/// Packages the chart in `dir`. The same files and options always give the same bytes.
pub fn package_dir(dir: &Path, options: &PackageOptions) -> Result<Chart, ChartError> {
    let label = dir.display().to_string();
    let root = dir.canonicalize().map_err(|e| ChartError::io(dir, e))?;
    if !root.is_dir() {
        return Err(ChartError::invalid(&label, "not a directory"));
    }
    let rules = IgnoreRules::load(&root, &label)?;
    let mut walker = Walker {
        root: root.clone(),
        rules: &rules,
        label: &label,
        files: Vec::new(),
        total: 0,
        stack: vec![root.clone()],
    };
    walker.walk(&root, "")?;
    let mut files = walker.files;
    rewrite_chart_yaml(&mut files, options, &label)?;
    let meta = check_files(&files, &label)?;
    files.sort_by(|a, b| (rank(&a.path), &a.path).cmp(&(rank(&b.path), &b.path)));
    let archive = write_archive(&meta.name, &files, options.mtime)
        .map_err(|e| ChartError::invalid(&label, format!("writing the archive: {e}")))?;
    Ok(Chart::new(meta, archive.into()))
}

/// Applies `--version` / `--app-version` to the Chart.yaml text.
fn rewrite_chart_yaml(
    files: &mut [ChartFile],
    options: &PackageOptions,
    label: &str,
) -> Result<(), ChartError> {
    let Some(file) = files.iter_mut().find(|f| f.path == "Chart.yaml") else {
        return Ok(()); // check_files reports the missing file
    };
    let mut text = String::from_utf8(file.data.clone())
        .map_err(|_| ChartError::invalid(label, "Chart.yaml is not UTF-8"))?;
    if let Some(v) = &options.version {
        text = rewrite_field(&text, "version", v, label)?;
    }
    if let Some(v) = &options.app_version {
        text = rewrite_field(&text, "appVersion", v, label)?;
    }
    file.data = text.into_bytes();
    Ok(())
}

/// Sort rank of an entry, after the order in which Helm's `save.go` writes a chart.
fn rank(path: &str) -> u8 {
    match path {
        "Chart.yaml" => 0,
        "Chart.lock" => 1,
        "values.yaml" => 2,
        "values.schema.json" => 3,
        p if p.starts_with("templates/") => 4,
        p if p.starts_with("charts/") => 6,
        _ => 5,
    }
}

fn write_archive(name: &str, files: &[ChartFile], mtime: u64) -> std::io::Result<Vec<u8>> {
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for f in files {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        header.set_size(f.data.len() as u64);
        tar.append_data(&mut header, format!("{name}/{}", f.path), f.data.as_slice())?;
    }
    tar.into_inner()?.finish()
}

/// Collects a chart directory's files in lexical order, like Helm's `sympath.Walk`.
struct Walker<'a> {
    root: PathBuf,
    rules: &'a IgnoreRules,
    label: &'a str,
    files: Vec<ChartFile>,
    total: u64,
    /// Canonical directories being walked, to stop symbolic-link loops.
    stack: Vec<PathBuf>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path, rel: &str) -> Result<(), ChartError> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| ChartError::io(dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| ChartError::io(dir, e))?;
        names.sort();
        for name in names {
            let name = name.to_str().ok_or_else(|| {
                ChartError::invalid(
                    self.label,
                    format!("{}: file name is not UTF-8", dir.join(&name).display()),
                )
            })?;
            let child_rel = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            self.visit(&dir.join(name), child_rel)?;
        }
        Ok(())
    }

    fn visit(&mut self, path: &Path, rel: String) -> Result<(), ChartError> {
        let lmeta = std::fs::symlink_metadata(path).map_err(|e| ChartError::io(path, e))?;
        let (target, meta) = if lmeta.file_type().is_symlink() {
            match self.follow(path, &rel)? {
                Some(t) => t,
                None => return Ok(()),
            }
        } else {
            (path.to_path_buf(), lmeta)
        };
        if meta.is_dir() {
            if self.rules.ignored(&rel, true) {
                return Ok(());
            }
            let canon = target
                .canonicalize()
                .map_err(|e| ChartError::io(&target, e))?;
            if self.stack.contains(&canon) {
                return Err(self.symlink(&rel, "makes a loop"));
            }
            self.stack.push(canon);
            self.walk(&target, &rel)?;
            self.stack.pop();
            return Ok(());
        }
        if self.rules.ignored(&rel, false) {
            return Ok(());
        }
        if !meta.is_file() {
            return Err(ChartError::invalid(
                self.label,
                format!("{rel} is not a regular file (device, socket or pipe)"),
            ));
        }
        self.add(&target, rel, meta.len())
    }

    /// Where a symbolic link leads, if it stays in the chart; `None` for an ignored broken link.
    fn follow(
        &self,
        path: &Path,
        rel: &str,
    ) -> Result<Option<(PathBuf, std::fs::Metadata)>, ChartError> {
        let target = match path.canonicalize() {
            Ok(t) => t,
            Err(_) if self.rules.ignored(rel, false) => return Ok(None),
            Err(e) => return Err(self.symlink(rel, &format!("cannot be followed: {e}"))),
        };
        let meta = std::fs::metadata(&target).map_err(|e| ChartError::io(&target, e))?;
        if !target.starts_with(&self.root) {
            if self.rules.ignored(rel, meta.is_dir()) {
                return Ok(None);
            }
            let problem = format!("points outside the chart, to {}", target.display());
            return Err(self.symlink(rel, &problem));
        }
        Ok(Some((target, meta)))
    }

    fn add(&mut self, path: &Path, rel: String, size: u64) -> Result<(), ChartError> {
        if size > MAX_FILE_BYTES {
            return Err(ChartError::FileTooLarge {
                chart: self.label.into(),
                file: rel,
                size,
                limit: MAX_FILE_BYTES,
            });
        }
        self.total += size;
        if self.total > MAX_CHART_BYTES {
            return Err(ChartError::ChartTooLarge {
                chart: self.label.into(),
                file: rel,
                limit: MAX_CHART_BYTES,
            });
        }
        let mut data = std::fs::read(path).map_err(|e| ChartError::io(path, e))?;
        // Helm's directory loader drops a UTF-8 byte-order mark from every file.
        if data.starts_with(b"\xEF\xBB\xBF") {
            data.drain(..3);
        }
        self.files.push(ChartFile { path: rel, data });
        Ok(())
    }

    fn symlink(&self, rel: &str, problem: &str) -> ChartError {
        ChartError::Symlink {
            chart: self.label.into(),
            file: rel.into(),
            problem: problem.into(),
        }
    }
}
