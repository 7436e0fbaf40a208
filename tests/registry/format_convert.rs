//! `copy --format oci|v2s2` (issue 13, defect 9): Docker schema 2 images and lists copied into
//! an OCI layout as OCI, readable by skopeo and umoci; the output says the digest changed; and
//! back to Docker schema 2 at a registry.

use std::process::{Command, Output};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;

fn ferry(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ferry {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn raw_json(reference: &str) -> serde_json::Value {
    serde_json::from_slice(&fixtures::inspect_raw(reference)).unwrap()
}

#[test]
fn docker_images_copied_with_format_oci_are_read_by_skopeo_and_umoci() {
    let reg = Registry::start();
    for (name, spec) in [
        ("docker", ImageSpec::docker()),
        ("dockerlist", ImageSpec::docker_list()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let built = fixtures::write_layout(dir.path(), "v1", &spec);
        fixtures::seed_registry(dir.path(), "v1", &reg.addr, &format!("{name}:v1"));
        let layout = tempfile::tempdir().unwrap();
        let dst = format!("oci:{}:v1", layout.path().display());
        let src = format!("{}/{name}:v1", reg.addr);
        let o = ferry(&["copy", "--format", "oci", &src, &dst]);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        );
        assert!(
            out.contains("converted to OCI") && out.contains("NEW"),
            "{name}: {out}"
        );
        assert!(!err.contains("Docker media types"), "{name}: {err}");
        let v = raw_json(&dst);
        let is_list = name == "dockerlist";
        let want = if is_list {
            "application/vnd.oci.image.index.v1+json"
        } else {
            "application/vnd.oci.image.manifest.v1+json"
        };
        assert_eq!(v["mediaType"], want, "{name}");
        let digest = fixtures::inspect_digest(&dst);
        assert_ne!(
            digest, built.digest,
            "{name}: a converted manifest has a new digest"
        );
        assert!(out.contains(&digest.to_string()), "{name}: {out}");
        // skopeo reads the layout and verifies every blob.
        let pulled = tempfile::tempdir().unwrap();
        fixtures::skopeo(&[
            "copy",
            "--all",
            &dst,
            &format!("oci:{}:p", pulled.path().display()),
        ]);
        if !is_list {
            assert_eq!(
                v["layers"][0]["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            assert_eq!(
                v["config"]["mediaType"],
                "application/vnd.oci.image.config.v1+json"
            );
            fixtures::umoci_unpack(layout.path(), "v1", &layout.path().join("bundle"));
        } else {
            for entry in v["manifests"].as_array().unwrap() {
                assert_eq!(
                    entry["mediaType"],
                    "application/vnd.oci.image.manifest.v1+json"
                );
                assert!(entry["platform"]["architecture"].is_string(), "{entry}");
            }
        }
        // Without --format, the layout would hold Docker types: the warning says how to convert.
        let plain = tempfile::tempdir().unwrap();
        let o = ferry(&["copy", &src, &format!("oci:{}:v1", plain.path().display())]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--format oci"), "{name}: {err}");
        // Back to Docker schema 2 at a registry, as JSON.
        let back = format!("{}/back-{name}:v1", reg.addr);
        let o = ferry(&["copy", "--json", "--format", "v2s2", &dst, &back]);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["converted_to"], "v2s2", "{report}");
        let v = raw_json(&format!("docker://{back}"));
        let want = if is_list {
            "application/vnd.docker.distribution.manifest.list.v2+json"
        } else {
            "application/vnd.docker.distribution.manifest.v2+json"
        };
        assert_eq!(v["mediaType"], want, "{name}");
        // Already in the format: nothing converted, digest kept.
        let o = ferry(&[
            "copy",
            "--json",
            "--format",
            "oci",
            &dst,
            &format!("{}/same-{name}:v1", reg.addr),
        ]);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["converted_to"], serde_json::Value::Null, "{report}");
        assert_eq!(report["destination_digest"], digest.to_string());
    }
}
