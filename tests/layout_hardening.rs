//! Layout hardening (issue 13): concurrent writers keep every tag, temp files stay out of
//! `blobs/` and are swept, files honour the umask, and the layout/reference defects a new user
//! hits in the CLI (digest printing, exit codes, unknown transports, schema 1, `--platform`).
// Helpers for tests that land in later commits.
#![allow(dead_code, unused_imports)]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use ferry::manifest::Descriptor;
use ferry::store::layout::LayoutStore;
use ferry::store::{BlobSource, BlobStream, Store, StoreBlob, Target};
use ferry::Digest;
use futures::StreamExt;
use serde_json::{json, Value};
use support::fixtures::{self, ImageSpec};
use support::registry::Registry;

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

fn age(path: &Path, by: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}
