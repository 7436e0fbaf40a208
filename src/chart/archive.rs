//! Reading a chart archive (`.tgz`) the way Helm's `loader.LoadArchive` does, and the checks that
//! Helm's `LoadFiles` applies to a chart's files (Chart.yaml, values schema, subcharts).

use std::io::Read;

use super::error::ChartError;
use super::meta::ChartMeta;

/// Helm's `MaxDecompressedFileSize`: 5 MiB per file.
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024;
/// Helm's `MaxDecompressedChartSize`: 100 MiB for all files of a chart.
pub const MAX_CHART_BYTES: u64 = 100 * 1024 * 1024;

/// One file of a chart: its path relative to the chart directory, `/`-separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartFile {
    pub path: String,
    pub data: Vec<u8>,
}

/// The files of a gzip'd tar chart archive, with the top directory removed; `label` names the
/// archive in errors.
pub fn read_archive(bytes: &[u8], label: &str) -> Result<Vec<ChartFile>, ChartError> {
    let bad = |reason: String| ChartError::invalid(label, reason);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a gzip'd tar archive: {e}")))?;
    let mut files = Vec::new();
    let mut total = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a gzip'd tar archive: {e}")))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).replace('\\', "/");
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(bad(format!(
                "{raw}: only regular files are supported in a chart archive"
            )));
        }
        let path = inner_path(&raw).map_err(|r| bad(format!("{raw}: {r}")))?;
        let size = entry.size();
        if size > MAX_FILE_BYTES {
            return Err(ChartError::FileTooLarge {
                chart: label.into(),
                file: path,
                size,
                limit: MAX_FILE_BYTES,
            });
        }
        total += size;
        if total > MAX_CHART_BYTES {
            return Err(ChartError::ChartTooLarge {
                chart: label.into(),
                file: path,
                limit: MAX_CHART_BYTES,
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("{raw}: {e}")))?;
        files.push(ChartFile { path, data });
    }
    Ok(files)
}

/// The path of an archive entry inside its top directory, refusing what Helm refuses.
fn inner_path(raw: &str) -> Result<String, String> {
    let mut parts = raw.splitn(2, '/');
    let top = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("");
    if rest.is_empty() {
        return Err(if top == "Chart.yaml" {
            "chart yaml not in base directory".into()
        } else {
            "chart illegally contains content outside the base directory".into()
        });
    }
    if rest.starts_with('/') {
        return Err("chart illegally contains absolute paths".into());
    }
    let b = rest.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err("chart contains illegally named files".into());
    }
    let mut clean: Vec<&str> = Vec::new();
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if clean.pop().is_none() {
                    return Err("chart illegally references parent directory".into());
                }
            }
            c => clean.push(c),
        }
    }
    if clean.is_empty() {
        return Err("chart illegally contains content outside the base directory".into());
    }
    Ok(clean.join("/"))
}

/// Helm's `LoadFiles` checks: Chart.yaml present and valid, `values.schema.json` valid JSON,
/// every subchart under `charts/` loadable. Returns the chart's metadata.
pub fn check_files(files: &[ChartFile], label: &str) -> Result<ChartMeta, ChartError> {
    let chart_yaml = files
        .iter()
        .find(|f| f.path == "Chart.yaml")
        .ok_or_else(|| ChartError::invalid(label, "Chart.yaml file is missing"))?;
    let text = std::str::from_utf8(&chart_yaml.data)
        .map_err(|_| ChartError::invalid(label, "Chart.yaml is not UTF-8"))?;
    let meta = ChartMeta::parse(text, label)?;
    if let Some(schema) = files.iter().find(|f| f.path == "values.schema.json") {
        if serde_json::from_slice::<serde_json::Value>(&schema.data).is_err() {
            return Err(ChartError::invalid(
                label,
                "Invalid JSON in values.schema.json",
            ));
        }
    }
    check_subcharts(files, &meta.name)?;
    Ok(meta)
}

/// Every `charts/X.tgz` and `charts/X/` (X not starting with `_` or `.`) must load as a chart.
fn check_subcharts(files: &[ChartFile], parent: &str) -> Result<(), ChartError> {
    let mut groups: std::collections::BTreeMap<&str, Vec<ChartFile>> = Default::default();
    for f in files {
        let Some(rest) = f.path.strip_prefix("charts/") else {
            continue;
        };
        if f.path.ends_with(".prov") {
            continue;
        }
        let (name, inner) = rest.split_once('/').unwrap_or((rest, ""));
        groups.entry(name).or_default().push(ChartFile {
            path: inner.to_string(),
            data: f.data.clone(),
        });
    }
    for (name, group) in groups {
        if name.starts_with(['_', '.']) {
            continue;
        }
        let label = format!("{parent} (subchart charts/{name})");
        if name.ends_with(".tgz") {
            let inner = group.iter().find(|f| f.path.is_empty()).ok_or_else(|| {
                ChartError::invalid(
                    &label,
                    format!("charts/{name} is a directory named like an archive"),
                )
            })?;
            check_files(&read_archive(&inner.data, &label)?, &label)?;
        } else {
            let inner: Vec<ChartFile> = group.into_iter().filter(|f| !f.path.is_empty()).collect();
            check_files(&inner, &label)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_paths_follow_helms_archive_rules() {
        assert_eq!(
            inner_path("demo/templates/a.yaml").unwrap(),
            "templates/a.yaml"
        );
        assert_eq!(inner_path("demo/./x/../Chart.yaml").unwrap(), "Chart.yaml");
        assert!(inner_path("Chart.yaml")
            .unwrap_err()
            .contains("not in base directory"));
        assert!(inner_path("README")
            .unwrap_err()
            .contains("outside the base directory"));
        assert!(inner_path("demo//etc/passwd")
            .unwrap_err()
            .contains("absolute"));
        assert!(inner_path("demo/../../x")
            .unwrap_err()
            .contains("parent directory"));
        assert!(inner_path("demo/C:/x")
            .unwrap_err()
            .contains("illegally named"));
        assert!(inner_path("demo/").is_err());
    }
}
