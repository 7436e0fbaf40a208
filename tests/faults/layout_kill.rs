//! A copy into an OCI layout killed with SIGKILL in the middle of a blob (issue 13, defect 2):
//! the partial blob is only in `.ferry/tmp/`, never under `blobs/`; once stale, the next copy
//! into the layout sweeps it, and umoci gc and unpack accept the layout.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind};
use crate::support::fixtures::{self, ImageSpec};
use ferry::store::layout::WORK_DIR;
use ferry::Digest;

fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_copy_killed_mid_blob_leaves_nothing_under_blobs_and_its_temp_file_is_swept() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fixtures::write_layout(&src, "v1", &ImageSpec::oci().layers(1, 8 << 20));
    let srv = FaultServer::start(FaultConfig::new());
    let remote = format!("{}/team/app:v1", srv.host());
    let out = ferry(&["copy", "-q", &format!("oci:{}:v1", src.display()), &remote]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every blob download is cut after 256 KiB: the copy crawls on through ranged retries.
    srv.add_fault(Fault::drop_body_after(Kind::BlobGet, 1, 256 << 10).times(100_000));
    let dst = dir.path().join("dst");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["copy", "-q", "--retries", "1000", "--retry-max-time", "600"])
        .args([&remote, &format!("oci:{}:v1", dst.display())])
        .env("DOCKER_CONFIG", "/nonexistent")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp = dst.join(WORK_DIR).join("tmp");
    let deadline = Instant::now() + Duration::from_secs(30);
    let partial = loop {
        let big = files(&tmp)
            .into_iter()
            .find(|p| p.metadata().is_ok_and(|m| m.len() >= 256 << 10));
        if let Some(p) = big {
            break p;
        }
        assert!(Instant::now() < deadline, "no partial blob appeared");
        assert!(child.try_wait().unwrap().is_none(), "the copy ended early");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.exists(), "a killed process removes nothing");
    // Under blobs/sha256 only complete blobs, each named by its digest.
    for p in files(&dst.join("blobs/sha256")) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(
            Digest::of(&std::fs::read(&p).unwrap()).hex(),
            name,
            "{}",
            p.display()
        );
    }
    // Young, the partial file might belong to a live writer: kept. Stale: swept.
    let out = ferry(&[
        "copy",
        "-q",
        &format!("oci:{}:v1", src.display()),
        &format!("oci:{}:v2", dst.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(partial.exists());
    let f = std::fs::File::options().write(true).open(&partial).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let out = ferry(&[
        "copy",
        "-q",
        &format!("oci:{}:v1", src.display()),
        &format!("oci:{}:v3", dst.display()),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(files(&tmp).is_empty(), "{:?}", files(&tmp));
    let gc = Command::new("umoci")
        .args(["gc", "--layout"])
        .arg(&dst)
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "umoci gc: {}",
        String::from_utf8_lossy(&gc.stderr)
    );
    fixtures::umoci_unpack(&dst, "v3", &dir.path().join("bundle"));
}
