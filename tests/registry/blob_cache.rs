//! The persistent blob-location cache through the `ferry` binary and a real registry: a second
//! process mounts what a first one uploaded, a stale entry falls back to an upload and is
//! dropped, `--no-cache` neither reads nor writes it.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;

/// `ferry` with the cache in `cache` (these tests opt back in: the harness sets
/// `FERRY_NO_CACHE` for every other test).
fn ferry(cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("FERRY_CACHE_DIR", cache)
        .env_remove("FERRY_NO_CACHE")
        .output()
        .unwrap()
}

fn copy_json(cache: &Path, extra: &[&str], src: &str, dst: &str) -> serde_json::Value {
    let mut args = vec!["copy", "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[src, dst]);
    let out = ferry(cache, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cache_file(cache: &Path) -> String {
    std::fs::read_to_string(cache.join("blob-locations.json")).unwrap_or_default()
}

#[test]
fn a_later_process_mounts_what_an_earlier_one_uploaded_and_stale_entries_fall_back() {
    let reg = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci_index());
    let n = built.blobs.len();
    let src = format!("oci:{}:v1", dir.path().display());
    // A layout source has no registry location: the first copy uploads every blob and the
    // cache learns where they now are.
    let first = copy_json(cache.path(), &[], &src, &format!("{}/team/a:v1", reg.addr));
    assert_eq!(first["blobs"]["copied"], n);
    let text = cache_file(cache.path());
    assert!(
        text.contains("team/a") && text.contains(&reg.addr),
        "{text}"
    );

    // Another process, another repository: every blob is mounted, no byte is sent.
    let second = copy_json(cache.path(), &[], &src, &format!("{}/team/b:v1", reg.addr));
    assert_eq!(second["blobs"]["mounted"], n, "{second}");
    assert_eq!(second["blobs"]["copied"], 0, "{second}");
    assert_eq!(second["blobs"]["bytes_copied"], 0, "{second}");
    let log = reg.log();
    let mounts = log
        .lines()
        .filter(|l| l.contains("POST /v2/team/b/blobs/uploads/?") && l.contains("from=team%2Fa"))
        .count();
    assert_eq!(mounts, n, "{log}");

    // `--no-cache`: nothing read (every blob uploaded) and nothing written.
    let before = cache_file(cache.path());
    let third = copy_json(
        cache.path(),
        &["--no-cache"],
        &src,
        &format!("{}/team/c:v1", reg.addr),
    );
    assert_eq!(third["blobs"]["copied"], n, "{third}");
    assert_eq!(cache_file(cache.path()), before);

    // Stale entries: the cache names a repository that holds none of the blobs. Each mount is
    // refused (the registry opens an upload session instead), the blob is uploaded, and the
    // entries are dropped from the file.
    let stale = before
        .replace("team/a", "team/gone")
        .replace("team/b", "team/gone");
    std::fs::write(cache.path().join("blob-locations.json"), &stale).unwrap();
    let fourth = copy_json(cache.path(), &[], &src, &format!("{}/team/d:v1", reg.addr));
    assert_eq!(fourth["blobs"]["copied"], n, "{fourth}");
    assert_eq!(
        fixtures::inspect_digest(&format!("docker://{}/team/d:v1", reg.addr)),
        built.digest
    );
    let after = cache_file(cache.path());
    assert!(!after.contains("team/gone"), "{after}");
    assert!(after.contains("team/d"), "{after}");
    // And the next process mounts from where the blobs really are.
    let fifth = copy_json(cache.path(), &[], &src, &format!("{}/team/e:v1", reg.addr));
    assert_eq!(fifth["blobs"]["mounted"], n, "{fifth}");

    // `FERRY_NO_CACHE=1` is `--no-cache`.
    let before = cache_file(cache.path());
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["copy", "--json", &src, &format!("{}/team/f:v1", reg.addr)])
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("FERRY_CACHE_DIR", cache.path())
        .env("FERRY_NO_CACHE", "1")
        .output()
        .unwrap();
    let sixth: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sixth["blobs"]["copied"], n, "{sixth}");
    assert_eq!(cache_file(cache.path()), before);
}
