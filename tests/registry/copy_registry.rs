//! The copy engine against the real docker-registry, refereed by skopeo and umoci.

use std::sync::Arc;

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;
use ferry::copy::{Copier, CopyOptions, CopyReport, Selection};
use ferry::manifest::{Children, RawManifest};
use ferry::progress::Silent;
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore};
use ferry::store::{Store, Target};

fn store(reg: &Registry, repo: &str) -> RegistryStore {
    let client = RegistryClient::new(&reg.addr, RegistryOptions::default()).unwrap();
    RegistryStore::new(client, repo)
}

fn tag(t: &str) -> Target {
    Target::Tag(t.to_string())
}

async fn copy(
    src: &dyn Store,
    t: &str,
    dst: &dyn Store,
    tags: &[&str],
    opts: &CopyOptions,
) -> CopyReport {
    let tags: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
    Copier::new(Arc::new(Silent))
        .copy(src, &tag(t), dst, &tags, opts)
        .await
        .unwrap()
}

/// Seeds `spec` into `reg` as `repo:v1` with skopeo and returns the built image.
fn seed(reg: &Registry, repo: &str, spec: &ImageSpec) -> fixtures::BuiltImage {
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "v1", spec);
    fixtures::seed_registry(dir.path(), "v1", &reg.addr, &format!("{repo}:v1"));
    built
}

fn docker(reg: &Registry, repo_tag: &str) -> String {
    format!("docker://{}/{repo_tag}", reg.addr)
}

/// skopeo pulls what ferry pushed into an OCI layout (verifying every blob) and sees the same digest.
fn referee_pull(reg: &Registry, repo_tag: &str, want: &ferry::Digest) {
    assert_eq!(
        &fixtures::inspect_digest(&docker(reg, repo_tag)),
        want,
        "{repo_tag}"
    );
    let out = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:pulled", out.path().display());
    fixtures::skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &docker(reg, repo_tag),
        &dest,
    ]);
}

#[tokio::test]
async fn every_manifest_media_type_keeps_its_digest() {
    let src_reg = Registry::start();
    let dst_reg = Registry::start();
    let kinds = [
        ("oci", ImageSpec::oci()),
        ("docker", ImageSpec::docker()),
        ("ociindex", ImageSpec::oci_index()),
        ("dockerlist", ImageSpec::docker_list()),
        ("artifact", ImageSpec::artifact()),
    ];
    for (name, spec) in kinds {
        let built = seed(&src_reg, name, &spec);
        let (src, dst) = (
            store(&src_reg, name),
            store(&dst_reg, &format!("mirror/{name}")),
        );
        let r = copy(&src, "v1", &dst, &["1.0"], &CopyOptions::default()).await;
        assert_eq!(r.source_digest, built.digest, "{name}");
        assert_eq!(r.destination_digest, built.digest, "{name}");
        assert_eq!(r.media_type, built.media_type, "{name}");
        assert_eq!(r.blobs.copied, built.blobs.len(), "{name}");
        assert_eq!(r.manifests_pushed, 1 + built.children.len(), "{name}");
        if name == "artifact" {
            // skopeo cannot pull non-image artifacts into an image layout; compare raw bytes.
            let raw = fixtures::inspect_raw(&docker(&dst_reg, "mirror/artifact:1.0"));
            assert_eq!(ferry::Digest::of(&raw), built.digest);
        } else {
            referee_pull(&dst_reg, &format!("mirror/{name}:1.0"), &built.digest);
        }
    }
}

#[tokio::test]
async fn second_copy_moves_nothing_and_new_tag_skips_blobs() {
    let reg = Registry::start();
    let built = seed(&reg, "app", &ImageSpec::oci_index());
    let dst_reg = Registry::start();
    let (src, dst) = (store(&reg, "app"), store(&dst_reg, "app"));
    let first = copy(&src, "v1", &dst, &["v1"], &CopyOptions::default()).await;
    assert!(first.blobs.bytes_copied > 0);
    let again = copy(&src, "v1", &dst, &["v1"], &CopyOptions::default()).await;
    assert!(again.unchanged);
    assert_eq!(
        (
            again.blobs.copied,
            again.blobs.bytes_copied,
            again.manifests_pushed
        ),
        (0, 0, 0)
    );
    // Another tag of the same image: every blob and manifest is already there.
    let other = copy(&src, "v1", &dst, &["v2"], &CopyOptions::default()).await;
    assert!(!other.unchanged);
    assert_eq!(other.blobs.copied, 0);
    assert_eq!(other.blobs.skipped, built.blobs.len());
    assert_eq!(other.manifests_pushed, 0);
    assert_eq!(
        fixtures::inspect_digest(&docker(&dst_reg, "app:v2")),
        built.digest
    );
}

#[tokio::test]
async fn same_registry_other_repository_mounts_every_blob() {
    let reg = Registry::start();
    let built = seed(
        &reg,
        "team/api",
        &ImageSpec::oci_index().layers(3, 256 * 1024),
    );
    let client = RegistryClient::new(&reg.addr, RegistryOptions::default()).unwrap();
    let src = RegistryStore::new(client.clone(), "team/api");
    let dst = RegistryStore::new(client.clone(), "prod/api");
    let r = copy(&src, "v1", &dst, &["1.4.2"], &CopyOptions::default()).await;
    assert_eq!(r.blobs.mounted, built.blobs.len());
    assert_eq!((r.blobs.copied, r.blobs.bytes_copied), (0, 0));
    let stats = client.stats();
    assert_eq!(stats.blob_bytes_uploaded, 0, "{stats:?}");
    assert_eq!(stats.blob_gets, 0, "{stats:?}");
    // The registry saw no blob upload bodies (PATCH or PUT to an upload location).
    let log = reg.log();
    assert!(!log.contains("\"PATCH /v2/prod/api/blobs/uploads"), "{log}");
    assert!(!log.contains("\"PUT /v2/prod/api/blobs/uploads"), "{log}");
    referee_pull(&reg, "prod/api:1.4.2", &built.digest);
}

#[tokio::test]
async fn platform_subsets() {
    let reg = Registry::start();
    let built = seed(&reg, "multi", &ImageSpec::oci_index());
    let src = store(&reg, "multi");
    // Two platforms: a new index with only those two, and only their blobs.
    let two = CopyOptions {
        platforms: vec![
            "linux/amd64".parse().unwrap(),
            "linux/arm64".parse().unwrap(),
        ],
        ..Default::default()
    };
    let dst = store(&reg, "two");
    let r = copy(&src, "v1", &dst, &["v1"], &two).await;
    assert_eq!(r.selection, Selection::SubsetIndex);
    assert_eq!(r.source_digest, built.digest);
    assert_ne!(r.destination_digest, built.digest);
    let index = dst.get_manifest(&tag("v1")).await.unwrap();
    assert_eq!(index.digest, r.destination_digest);
    let Children::Index { manifests } = index.children().unwrap() else {
        panic!("not an index")
    };
    let archs: Vec<String> = manifests
        .iter()
        .map(|d| d.platform.clone().unwrap().to_string())
        .collect();
    assert_eq!(archs, ["linux/amd64", "linux/arm64/v8"]);
    referee_pull(&reg, "two:v1", &r.destination_digest);
    // The arm/v7 child was not copied.
    let arm = built
        .children
        .iter()
        .find(|c| c.platform.as_ref().unwrap().architecture == "arm")
        .unwrap();
    assert!(dst
        .resolve(&Target::Digest(arm.digest.clone()))
        .await
        .unwrap()
        .is_none());
    // One platform: that platform's own manifest, digest kept.
    let one = CopyOptions {
        platforms: vec!["linux/arm/v7".parse().unwrap()],
        ..Default::default()
    };
    let dst = store(&reg, "one");
    let r = copy(&src, "v1", &dst, &["v1"], &one).await;
    assert_eq!(r.selection, Selection::SingleManifest);
    assert_eq!(r.destination_digest, arm.digest);
    referee_pull(&reg, "one:v1", &arm.digest);
    // A platform the index does not have is an error naming what is available; nothing written.
    let none = CopyOptions {
        platforms: vec!["linux/s390x".parse().unwrap()],
        ..Default::default()
    };
    let dst = store(&reg, "none");
    let err = Copier::new(Arc::new(Silent))
        .copy(&src, &tag("v1"), &dst, &["v1".to_string()], &none)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64/v8"),
        "{err}"
    );
    assert!(dst.list_tags().await.unwrap().is_empty());
}

#[tokio::test]
async fn registry_to_layout_and_back() {
    let reg = Registry::start();
    let built = seed(&reg, "src", &ImageSpec::oci_index());
    let single = seed(&reg, "single", &ImageSpec::oci().layers(3, 64 * 1024));
    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutStore::create(dir.path()).unwrap();
    let r = copy(
        &store(&reg, "src"),
        "v1",
        &layout,
        &["exported"],
        &CopyOptions::default(),
    )
    .await;
    assert_eq!(r.destination_digest, built.digest);
    copy(
        &store(&reg, "single"),
        "v1",
        &layout,
        &["single"],
        &CopyOptions::default(),
    )
    .await;
    // skopeo reads what ferry wrote, with the same digest; umoci unpacks it.
    let path = dir.path().display();
    assert_eq!(
        fixtures::inspect_digest(&format!("oci:{path}:exported")),
        built.digest
    );
    let out = tempfile::tempdir().unwrap();
    fixtures::skopeo(&[
        "copy",
        "--all",
        &format!("oci:{path}:exported"),
        &format!("oci:{}:x", out.path().display()),
    ]);
    let bundle = tempfile::tempdir().unwrap();
    fixtures::umoci_unpack(dir.path(), "single", &bundle.path().join("b"));
    // Back into another repository from ferry's layout, and from a layout skopeo wrote.
    let reopened = LayoutStore::open(dir.path()).unwrap();
    let back = copy(
        &reopened,
        "exported",
        &store(&reg, "back"),
        &["v1"],
        &CopyOptions::default(),
    )
    .await;
    assert_eq!(back.destination_digest, built.digest);
    referee_pull(&reg, "back:v1", &built.digest);
    let by_skopeo = LayoutStore::open(out.path()).unwrap();
    let again = copy(
        &by_skopeo,
        "x",
        &store(&reg, "from-skopeo"),
        &["v1"],
        &CopyOptions::default(),
    )
    .await;
    assert_eq!(again.destination_digest, built.digest);
    assert_eq!(
        fixtures::inspect_digest(&docker(&reg, "from-skopeo:v1")),
        built.digest
    );
    let _ = single;
}

/// A source serving other bytes than a layer's digest, into the real registry: with the
/// default `--verify auto` the registry refuses the upload at commit (`DIGEST_INVALID`), with
/// `always` ferry stops it first; either way no manifest or tag is written.
#[tokio::test]
async fn a_wrong_digest_at_the_source_leaves_nothing_tagged() {
    use crate::support::fault_server::{FaultConfig, FaultServer};
    use ferry::store::registry::Verify;
    let fake = FaultServer::start(FaultConfig::new());
    let good = fake.put_blob(vec![7u8; 4096]);
    let bad = fake.put_corrupt_blob(&vec![9u8; 300_000]);
    let config = fake.put_blob(b"{}".to_vec());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": ferry::manifest::OCI_MANIFEST,
        "config": {"mediaType": fixtures::OCI_CONFIG, "digest": config, "size": 2},
        "layers": [
            {"mediaType": fixtures::OCI_LAYER_GZIP, "digest": good, "size": 4096},
            {"mediaType": fixtures::OCI_LAYER_GZIP, "digest": bad, "size": 300_000}
        ]
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    fake.put_manifest("evil", "v1", &bytes, ferry::manifest::OCI_MANIFEST);
    let reg = Registry::start();
    let src = RegistryStore::new(
        RegistryClient::new(&fake.host(), RegistryOptions::default()).unwrap(),
        "evil",
    );
    for verify in [Verify::Auto, Verify::Always] {
        let opts = RegistryOptions {
            verify,
            ..RegistryOptions::default()
        };
        let dst = RegistryStore::new(
            RegistryClient::new(&reg.addr, opts).unwrap(),
            &format!("victim-{verify}"),
        );
        let err = Copier::new(Arc::new(Silent))
            .copy(
                &src,
                &tag("v1"),
                &dst,
                &["v1".to_string()],
                &CopyOptions::default(),
            )
            .await
            .unwrap_err();
        match verify {
            Verify::Auto => assert!(err.has_code(ferry::error::DIGEST_INVALID), "{err:?}"),
            Verify::Always => {
                assert!(matches!(err, ferry::Error::DigestMismatch { .. }), "{err}")
            }
        }
        let text = err.to_string();
        assert!(text.contains(&bad.to_string()), "{verify}: {text}");
        assert!(dst.list_tags().await.unwrap().is_empty(), "{verify}");
        let m = RawManifest::new(bytes.clone().into(), None).unwrap();
        assert!(
            dst.resolve(&Target::Digest(m.digest))
                .await
                .unwrap()
                .is_none(),
            "{verify}"
        );
        assert!(!dst
            .has_blob(&ferry::manifest::Descriptor {
                media_type: String::new(),
                digest: bad.clone(),
                size: 300_000,
                platform: None
            })
            .await
            .unwrap());
    }
}
