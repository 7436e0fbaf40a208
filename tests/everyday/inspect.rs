//! `digest` and `inspect`: every media type against skopeo, platforms, absent images.

use super::*;

/// A signature-like OCI artifact (empty config, `artifactType`, `subject`) in a layout of its
/// own, written by hand, tagged `sig`.
fn signature_layout(dir: &Path, subject: &BuiltImage) -> Digest {
    let blob = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        let path = dir.join("blobs/sha256").join(d.hex());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        d
    };
    let payload = br#"{"critical":{"type":"cosign container image signature"}}"#;
    let body = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": blob(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": blob(payload), "size": payload.len()}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    let digest = blob(&bytes);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
        "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "sig"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}

#[test]
fn inspect_and_digest_match_skopeo_for_every_media_type() {
    let reg = Registry::start();
    let images = [
        ("oci", seed(&reg, "m/oci:1", &ImageSpec::oci()), "image"),
        (
            "docker",
            seed(&reg, "m/docker:1", &ImageSpec::docker()),
            "image",
        ),
        (
            "index",
            seed(&reg, "m/index:1", &ImageSpec::oci_index()),
            "index",
        ),
        (
            "list",
            seed(&reg, "m/list:1", &ImageSpec::docker_list()),
            "index",
        ),
        (
            "chart",
            seed(&reg, "m/chart:1", &ImageSpec::artifact()),
            "artifact",
        ),
    ];
    let sig_dir = tempfile::tempdir().unwrap();
    let sig = signature_layout(sig_dir.path(), &images[0].1);
    let sig_src = format!("oci:{}:sig", sig_dir.path().display());
    ok(&["copy", "-q", &sig_src, &reg.image("m/sig:1")]);
    let mut all: Vec<(String, Digest, &str)> = images
        .iter()
        .map(|(name, b, kind)| (reg.image(&format!("m/{name}:1")), b.digest.clone(), *kind))
        .collect();
    all.push((reg.image("m/sig:1"), sig.clone(), "artifact"));
    for (r, want, kind) in &all {
        let skopeo = fixtures::inspect_raw(&format!("docker://{r}"));
        assert_eq!(ok(&["inspect", "--raw", r]), skopeo, "{r}: --raw bytes");
        assert_eq!(Digest::of(&skopeo), *want, "{r}");
        assert_eq!(text(&["digest", r]), format!("{want}\n"), "{r}: digest");
        let j: Value = serde_json::from_slice(&ok(&["inspect", "--json", r])).unwrap();
        assert_eq!(j["digest"], want.to_string(), "{r}");
        assert_eq!(j["kind"], *kind, "{r}: {j}");
        assert_eq!(j["size"], skopeo.len(), "{r}");
        let plain = text(&["inspect", r]);
        assert!(plain.contains(&want.to_string()), "{plain}");
        assert!(plain.contains(&format!("kind:        {kind}")), "{plain}");
    }
    // What each kind shows.
    let j = |r: &str| -> Value { serde_json::from_slice(&ok(&["inspect", "--json", r])).unwrap() };
    let oci = j(&all[0].0);
    assert_eq!(oci["config"]["platform"], "linux/amd64", "{oci}");
    assert_eq!(
        oci["layers"].as_array().unwrap().len(),
        images[0].1.blobs.len() - 1
    );
    assert_eq!(oci["reference"], all[0].0);
    let index = j(&all[2].0);
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64", "arm"]);
    assert!(text(&["inspect", &all[3].0]).contains("linux/arm/v7"));
    let chart = j(&all[4].0);
    assert_eq!(chart["artifact_type"], fixtures::HELM_CONFIG, "{chart}");
    assert_eq!(chart["config"]["chart"], "ferry-test 0.1.0", "{chart}");
    let s = j(&all[5].0);
    assert_eq!(
        s["subject"]["digest"],
        images[0].1.digest.to_string(),
        "{s}"
    );
    assert_eq!(
        s["artifact_type"],
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );
    // Layouts: the same bytes as the blob on disk.
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "v1", &ImageSpec::docker_list());
    let layout = format!("oci:{}:v1", dir.path().display());
    let on_disk = std::fs::read(dir.path().join("blobs/sha256").join(built.digest.hex())).unwrap();
    assert_eq!(ok(&["inspect", "--raw", &layout]), on_disk);
    assert_eq!(text(&["digest", &layout]), format!("{}\n", built.digest));
}

#[test]
fn digest_and_inspect_pick_a_platform() {
    let reg = Registry::start();
    let index = seed(&reg, "p/app:1", &ImageSpec::oci_index());
    let list = seed(&reg, "p/legacy:1", &ImageSpec::docker_list());
    let single = seed(&reg, "p/one:1", &ImageSpec::oci());
    let (app, legacy, one) = (
        reg.image("p/app:1"),
        reg.image("p/legacy:1"),
        reg.image("p/one:1"),
    );
    let arm64 = text(&["digest", "--platform", "linux/arm64", &app]);
    assert_eq!(arm64.trim(), index.children[1].digest.to_string());
    let v7 = text(&["digest", "--platform", "linux/arm/v7", &legacy]);
    assert_eq!(v7.trim(), list.children[2].digest.to_string());
    // The child's bytes and config are what skopeo sees for that platform.
    let child = format!(
        "docker://{}@{}",
        reg.image("p/app"),
        index.children[1].digest
    );
    let raw = ok(&["inspect", "--raw", "--platform", "linux/arm64/v8", &app]);
    assert_eq!(raw, fixtures::inspect_raw(&child));
    let config = ok(&["inspect", "--config", "--platform", "linux/arm64", &app]);
    let args = ["inspect", "--config", "--raw", "--tls-verify=false"];
    assert_eq!(config, fixtures::skopeo(&[&args[..], &[&child]].concat()));
    // An index has no config of its own; a single image is its own platform.
    let (c, err) = code(&["inspect", "--config", &app]);
    assert_eq!(c, Some(2), "{err}");
    let own = text(&["digest", "--platform", "linux/amd64", &one]);
    assert_eq!(own.trim(), single.digest.to_string());
    let (c, err) = code(&["digest", "--platform", "linux/s390x", &one]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("linux/amd64"), "{err}");
    let (c, err) = code(&["digest", "--platform", "windows/amd64", &app]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("linux/arm64/v8"), "{err}");
    // Absent: exit 4, for tags, digests and repositories.
    assert_eq!(code(&["digest", &reg.image("p/app:nope")]).0, Some(4));
    assert_eq!(code(&["inspect", &reg.image("p/nothing:1")]).0, Some(4));
    let absent = format!("{}@{}", reg.image("p/app"), Digest::of(b"absent"));
    assert_eq!(code(&["digest", &absent]).0, Some(4));
}

#[test]
fn digest_is_one_head_request() {
    let srv = FaultServer::start(FaultConfig::new());
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let d = srv.put_manifest("r/app", "1", m, "application/vnd.oci.image.index.v1+json");
    let out = text(&["digest", &format!("{}/r/app:1", srv.host())]);
    assert_eq!(out, format!("{d}\n"));
    assert_eq!(srv.count(Kind::ManifestHead), 1);
    assert_eq!(srv.count(Kind::ManifestGet), 0);
}
