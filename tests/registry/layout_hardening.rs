//! Layout hardening (issue 13): concurrent writers keep every tag, temp files stay out of
//! `blobs/` and are swept, files honour the umask, and the layout/reference defects a new user
//! hits in the CLI (digest printing, exit codes, unknown transports, schema 1, `--platform`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;
use bytes::Bytes;
use ferry::manifest::Descriptor;
use ferry::store::layout::LayoutStore;
use ferry::store::{BlobSource, BlobStream, Store, StoreBlob, Target};
use ferry::Digest;
use futures::StreamExt;
use serde_json::{json, Value};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// Tags of `index.json`, read without ferry, sorted.
fn index_tags(dir: &Path) -> Vec<String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let mut tags: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["annotations"][fixtures::REF_NAME].as_str())
        .map(str::to_string)
        .collect();
    tags.sort();
    tags
}

/// Every file and directory below `root` (not `root` itself).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

fn blob_names(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn eight_processes_writing_one_fresh_layout_keep_every_tag() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let img = fixtures::write_layout(&src, "v1", &ImageSpec::oci());
    for round in 0..3 {
        let dst = dir.path().join(format!("dst{round}"));
        let children: Vec<_> = (0..8)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_ferry"))
                    .args(["copy", "-q", &oci(&src, "v1"), &oci(&dst, &format!("t{i}"))])
                    .env("DOCKER_CONFIG", "/nonexistent")
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        }
        let want: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
        assert_eq!(index_tags(&dst), want, "round {round}");
        assert_eq!(fixtures::tagged(&dst, "t5").digest, img.digest);
    }
    let bundle = dir.path().join("bundle");
    fixtures::umoci_unpack(&dir.path().join("dst2"), "t7", &bundle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_stores_on_one_layout_keep_every_tag() {
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_layout(&dir.path().join("src"), "a", &ImageSpec::artifact());
    let src = LayoutStore::open(&dir.path().join("src")).unwrap();
    let dst_dir = dir.path().join("dst");
    let m = src.get_manifest(&Target::Tag("a".into())).await.unwrap();
    {
        let dst = LayoutStore::create(&dst_dir).unwrap();
        let ferry::manifest::Children::Image { config, layers } = m.children().unwrap() else {
            panic!("an image")
        };
        for desc in std::iter::once(&config).chain(&layers) {
            dst.put_blob(desc, &StoreBlob { store: &src, desc })
                .await
                .unwrap();
        }
        dst.put_manifest(&m, &[]).await.unwrap();
    }
    // Each task has its own LayoutStore (so no shared in-process mutex), as processes would.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (dst_dir, m) = (dst_dir.clone(), m.clone());
            tokio::spawn(async move {
                let store = LayoutStore::create(&dst_dir).unwrap();
                for j in 0..10 {
                    store
                        .put_manifest(&m, &[format!("s{i}-{j}")])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut want: Vec<String> = (0..8)
        .flat_map(|i| (0..10).map(move |j| format!("s{i}-{j}")))
        .collect();
    want.sort();
    assert_eq!(index_tags(&dst_dir), want);
}

/// Sends `head`, then never finishes: a transfer that hangs until it is aborted.
struct Stalling {
    head: Bytes,
}

#[async_trait::async_trait]
impl BlobSource for Stalling {
    async fn open(&self, _offset: u64) -> ferry::Result<BlobStream> {
        let head = futures::stream::iter([Ok(self.head.clone())]);
        Ok(head.chain(futures::stream::pending()).boxed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_in_flight_or_aborted_leaves_nothing_under_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = Arc::new(LayoutStore::create(&root).unwrap());
    let head = Bytes::from(vec![3u8; 1 << 20]);
    let desc = Descriptor {
        media_type: fixtures::OCI_LAYER_GZIP.into(),
        digest: Digest::of(b"a 4 MiB blob that never finishes"),
        size: 4 << 20,
        platform: None,
    };
    let task = {
        let (store, desc) = (store.clone(), desc.clone());
        tokio::spawn(async move { store.put_blob(&desc, &Stalling { head }).await })
    };
    // The head reaches a temp file somewhere in the layout, but not under blobs/.
    let big = |root: &Path| {
        walk(root)
            .into_iter()
            // A file may vanish between listing and stat: it is then not there.
            .filter(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.len() >= 1 << 20)
            })
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while big(&root).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no temp file appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let temp = big(&root);
    assert!(
        !temp[0].starts_with(root.join("blobs")),
        "temp file {} is under blobs/",
        temp[0].display()
    );
    assert!(blob_names(&root).is_empty(), "{:?}", blob_names(&root));
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !big(&root).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "temp file left behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(blob_names(&root).is_empty());
    // Failed writes leave nothing either: not in blobs/, not in the temp area.
    let before = walk(&root);
    let wrong = Descriptor {
        digest: Digest::of(b"other"),
        size: 5,
        ..desc.clone()
    };
    struct Five;
    #[async_trait::async_trait]
    impl BlobSource for Five {
        async fn open(&self, _offset: u64) -> ferry::Result<BlobStream> {
            Ok(futures::stream::iter([Ok(Bytes::from_static(b"12345"))]).boxed())
        }
    }
    assert!(store.put_blob(&wrong, &Five).await.is_err());
    assert_eq!(walk(&root), before);
}

fn age(path: &Path, by: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn stale_temp_files_are_swept_and_umoci_gc_accepts_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fixtures::write_layout(&src, "v1", &ImageSpec::oci());
    let dst = dir.path().join("dst");
    let out = ferry(&["copy", "-q", &oci(&src, "v1"), &oci(&dst, "v1")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Debris of killed copies: an older ferry's temp file under blobs/sha256, and one in the
    // temp area. A young temp file and one whose writer still holds its lock are in use.
    let legacy = dst.join("blobs/sha256/.tmp-AbCdEf");
    let tmp_dir = dst.join(".ferry/tmp");
    std::fs::create_dir_all(&tmp_dir).unwrap();
    let stale = tmp_dir.join("blob-stale");
    let young = tmp_dir.join("blob-young");
    let held = tmp_dir.join("blob-held");
    for p in [&legacy, &stale, &young, &held] {
        std::fs::write(p, b"partial").unwrap();
    }
    for p in [&legacy, &stale, &held] {
        age(p, Duration::from_secs(3600));
    }
    let holder = std::fs::File::open(&held).unwrap();
    fs4::FileExt::try_lock(&holder).unwrap();
    let out = ferry(&["copy", "-q", &oci(&src, "v1"), &oci(&dst, "v2")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!legacy.exists() && !stale.exists(), "stale files swept");
    assert!(young.exists() && held.exists(), "files in use are kept");
    drop(holder);
    std::fs::remove_file(&young).unwrap();
    std::fs::remove_file(&held).unwrap();
    let gc = Command::new("umoci")
        .args(["gc", "--layout"])
        .arg(&dst)
        .output()
        .unwrap();
    assert!(gc.status.success(), "umoci gc: {}", text(&gc.stderr));
    fixtures::umoci_unpack(&dst, "v2", &dir.path().join("bundle"));
}

#[test]
fn layout_files_honour_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fixtures::write_layout(&src, "v1", &ImageSpec::oci_index());
    for (umask, file_mode, dir_mode) in [("022", 0o644, 0o755), ("027", 0o640, 0o750)] {
        let dst = dir.path().join(format!("dst{umask}"));
        let out = Command::new("sh")
            .args(["-c", &format!("umask {umask} && exec \"$0\" \"$@\"")])
            .arg(env!("CARGO_BIN_EXE_ferry"))
            .args(["copy", "-q", &oci(&src, "v1"), &oci(&dst, "v1")])
            .env("DOCKER_CONFIG", "/nonexistent")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut files = 0;
        for p in std::iter::once(dst.clone()).chain(walk(&dst)) {
            let mode = p.metadata().unwrap().permissions().mode() & 0o777;
            let want = if p.is_dir() { dir_mode } else { file_mode };
            assert_eq!(mode, want, "umask {umask}: {} is {mode:o}", p.display());
            files += p.is_file() as usize;
        }
        assert!(files > 5, "{files} files");
    }
}

#[tokio::test]
async fn a_duplicate_tag_in_a_source_index_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("l");
    let a = fixtures::write_layout(&root, "v1", &ImageSpec::oci());
    let b = fixtures::write_layout(&root, "other", &ImageSpec::oci().seed(2));
    let index_path = root.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for e in index["manifests"].as_array_mut().unwrap() {
        e["annotations"][fixtures::REF_NAME] = json!("v1");
    }
    // A third entry repeating the first (same digest) alone would be harmless.
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let store = LayoutStore::open(&root).unwrap();
    let t = Target::Tag("v1".into());
    for e in [
        store.resolve(&t).await.unwrap_err(),
        store.get_manifest(&t).await.unwrap_err(),
    ] {
        let s = e.to_string();
        assert!(
            s.contains("v1")
                && s.contains(&a.digest.to_string())
                && s.contains(&b.digest.to_string())
                && s.contains("index.json"),
            "{s}"
        );
    }
    let out = ferry(&["copy", &oci(&root, "v1"), &oci(&dir.path().join("o"), "v1")]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("v1"), "{}", text(&out.stderr));
    // Writing the tag again settles it: one entry.
    let store = LayoutStore::create(&root).unwrap();
    let m = store
        .get_manifest(&Target::Digest(a.digest.clone()))
        .await
        .unwrap();
    store.put_manifest(&m, &["v1".into()]).await.unwrap();
    assert_eq!(store.resolve(&t).await.unwrap().unwrap().digest, a.digest);
    assert_eq!(index_tags(&root), ["v1"]);
    // The same digest listed twice under one tag is not ambiguous.
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let first = index["manifests"][0].clone();
    index["manifests"].as_array_mut().unwrap().push(first);
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let store = LayoutStore::open(&root).unwrap();
    assert_eq!(store.resolve(&t).await.unwrap().unwrap().digest, a.digest);
}

#[test]
fn digest_references_print_with_an_at_sign() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let img = fixtures::write_layout(&src, "v1", &ImageSpec::oci());
    let by_digest = format!("oci:{}@{}", src.display(), img.digest);
    let out = ferry(&["copy", &by_digest, &oci(&dir.path().join("a"), "x")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("copied {by_digest} -> ")),
        "{stdout}"
    );
    let pushed = reg.image("src/app:v1");
    let out = ferry(&["copy", "-q", &oci(&src, "v1"), &pushed]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let remote = format!("{}/src/app@{}", reg.addr, img.digest);
    let out = ferry(&["copy", "--json", &remote, &oci(&dir.path().join("b"), "x")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["source"], json!(remote));
    let out = ferry(&["copy", &remote, &oci(&dir.path().join("c"), "x")]);
    assert!(
        text(&out.stdout).contains(&format!("copied {remote} -> ")),
        "{}",
        text(&out.stdout)
    );
    let out = ferry(&["copy", &oci(&src, "v1"), &oci(&dir.path().join("d"), "x")]);
    assert!(
        text(&out.stdout).contains(&format!("copied {} -> ", oci(&src, "v1"))),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_missing_source_layout_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-layout");
    let out = ferry(&[
        "copy",
        &oci(&missing, "v1"),
        &oci(&dir.path().join("o"), "v1"),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&missing.display().to_string()),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("o").exists(), "nothing written");
}

#[test]
fn unknown_transports_are_refused_as_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let dst = oci(&dir.path().join("o"), "v1");
    for (input, transport) in [
        ("docker-daemon:alpine", "docker-daemon"),
        ("containers-storage:localhost/app:1", "containers-storage"),
        ("dir:/tmp/image", "dir"),
        ("https://ghcr.io/o/r:1", "https"),
    ] {
        let out = ferry(&["copy", input, &dst]);
        assert_eq!(out.status.code(), Some(2), "{input}: {}", text(&out.stderr));
        let want = format!(
            "transport {transport} is not supported (supported: docker://, oci:, oci-archive:, docker-archive:)"
        );
        assert!(
            text(&out.stderr).contains(&want),
            "{input}: {}",
            text(&out.stderr)
        );
        let out = ferry(&["copy", &oci(&dir.path().join("none"), "v1"), input]);
        assert_eq!(out.status.code(), Some(2), "{input} as destination");
    }
}

#[test]
fn schema1_manifests_are_refused_as_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("l");
    fixtures::write_layout(&root, "v1", &ImageSpec::oci());
    let body = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 1, "name": "library/old", "tag": "1", "architecture": "amd64",
        "fsLayers": [], "history": [], "signatures": []
    }))
    .unwrap();
    let digest = Digest::of(&body);
    std::fs::write(root.join("blobs/sha256").join(digest.hex()), &body).unwrap();
    let index_path = root.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "digest": digest, "size": body.len(),
        "annotations": {fixtures::REF_NAME: "old"}
    }));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let out = ferry(&[
        "copy",
        &oci(&root, "old"),
        &oci(&dir.path().join("o"), "old"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Docker schema 1 manifests are not supported"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn platform_of_a_single_platform_image_selects_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let img = fixtures::write_layout(&src, "v1", &ImageSpec::oci());
    let dst = dir.path().join("dst");
    let out = ferry(&[
        "copy",
        "--json",
        "--platform",
        "linux/amd64",
        &oci(&src, "v1"),
        &oci(&dst, "v1"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["destination_digest"], json!(img.digest));
    assert_eq!(fixtures::tagged(&dst, "v1").digest, img.digest);
    let out = ferry(&[
        "copy",
        "--platform",
        "linux/arm64",
        &oci(&src, "v1"),
        &oci(&dst, "v2"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("linux/arm64") && text(&out.stderr).contains("linux/amd64"),
        "{}",
        text(&out.stderr)
    );
    let out = ferry(&[
        "copy",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        &oci(&src, "v1"),
        &oci(&dst, "v3"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(index_tags(&dst), ["v1"]);
}

#[test]
fn docker_media_types_into_a_layout_warn() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fixtures::write_layout(&src, "docker", &ImageSpec::docker());
    fixtures::write_layout(&src, "list", &ImageSpec::docker_list());
    fixtures::write_layout(&src, "oci", &ImageSpec::oci());
    let dst = dir.path().join("dst");
    for tag in ["docker", "list"] {
        let out = ferry(&["copy", &oci(&src, tag), &oci(&dst, tag)]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("warning") && err.contains("Docker media types"),
            "{tag}: {err}"
        );
    }
    let out = ferry(&["copy", "-q", &oci(&src, "oci"), &oci(&dst, "oci")]);
    assert!(out.status.success());
    assert!(
        !text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );
}
