//! `docker-archive:` both ways with skopeo as referee (skopeo writes, ferry reads; ferry writes,
//! skopeo reads), registry → docker-archive → registry pulled back by skopeo, a Docker-25-style
//! archive (OCI layout beside manifest.json) keeping its digest, umoci unpacking a layout
//! extracted from ferry's oci-archive, and archives through pipes and zstd.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;
use ferry::Digest;
use serde_json::{json, Value};

fn ferry_in(tmpdir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("TMPDIR", tmpdir)
        .output()
        .unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The config digest of the image `skopeo inspect --raw` shows.
fn config_of(reference: &str) -> String {
    let raw: Value = serde_json::from_slice(&fixtures::inspect_raw(reference)).unwrap();
    raw["config"]["digest"].as_str().unwrap().to_string()
}

/// The entry names of a tar file.
fn entries(file: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
        .collect()
}

#[test]
fn skopeo_docker_archives_are_read_and_ferry_docker_archives_are_read_by_skopeo() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let src = work.path().join("src");
    let built = fixtures::write_layout(&src, "v1", &ImageSpec::oci().layers(3, 64 * 1024));
    fixtures::seed_registry(&src, "v1", &reg.addr, "app:v1");
    let original_config = config_of(&format!("docker://{}/app:v1", reg.addr));
    // skopeo writes a docker-archive with two RepoTags (legacy symlinked layer dirs included).
    let saved = work.path().join("skopeo.tar");
    fixtures::skopeo(&[
        "copy",
        "--additional-tag",
        "app:v2",
        &format!("oci:{}:v1", src.display()),
        &format!("docker-archive:{}:app:v1", saved.display()),
    ]);
    assert!(
        entries(&saved).iter().any(|e| e.ends_with("/layer.tar")),
        "skopeo wrote legacy layer links"
    );
    let listed = text(&ok(ferry_in(&tmp, &["ls", &saved.display().to_string()])).stdout);
    assert!(
        listed.contains("app:v1") && listed.contains("app:v2"),
        "{listed}"
    );
    // Into a registry: layers are gzip'd, so the digests are new, and ferry says so.
    let back = format!("{}/back:v2", reg.addr);
    let out = ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("docker-archive:{}:app:v2", saved.display()),
            &back,
        ],
    ));
    assert!(
        text(&out.stderr).contains("digests are new"),
        "{}",
        text(&out.stderr)
    );
    let raw: Value =
        serde_json::from_slice(&fixtures::inspect_raw(&format!("docker://{back}"))).unwrap();
    assert_eq!(
        raw["config"]["digest"],
        json!(original_config),
        "the config is kept"
    );
    assert_eq!(raw["layers"].as_array().unwrap().len(), 3);
    for l in raw["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"],
            json!("application/vnd.oci.image.layer.v1.tar+gzip")
        );
    }
    // skopeo pulls it back (verifying every blob) into a layout umoci unpacks.
    let pulled = work.path().join("pulled");
    fixtures::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{back}"),
        &format!("oci:{}:v2", pulled.display()),
    ]);
    fixtures::umoci_unpack(&pulled, "v2", &work.path().join("bundle"));
    // --dest-compress zstd: zstd layers.
    let z = format!("{}/back:zstd", reg.addr);
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            "--dest-compress",
            "zstd",
            &format!("docker-archive:{}:app:v1", saved.display()),
            &z,
        ],
    ));
    let raw: Value =
        serde_json::from_slice(&fixtures::inspect_raw(&format!("docker://{z}"))).unwrap();
    assert_eq!(
        raw["layers"][0]["mediaType"],
        json!("application/vnd.oci.image.layer.v1.tar+zstd")
    );

    // ferry writes a docker-archive from the registry; skopeo reads it.
    let mine = work.path().join("ferry.tar");
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("{}/app:v1", reg.addr),
            &format!("docker-archive:{}:app:v1", mine.display()),
        ],
    ));
    let names = entries(&mine);
    assert_eq!(
        names.last().map(String::as_str),
        Some("manifest.json"),
        "{names:?}"
    );
    let manifest: Value = {
        let mut a = tar::Archive::new(std::fs::File::open(&mine).unwrap());
        let mut e = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_string_lossy() == "manifest.json")
            .unwrap();
        serde_json::from_reader(&mut e).unwrap()
    };
    assert_eq!(manifest[0]["RepoTags"], json!(["app:v1"]));
    let out_dir = work.path().join("from-ferry");
    fixtures::skopeo(&[
        "copy",
        &format!("docker-archive:{}", mine.display()),
        &format!("oci:{}:v1", out_dir.display()),
    ]);
    let m: Value = serde_json::from_slice(
        &std::fs::read(
            out_dir
                .join("blobs/sha256")
                .join(fixtures::tagged(&out_dir, "v1").digest.hex()),
        )
        .unwrap(),
    )
    .unwrap();
    // skopeo rewrites the config on its way to OCI; the layers (diffIDs) must be the same.
    let diff_ids = |dir: &Path, digest: &str| -> Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let c: Value =
            serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap())
                .unwrap();
        c["rootfs"]["diff_ids"].clone()
    };
    let theirs = diff_ids(&out_dir, m["config"]["digest"].as_str().unwrap());
    assert_eq!(
        theirs,
        diff_ids(&src, &original_config),
        "skopeo reads the same layers"
    );
    assert_eq!(theirs.as_array().unwrap().len(), 3);
    // And back again through ferry: registry -> docker-archive -> registry, pulled by skopeo.
    let again = format!("{}/again:v1", reg.addr);
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("docker-archive:{}", mine.display()),
            &again,
        ],
    ));
    fixtures::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{again}"),
        &format!("oci:{}:again", work.path().join("again").display()),
    ]);
    assert_eq!(config_of(&format!("docker://{again}")), original_config);
    let _ = built;
}

/// A Docker 25+ `docker save`: an OCI layout (uncompressed layers) with manifest.json beside it.
fn docker25(file: &Path) -> Digest {
    let layer = crate::archive_hostile::small_layer(b"docker 25");
    let diff = Digest::of(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff.to_string()]}, "config": {}
    }))
    .unwrap();
    let cfg = Digest::of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff.to_string(), "size": layer.len()}]
    }))
    .unwrap();
    let md = Digest::of(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": "docker.io/library/app:25", "org.opencontainers.image.ref.name": "25"}}]
    }))
    .unwrap();
    let saved = serde_json::to_vec(&json!([{
        "Config": format!("blobs/sha256/{}", cfg.hex()),
        "RepoTags": ["app:25"],
        "Layers": [format!("blobs/sha256/{}", diff.hex())]
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&format!("blobs/sha256/{}", cfg.hex()), &config);
    add(&format!("blobs/sha256/{}", diff.hex()), &layer);
    add(&format!("blobs/sha256/{}", md.hex()), &manifest);
    add("index.json", &index);
    add("manifest.json", &saved);
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    std::fs::write(file, b.into_inner().unwrap()).unwrap();
    md
}

#[test]
fn docker_25_archives_keep_their_oci_digest_and_pipes_and_zstd_work() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let file = work.path().join("d25.tar");
    let digest = docker25(&file);
    let out = work.path().join("out");
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("docker-archive:{}:app:25", file.display()),
            &format!("oci:{}:v", out.display()),
        ],
    ));
    assert_eq!(
        fixtures::tagged(&out, "v").digest,
        digest,
        "the archive's own manifest is served"
    );
    let listed = text(&ok(ferry_in(&tmp, &["ls", &file.display().to_string()])).stdout);
    assert!(
        listed.contains("app:25") && listed.contains(&digest.to_string()),
        "{listed}"
    );
    // Into a registry: compressed, a new digest, which skopeo reads.
    let dst = format!("{}/d25:v", reg.addr);
    let o = ok(ferry_in(
        &tmp,
        &["copy", &format!("docker-archive:{}", file.display()), &dst],
    ));
    assert!(text(&o.stderr).contains("digests are new"));
    assert_ne!(fixtures::inspect_digest(&format!("docker://{dst}")), digest);
    // --dest-compress none keeps the digest.
    let kept = format!("{}/d25:kept", reg.addr);
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            "--dest-compress",
            "none",
            &format!("docker-archive:{}", file.display()),
            &kept,
        ],
    ));
    assert_eq!(
        fixtures::inspect_digest(&format!("docker://{kept}")),
        digest
    );

    // Pipes: registry -> oci-archive on stdout -> oci-archive on stdin -> layout, digests kept.
    let src = work.path().join("src");
    let built = fixtures::write_layout(&src, "v1", &ImageSpec::oci_index());
    fixtures::seed_registry(&src, "v1", &reg.addr, "multi:v1");
    let mut writer = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "copy",
            &format!("{}/multi:v1", reg.addr),
            "oci-archive:-:v1",
        ])
        .env("TMPDIR", &tmp)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let piped = work.path().join("piped");
    let reader = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "copy",
            "oci-archive:-:v1",
            &format!("oci:{}:v1", piped.display()),
        ])
        .env("TMPDIR", &tmp)
        .stdin(writer.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(
        writer.wait().unwrap().success(),
        "the writing side succeeds"
    );
    assert!(reader.status.success(), "{}", text(&reader.stderr));
    assert_eq!(fixtures::tagged(&piped, "v1").digest, built.digest);
    // umoci unpacks a layout extracted from ferry's oci-archive.
    let one = fixtures::write_layout(&src, "one", &ImageSpec::oci().seed(3));
    let tar_file = work.path().join("one.tar");
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("oci:{}:one", src.display()),
            &format!("oci-archive:{}:v1", tar_file.display()),
        ],
    ));
    let extracted = work.path().join("extracted");
    std::fs::create_dir(&extracted).unwrap();
    tar::Archive::new(std::fs::File::open(&tar_file).unwrap())
        .unpack(&extracted)
        .unwrap();
    fixtures::umoci_unpack(&extracted, "v1", &work.path().join("bundle"));
    // A zstd-wrapped archive reads (spooled), digests kept.
    let zst = work.path().join("one.tar.zst");
    let raw = std::fs::read(&tar_file).unwrap();
    std::fs::write(&zst, zstd::encode_all(raw.as_slice(), 3).unwrap()).unwrap();
    let zout = work.path().join("zout");
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("oci-archive:{}:v1", zst.display()),
            &format!("oci:{}:v1", zout.display()),
        ],
    ));
    assert_eq!(fixtures::tagged(&zout, "v1").digest, one.digest);
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "spools are removed"
    );
}

/// A containerd-store `docker save`: the registry's index and compressed blobs as pulled, for
/// one platform only, with manifest.json naming the compressed layers.
#[test]
fn containerd_store_archives_keep_their_digests() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let src = work.path().join("src");
    let built = fixtures::write_layout(&src, "v1", &ImageSpec::oci_index());
    let amd64 = &built.children[0];
    let blobs = src.join("blobs/sha256");
    let read = |d: &Digest| std::fs::read(blobs.join(d.hex())).unwrap();
    let child: Value = serde_json::from_slice(&read(&amd64.digest)).unwrap();
    let config: Digest = serde_json::from_value(child["config"]["digest"].clone()).unwrap();
    let layers: Vec<Digest> = child["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_value(l["digest"].clone()).unwrap())
        .collect();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    };
    // The index names three platforms; only amd64's manifest and blobs are carried.
    for d in std::iter::once(&built.digest)
        .chain([&amd64.digest, &config])
        .chain(&layers)
    {
        add(&format!("blobs/sha256/{}", d.hex()), &read(d));
    }
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": built.media_type, "digest": built.digest.to_string(), "size": built.size,
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]});
    add("index.json", &serde_json::to_vec(&index).unwrap());
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let saved = json!([{
        "Config": format!("blobs/sha256/{}", config.hex()),
        "RepoTags": ["app:1"],
        "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.hex())).collect::<Vec<_>>()
    }]);
    add("manifest.json", &serde_json::to_vec(&saved).unwrap());
    let file = work.path().join("containerd.tar");
    std::fs::write(&file, b.into_inner().unwrap()).unwrap();
    // Into a registry: the layers are compressed already, so nothing changes: the platform's
    // manifest keeps its digest and ferry says nothing about new digests.
    let dst = format!("{}/cd:1", reg.addr);
    let out = ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("docker-archive:{}:app:1", file.display()),
            &dst,
        ],
    ));
    assert!(
        !text(&out.stderr).contains("digests are new"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        fixtures::inspect_digest(&format!("docker://{dst}")),
        amd64.digest
    );
}
