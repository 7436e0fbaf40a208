//! The test-image builder makes images that independent tools (skopeo, umoci, a registry) accept
//! with their digests unchanged.

use std::io::Read;
use std::path::Path;

use crate::support::fixtures::{self, ImageSpec, Kind};
use crate::support::registry::Registry;
use ferry::Digest;

fn blob(dir: &Path, d: &Digest) -> Vec<u8> {
    std::fs::read(dir.join("blobs/sha256").join(d.hex())).unwrap()
}

#[test]
fn skopeo_seeds_every_kind_with_digests_kept() {
    let reg = Registry::start();
    let kinds = [
        (ImageSpec::oci(), "oci"),
        (ImageSpec::docker(), "docker"),
        (ImageSpec::oci_index(), "ociindex"),
        (ImageSpec::docker_list(), "dockerlist"),
        (ImageSpec::artifact(), "artifact"),
    ];
    for (spec, name) in kinds {
        let dir = tempfile::tempdir().unwrap();
        let built = fixtures::write_layout(dir.path(), "v1", &spec);
        let repo_tag = format!("fixtures/{name}:v1");
        fixtures::seed_registry(dir.path(), "v1", &reg.addr, &repo_tag);
        let raw = fixtures::inspect_raw(&format!("docker://{}", reg.image(&repo_tag)));
        assert_eq!(Digest::of(&raw), built.digest, "{name}: top digest changed");
        assert_eq!(raw, blob(dir.path(), &built.digest), "{name}");
        for child in &built.children {
            let r = format!("docker://{}/fixtures/{name}@{}", reg.addr, child.digest);
            assert_eq!(fixtures::inspect_digest(&r), child.digest, "{name} child");
        }
        if !built.media_type.contains(".docker.") {
            let local = fixtures::inspect_digest(&format!("oci:{}:v1", dir.path().display()));
            assert_eq!(local, built.digest, "{name}: skopeo reads the layout");
        }
    }
}

#[test]
fn umoci_unpacks_the_oci_image() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ImageSpec::oci().layers(3, 30_000).shared_base(9_000);
    fixtures::write_layout(dir.path(), "latest", &spec);
    let bundle = tempfile::tempdir().unwrap();
    let target = bundle.path().join("bundle");
    fixtures::umoci_unpack(dir.path(), "latest", &target);
    let rootfs = target.join("rootfs");
    for (layer, size) in [("base", 9_000), ("layer0", 30_000), ("layer2", 30_000)] {
        let total: u64 = (0..3)
            .map(|j| {
                let p = rootfs.join(format!("{layer}/file{j}.bin"));
                std::fs::metadata(&p)
                    .unwrap_or_else(|e| panic!("{p:?}: {e}"))
                    .len()
            })
            .sum();
        assert_eq!(total, size, "{layer}");
    }
    assert!(target.join("config.json").is_file());
}

#[test]
fn configs_name_the_uncompressed_layers_and_sizes_are_predictable() {
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "t", &ImageSpec::docker().layers(2, 200_000));
    assert_eq!(built.media_type, ferry::manifest::DOCKER_MANIFEST);
    let config = &built.blobs[0];
    assert_eq!(config.media_type, fixtures::DOCKER_CONFIG);
    let cfg: serde_json::Value = serde_json::from_slice(&blob(dir.path(), &config.digest)).unwrap();
    assert_eq!(cfg["architecture"], "amd64");
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(diff_ids.len(), 2);
    for (layer, diff_id) in built.blobs[1..].iter().zip(diff_ids) {
        assert_eq!(layer.media_type, fixtures::DOCKER_LAYER_GZIP);
        let gz = blob(dir.path(), &layer.digest);
        assert_eq!(Digest::of(&gz), layer.digest);
        assert_eq!(gz.len() as u64, layer.size);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(diff_id.as_str().unwrap(), Digest::of(&tar).to_string());
        // Incompressible content: the gzip'd layer is about as large as its files (zlib-rs's
        // fastest level codes random bytes with static Huffman tables: up to ~6% more).
        assert!((200_000..214_000).contains(&layer.size), "{}", layer.size);
    }
}

#[test]
fn same_spec_same_digests_and_shared_base_is_shared() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spec = ImageSpec::oci_index().shared_base(5_000);
    let one = fixtures::write_layout(a.path(), "x", &spec);
    let two = fixtures::write_layout(b.path(), "x", &spec);
    assert_eq!(one.digest, two.digest);
    assert_eq!(one.children.len(), 3);
    assert_eq!(
        one.children[1].platform.as_ref().unwrap().to_string(),
        "linux/arm64/v8"
    );
    let other = fixtures::write_layout(
        a.path(),
        "y",
        &spec.clone().seed(7).platforms(&["linux/amd64"]),
    );
    assert_ne!(other.digest, one.digest);
    let base = |img: &fixtures::BuiltImage| img.blobs[1].digest.clone();
    assert_eq!(base(&one), base(&other), "the base layer is the same blob");
    // Both tags are in one layout; the index/list kind is what was asked for.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(other.media_type, ferry::manifest::OCI_INDEX);
    let kinds = [Kind::DockerList, Kind::Artifact];
    let list = fixtures::write_layout(a.path(), "l", &ImageSpec::new(kinds[0]));
    assert_eq!(list.media_type, ferry::manifest::DOCKER_MANIFEST_LIST);
    assert!(list
        .children
        .iter()
        .all(|c| c.media_type == ferry::manifest::DOCKER_MANIFEST));
    let art = fixtures::write_layout(a.path(), "a", &ImageSpec::new(kinds[1]));
    assert_eq!(art.blobs[0].media_type, fixtures::HELM_CONFIG);
    assert_eq!(art.blobs[1].media_type, fixtures::ARTIFACT_LAYER);
}
