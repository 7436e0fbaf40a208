//! The registry backend's imports point one way: the transport imports nothing above it,
//! `repo.rs` only the transport, and the manifest, blob and upload layers never the facade.

/// `(file, source)` of every module of a layer.
fn sources() -> Vec<(&'static str, &'static str)> {
    vec![
        ("transport/mod.rs", include_str!("transport/mod.rs")),
        ("transport/auth.rs", include_str!("transport/auth.rs")),
        (
            "transport/challenge.rs",
            include_str!("transport/challenge.rs"),
        ),
        ("transport/errors.rs", include_str!("transport/errors.rs")),
        ("transport/headers.rs", include_str!("transport/headers.rs")),
        ("transport/http.rs", include_str!("transport/http.rs")),
        ("transport/retry.rs", include_str!("transport/retry.rs")),
        ("transport/stats.rs", include_str!("transport/stats.rs")),
        ("repo.rs", include_str!("repo.rs")),
        ("manifests.rs", include_str!("manifests.rs")),
        ("deletes.rs", include_str!("deletes.rs")),
        ("blobs.rs", include_str!("blobs.rs")),
        ("upload/mod.rs", include_str!("upload/mod.rs")),
        ("upload/feed.rs", include_str!("upload/feed.rs")),
        ("upload/monolithic.rs", include_str!("upload/monolithic.rs")),
        ("upload/mount.rs", include_str!("upload/mount.rs")),
        ("upload/plan.rs", include_str!("upload/plan.rs")),
        ("upload/resumable.rs", include_str!("upload/resumable.rs")),
        ("upload/session.rs", include_str!("upload/session.rs")),
    ]
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
    for (file, src) in sources() {
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
