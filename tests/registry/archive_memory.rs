//! Peak memory stays bounded whatever the layer size: ferry's own peak RSS (GNU time's `%M`)
//! while it writes and reads oci-archives and docker-archives of 2 × 96 MiB layers (the
//! docker-archive decompressed on the way in, gzip'd in parallel on the way out) stays under
//! the 64 MiB.

use std::path::Path;
use std::process::Command;

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;

const LIMIT_KIB: u64 = 64 * 1024;

/// Runs ferry under `/usr/bin/time -f %M`; returns its peak RSS in KiB.
fn peak_kib(tmp: &Path, args: &[&str]) -> u64 {
    let out_file = tmp.join("time.out");
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&out_file)
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("TMPDIR", tmp)
        .output()
        .expect("GNU time (/usr/bin/time; scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    std::fs::remove_file(&out_file).unwrap();
    text.trim().lines().last().unwrap().parse().unwrap()
}

#[test]
fn archives_of_large_layers_keep_memory_bounded() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let src = work.path().join("src");
    let built = fixtures::write_layout(&src, "v1", &ImageSpec::oci().layers(2, 96 * 1024 * 1024));
    let oa = work.path().join("big.tar");
    let da = work.path().join("big-docker.tar");
    let s = |p: &Path| p.display().to_string();
    let steps: Vec<(&str, Vec<String>)> = vec![
        (
            "write oci-archive",
            vec![
                "copy".into(),
                "-q".into(),
                format!("oci:{}:v1", s(&src)),
                format!("oci-archive:{}:v1", s(&oa)),
            ],
        ),
        (
            // The archive exists: its 96 MiB blobs are kept (copied into the new tar, each
            // verified), and the second tag is added beside the first.
            "add a tag to the oci-archive",
            vec![
                "copy".into(),
                "-q".into(),
                format!("oci:{}:v1", s(&src)),
                format!("oci-archive:{}:v2", s(&oa)),
            ],
        ),
        (
            "import oci-archive",
            vec![
                "import".into(),
                "-q".into(),
                s(&oa),
                "--to".into(),
                format!("{}/mem", reg.addr),
            ],
        ),
        (
            "write docker-archive",
            vec![
                "copy".into(),
                "-q".into(),
                format!("oci:{}:v1", s(&src)),
                format!("docker-archive:{}:app:v1", s(&da)),
            ],
        ),
        (
            "docker-archive to registry (gzip)",
            vec![
                "copy".into(),
                "-q".into(),
                format!("docker-archive:{}", s(&da)),
                format!("{}/dmem:v1", reg.addr),
            ],
        ),
    ];
    for (what, args) in &steps {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let kib = peak_kib(&tmp, &args);
        assert!(kib < LIMIT_KIB, "{what}: peak RSS {} MiB", kib / 1024);
    }
    for tag in ["v1", "v2"] {
        assert_eq!(
            fixtures::inspect_digest(&format!("oci-archive:{}:{tag}", s(&oa))),
            built.digest
        );
        assert_eq!(
            fixtures::inspect_digest(&format!("docker://{}/mem:{tag}", reg.addr)),
            built.digest
        );
    }
    // Nothing is left beside the archives or in the temp dir.
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
}
