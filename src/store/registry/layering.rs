//! The registry backend's imports point one way: the transport imports nothing above it,
//! `repo.rs` only the transport, and the manifest, blob and upload layers never the facade.

/// `(file, source)` of every module below the facade, found on disk so that a new file cannot
/// be left out: paths relative to the registry module (`transport/auth.rs`, `repo.rs`).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, rel: &str, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("the registry module's sources") {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let file = format!("{rel}{name}");
            if path.is_dir() {
                walk(&path, &format!("{file}/"), out);
            } else if name.ends_with(".rs") && file != "mod.rs" && file != "layering.rs" {
                out.push((file, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/registry");
    let mut out = Vec::new();
    walk(std::path::Path::new(root), "", &mut out);
    out.sort();
    out
}

/// The registry modules a file's `use` lines name, as paths below the registry module
/// (`transport/challenge`, `repo`, `RegistryStore`).
fn imports(file: &str, src: &str) -> Vec<String> {
    let module: Vec<&str> = file
        .trim_end_matches(".rs")
        .split('/')
        .filter(|p| *p != "mod")
        .collect();
    // Top-level `use` lines only (a `mod tests` importing `super::*` is the file itself).
    src.lines()
        .filter_map(|l| {
            l.strip_prefix("use ")
                .or_else(|| l.strip_prefix("pub use "))
        })
        .filter_map(|path| {
            let mut at = module.clone();
            let mut rest = path;
            if let Some(r) = rest.strip_prefix("crate::store::registry::") {
                at.clear();
                rest = r;
            } else if let Some(r) = rest.strip_prefix("self::") {
                rest = r;
            } else if rest.starts_with("super::") {
                while let Some(r) = rest.strip_prefix("super::") {
                    at.pop();
                    rest = r;
                }
            } else {
                return None;
            }
            let first = rest.split("::").next()?.trim_end_matches(';');
            at.push(first);
            Some(at.join("/"))
        })
        .collect()
}

#[test]
fn imports_point_down_only() {
    let files = sources();
    for name in [
        "transport/mod.rs",
        "transport/retry.rs",
        "repo.rs",
        "upload/session.rs",
    ] {
        assert!(files.iter().any(|(f, _)| f == name), "{name} was not read");
    }
    for (file, src) in &files {
        let file = file.as_str();
        for import in imports(file, src) {
            let transport = import == "transport" || import.starts_with("transport/");
            let allowed = if file.starts_with("transport/") || file == "repo.rs" {
                transport
            } else {
                // Layers above the transport reach it and `repo`, their own module, never
                // the facade (`RegistryStore`, `RegistryClient`, the options).
                transport
                    || import == "repo"
                    || import
                        .starts_with(file.split('/').next().unwrap_or("").trim_end_matches(".rs"))
            };
            assert!(allowed, "{file} imports {import}, which is above it");
        }
    }
}

#[test]
fn the_check_can_fail() {
    let bad = "use super::super::RegistryStore;\nuse super::manifests::TagQuery;";
    let found = imports("transport/auth.rs", bad);
    assert!(
        found.iter().any(|i| !i.starts_with("transport/")),
        "{found:?}"
    );
    let found = imports("upload/session.rs", "use super::super::RegistryStore;");
    assert_eq!(found, vec!["RegistryStore".to_string()]);
    let found = imports(
        "transport/auth.rs",
        "use super::challenge::{covers, merge};",
    );
    assert_eq!(found, vec!["transport/challenge".to_string()]);
}
