//! LayoutStore reads layouts written by the fixtures, writes layouts that skopeo and umoci accept
//! with digests unchanged, and never leaves a wrong or partial blob behind.

use std::path::Path;

use crate::support::fixtures::{self, ImageSpec};
use bytes::Bytes;
use ferry::manifest::{self, Children, Descriptor, RawManifest};
use ferry::store::layout::LayoutStore;
use ferry::store::{BlobSource, BlobStream, Store, StoreBlob, Target};
use ferry::{Digest, Error};
use futures::StreamExt;

fn tag(t: &str) -> Target {
    Target::Tag(t.to_string())
}

async fn read_all(s: BlobStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = s.map(|c| c.unwrap()).collect().await;
    chunks.concat()
}

fn blob_file(dir: &Path, d: &Digest) -> Vec<u8> {
    std::fs::read(dir.join("blobs/sha256").join(d.hex())).unwrap()
}

/// Copies one image manifest (blobs first) from `src` to `dst`.
async fn copy_image(src: &dyn Store, dst: &dyn Store, m: &RawManifest, tags: &[String]) {
    let Children::Image { config, layers } = m.children().unwrap() else {
        panic!("not an image manifest")
    };
    for desc in std::iter::once(&config).chain(&layers) {
        if !dst.has_blob(desc).await.unwrap() {
            let n = dst
                .put_blob(desc, &StoreBlob { store: src, desc })
                .await
                .unwrap();
            assert_eq!(n, desc.size);
        }
    }
    dst.put_manifest(m, tags).await.unwrap();
}

/// Copies what `target` names, children before parents, tagging the top manifest with `tags`.
async fn copy(src: &dyn Store, dst: &dyn Store, target: &Target, tags: &[String]) -> Digest {
    let top = src.get_manifest(target).await.unwrap();
    match top.children().unwrap() {
        Children::Index { manifests } => {
            for child in manifests {
                let m = src
                    .get_manifest(&Target::Digest(child.digest))
                    .await
                    .unwrap();
                copy_image(src, dst, &m, &[]).await;
            }
            dst.put_manifest(&top, tags).await.unwrap();
        }
        Children::Image { .. } => copy_image(src, dst, &top, tags).await,
    }
    top.digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_fixture_layout() {
    let dir = tempfile::tempdir().unwrap();
    let img = fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci().layers(2, 600_000));
    let multi = fixtures::write_layout(dir.path(), "multi", &ImageSpec::oci_index());
    let store = LayoutStore::open(dir.path()).unwrap();
    assert_eq!(store.location(), format!("oci:{}", dir.path().display()));
    assert_eq!(store.list_tags().await.unwrap(), ["v1", "multi"]);

    assert_eq!(
        store.resolve(&tag("v1")).await.unwrap(),
        Some(img.descriptor())
    );
    assert_eq!(store.resolve(&tag("nope")).await.unwrap(), None);
    let child = &multi.children[1];
    let by_digest = store
        .resolve(&Target::Digest(child.digest.clone()))
        .await
        .unwrap();
    assert_eq!(
        by_digest.unwrap().media_type,
        manifest::OCI_MANIFEST,
        "type read from the blob"
    );
    let layer = Target::Digest(img.blobs[1].digest.clone());
    assert_eq!(
        store.resolve(&layer).await.unwrap(),
        None,
        "a layer is not a manifest"
    );

    let m = store.get_manifest(&tag("v1")).await.unwrap();
    assert_eq!(m.bytes, blob_file(dir.path(), &img.digest));
    let Children::Image { config, layers } = m.children().unwrap() else {
        panic!()
    };
    assert_eq!([vec![config], layers].concat(), img.blobs);
    let idx = store.get_manifest(&tag("multi")).await.unwrap();
    assert_eq!(
        (idx.digest.clone(), idx.media_type.as_str()),
        (multi.digest, manifest::OCI_INDEX)
    );
    let Children::Index { manifests } = idx.children().unwrap() else {
        panic!()
    };
    assert_eq!(manifests, multi.children);

    let big = &img.blobs[2];
    assert!(store.has_blob(big).await.unwrap());
    let wrong_size = Descriptor {
        size: big.size + 1,
        ..big.clone()
    };
    assert!(!store.has_blob(&wrong_size).await.unwrap());
    let whole = read_all(store.open_blob(big, 0).await.unwrap()).await;
    assert_eq!(Digest::of(&whole), big.digest);
    let tail = read_all(store.open_blob(big, 500_000).await.unwrap()).await;
    assert_eq!(tail, whole[500_000..]);
    assert!(store.open_blob(big, big.size + 1).await.is_err());

    let absent = Descriptor {
        digest: Digest::of(b"absent"),
        ..big.clone()
    };
    assert!(store
        .open_blob(&absent, 0)
        .await
        .err()
        .unwrap()
        .is_not_found());
    assert!(store
        .get_manifest(&tag("nope"))
        .await
        .unwrap_err()
        .is_not_found());
    let missing = Target::Digest(absent.digest.clone());
    assert!(store
        .get_manifest(&missing)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_written_blob_by_blob_is_accepted_by_umoci_and_skopeo() {
    let (src_dir, dst_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = ImageSpec::oci().layers(3, 300_000).shared_base(100_000);
    let img = fixtures::write_layout(src_dir.path(), "v1", &spec);
    let src = LayoutStore::open(src_dir.path()).unwrap();
    let new = dst_dir.path().join("new");
    let dst = LayoutStore::create(&new).unwrap();
    let digest = copy(&src, &dst, &tag("v1"), &["v1".into(), "latest".into()]).await;
    assert_eq!(digest, img.digest);
    assert_eq!(dst.list_tags().await.unwrap(), ["v1", "latest"]);

    let oci_new = format!("oci:{}:v1", new.display());
    assert_eq!(fixtures::inspect_digest(&oci_new), img.digest);
    let other = dst_dir.path().join("other");
    let oci_other = format!("oci:{}:v1", other.display());
    fixtures::skopeo(&["copy", "--preserve-digests", &oci_new, &oci_other]);
    assert_eq!(fixtures::inspect_digest(&oci_other), img.digest);
    let bundle = dst_dir.path().join("bundle");
    fixtures::umoci_unpack(&new, "latest", &bundle);
    let f = bundle.join("rootfs/layer2/file2.bin");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 100_000);
    // The copy holds exactly the image's blobs and manifest: no temp files.
    let mut files: Vec<String> = std::fs::read_dir(new.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut want: Vec<String> = img
        .all_digests()
        .iter()
        .map(|d| d.hex().to_string())
        .collect();
    want.sort();
    assert_eq!(files, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_indexes_keep_their_digest_layout_to_layout() {
    let reg = crate::support::registry::Registry::start();
    let work = tempfile::tempdir().unwrap();
    let src_dir = work.path().join("src");
    let oci = fixtures::write_layout(
        &src_dir,
        "multi",
        &ImageSpec::oci_index().shared_base(10_000),
    );
    let list = fixtures::write_layout(&src_dir, "list", &ImageSpec::docker_list().seed(5));
    let src = LayoutStore::open(&src_dir).unwrap();
    let new = work.path().join("new");
    let dst = LayoutStore::create(&new).unwrap();
    assert_eq!(
        copy(&src, &dst, &tag("multi"), &["multi".into()]).await,
        oci.digest
    );
    assert_eq!(
        copy(&src, &dst, &tag("list"), &["list".into()]).await,
        list.digest
    );
    // Children pushed untagged are dropped from index.json once their index arrives.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(new.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    let list_m = dst.get_manifest(&tag("list")).await.unwrap();
    assert_eq!(list_m.media_type, manifest::DOCKER_MANIFEST_LIST);

    let oci_new = format!("oci:{}:multi", new.display());
    assert_eq!(fixtures::inspect_digest(&oci_new), oci.digest);
    let other = format!("oci:{}:multi", work.path().join("other").display());
    fixtures::skopeo(&["copy", "--all", "--preserve-digests", &oci_new, &other]);
    assert_eq!(fixtures::inspect_digest(&other), oci.digest);
    // skopeo cannot read Docker types from a layout; the registry is the referee for the list.
    fixtures::seed_registry(&new, "list", &reg.addr, "copied/list:v1");
    let pushed = format!("docker://{}", reg.image("copied/list:v1"));
    assert_eq!(fixtures::inspect_digest(&pushed), list.digest);
    for child in &list.children {
        let r = format!("docker://{}/copied/list@{}", reg.addr, child.digest);
        assert_eq!(fixtures::inspect_digest(&r), child.digest);
    }
}

/// A blob source that serves fixed bytes, optionally failing after them.
struct Fixed {
    bytes: Bytes,
    fail_after: bool,
}

#[async_trait::async_trait]
impl BlobSource for Fixed {
    async fn open(&self, _offset: u64) -> ferry::Result<BlobStream> {
        let mut items = vec![Ok(self.bytes.clone())];
        if self.fail_after {
            items.push(Err(Error::HttpClient {
                reason: "source broke".into(),
            }));
        }
        Ok(futures::stream::iter(items).boxed())
    }
}

fn blob_dir_listing(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = LayoutStore::create(dir.path()).unwrap();
    let good = Bytes::from(vec![7u8; 3 * 1024 * 1024]);
    let desc = Descriptor {
        media_type: fixtures::OCI_LAYER_GZIP.into(),
        digest: Digest::of(&good),
        size: good.len() as u64,
        platform: None,
    };
    let mut bad = good.to_vec();
    bad[12345] ^= 1;
    let cases = [
        (Bytes::from(bad), false),
        (good.slice(..1000), false),
        ([good.clone(), good.slice(..1)].concat().into(), false),
        (good.clone(), true),
    ];
    for (bytes, fail_after) in cases {
        let sent = bytes.len();
        let err = store
            .put_blob(&desc, &Fixed { bytes, fail_after })
            .await
            .unwrap_err();
        if !fail_after {
            let Error::DigestMismatch {
                expected, actual, ..
            } = &err
            else {
                panic!("{err}")
            };
            assert_eq!(expected, &desc.digest);
            let msg = err.to_string();
            assert!(msg.contains(&expected.to_string()) && msg.contains(&actual.to_string()));
        }
        assert!(
            blob_dir_listing(dir.path()).is_empty(),
            "after {sent} bytes: {err}"
        );
        assert!(!store.has_blob(&desc).await.unwrap());
    }
    let n = store
        .put_blob(
            &desc,
            &Fixed {
                bytes: good.clone(),
                fail_after: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(n, good.len() as u64);
    assert_eq!(blob_dir_listing(dir.path()), [desc.digest.hex()]);
    assert!(store.has_blob(&desc).await.unwrap());
}

#[tokio::test]
async fn broken_layouts_are_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let missing = root.join("missing");
    let e = LayoutStore::open(&missing).err().unwrap();
    assert!(e.is_not_found(), "{e}");
    let e = e.to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let file = root.join("a-file");
    std::fs::write(&file, "").unwrap();
    let e = LayoutStore::open(&file).err().unwrap().to_string();
    assert!(e.contains("not an OCI image layout"), "{e}");

    fixtures::write_layout(root, "v1", &ImageSpec::oci());
    std::fs::remove_file(root.join("oci-layout")).unwrap();
    let e = LayoutStore::open(root).err().unwrap().to_string();
    assert!(
        e.contains(&root.join("oci-layout").display().to_string()),
        "{e}"
    );

    std::fs::write(root.join("oci-layout"), "{").unwrap();
    let e = LayoutStore::open(root).err().unwrap().to_string();
    assert!(
        e.contains("oci-layout") && e.contains("malformed JSON"),
        "{e}"
    );

    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let store = LayoutStore::open(root).unwrap();
    // A manifest blob whose bytes do not match its name; one too large to be a manifest.
    let top = store.resolve(&tag("v1")).await.unwrap().unwrap();
    let path = root.join("blobs/sha256").join(top.digest.hex());
    let mut body = std::fs::read(&path).unwrap();
    body.push(b' ');
    std::fs::write(&path, &body).unwrap();
    let e = store.get_manifest(&tag("v1")).await.unwrap_err();
    assert!(
        matches!(e, Error::DigestMismatch { ref expected, .. } if expected == &top.digest),
        "{e}"
    );
    let huge = vec![b' '; manifest::MAX_MANIFEST_BYTES + 1];
    let huge_digest = Digest::of(&huge);
    std::fs::write(root.join("blobs/sha256").join(huge_digest.hex()), &huge).unwrap();
    let huge_target = Target::Digest(huge_digest);
    assert_eq!(store.resolve(&huge_target).await.unwrap(), None);
    let e = store.get_manifest(&huge_target).await.unwrap_err();
    assert!(matches!(e, Error::ManifestTooLarge { .. }), "{e}");

    std::fs::write(root.join("index.json"), r#"{"manifests": [{"digest": 3}]"#).unwrap();
    for e in [
        LayoutStore::open(root).err().unwrap(),
        LayoutStore::create(root).err().unwrap(),
        store.resolve(&tag("v1")).await.unwrap_err(),
    ] {
        let Error::Layout { path, message, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(path, &root.join("index.json"));
        assert!(message.contains("malformed JSON"), "{e}");
    }
    std::fs::write(
        root.join("index.json"),
        r#"{"manifests": [{"digest": "x", "size": 1}]}"#,
    )
    .unwrap();
    let e = store.list_tags().await.unwrap_err().to_string();
    assert!(
        e.contains("index.json") && e.contains("manifests[0]"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tagging_loses_no_update_and_untagged_entries_are_not_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let img = fixtures::write_layout(&dir.path().join("src"), "a", &ImageSpec::artifact());
    let src = LayoutStore::open(&dir.path().join("src")).unwrap();
    let store = std::sync::Arc::new(LayoutStore::create(&dir.path().join("dst")).unwrap());
    let m = src.get_manifest(&tag("a")).await.unwrap();
    copy_image(&src, store.as_ref(), &m, &[]).await;
    copy_image(&src, store.as_ref(), &m, &[]).await;
    let by_digest = Target::Digest(img.digest.clone());
    assert_eq!(
        store.resolve(&by_digest).await.unwrap(),
        Some(img.descriptor())
    );
    assert!(store.list_tags().await.unwrap().is_empty());

    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (store, m) = (store.clone(), m.clone());
            tokio::spawn(async move { store.put_manifest(&m, &[format!("t{i}")]).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut tags = store.list_tags().await.unwrap();
    tags.sort();
    let mut want: Vec<String> = (0..24).map(|i| format!("t{i}")).collect();
    want.sort();
    assert_eq!(tags, want);
    let got = store.get_manifest(&tag("t7")).await.unwrap();
    assert_eq!(
        (got.digest, got.bytes),
        (img.digest.clone(), m.bytes.clone())
    );
    // 24 tagged entries, and the untagged one was absorbed by the first tag.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("dst/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 24);
}
