//! SIGINT and SIGTERM in the middle of a blob (issue 13, defect 2): the copy stops, the
//! destination's open upload session is DELETEd, a layout's temp file is removed, no tag is
//! written, and the exit code is 128 + the signal (130, 143).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind};
use crate::support::fixtures::{self, ImageSpec};
use ferry::store::layout::WORK_DIR;

/// A fault server holding `team/app:v1` (one 8 MiB layer) whose blob downloads crawl: each
/// answer is cut after 256 KiB, and the copy goes on through ranged retries.
fn crawling_source(dir: &Path) -> (FaultServer, String) {
    let src = dir.join("src");
    fixtures::write_layout(&src, "v1", &ImageSpec::oci().layers(1, 8 << 20));
    let srv = FaultServer::start(FaultConfig::new());
    let remote = format!("{}/team/app:v1", srv.host());
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["copy", "-q", &format!("oci:{}:v1", src.display()), &remote])
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    srv.add_fault(Fault::drop_body_after(Kind::BlobGet, 1, 256 << 10).times(100_000));
    (srv, remote)
}

fn start_copy(from: &str, to: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "copy",
            "--retries",
            "1000",
            "--retry-max-time",
            "600",
            from,
            to,
        ])
        .env("DOCKER_CONFIG", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `ready` until true; fails if the copy ended first.
fn wait_until(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} never happened");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the copy ended before {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigint_mid_upload_deletes_the_session_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (_src, remote) = crawling_source(dir.path());
    let dst = FaultServer::start(FaultConfig::new());
    let mut child = start_copy(&remote, &format!("{}/prod/app:v1", dst.host()));
    // Half-way through the layer's upload: the session is open and has bytes.
    wait_until(&mut child, "an upload under way", || {
        dst.open_uploads() >= 1 && dst.upload_bytes() >= 1 << 20
    });
    let sent = Instant::now();
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("stopped {took:?} after SIGINT");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (SIGINT)"), "{stderr}");
    assert!(
        dst.count(Kind::UploadDelete) >= 1,
        "no DELETE: {:?}",
        dst.counts()
    );
    assert_eq!(dst.open_uploads(), 0, "an upload session was left open");
    assert_eq!(dst.tag("prod/app", "v1"), None, "a tag was written");
    assert_eq!(dst.count(Kind::ManifestPut), 0);
}

#[test]
fn sigterm_mid_blob_into_a_layout_removes_the_temp_file_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let (_src, remote) = crawling_source(dir.path());
    let dst = dir.path().join("dst");
    let mut child = start_copy(&remote, &format!("oci:{}:v1", dst.display()));
    let tmp = dst.join(WORK_DIR).join("tmp");
    let partial = || {
        std::fs::read_dir(&tmp)
            .ok()
            .into_iter()
            .flatten()
            .any(|e| e.unwrap().metadata().is_ok_and(|m| m.len() >= 256 << 10))
    };
    wait_until(&mut child, "a partial blob", partial);
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("interrupted (SIGTERM)"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
    let index = std::fs::read_to_string(dst.join("index.json")).unwrap_or_default();
    assert!(!index.contains("\"v1\""), "a tag was written: {index}");
}

#[test]
fn sigint_mid_blob_into_an_oci_archive_removes_its_temp_file_and_leaves_no_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (_src, remote) = crawling_source(dir.path());
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let tar = out_dir.join("app.tar");
    let mut child = start_copy(&remote, &format!("oci-archive:{}:v1", tar.display()));
    // The archive's temp file sits beside it; it grows as the blob's bytes land in their slot.
    let temp_files = || -> Vec<(String, u64)> {
        std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                (e.file_name().to_string_lossy().into_owned(), len)
            })
            .collect()
    };
    let partial = || {
        temp_files()
            .iter()
            .any(|(n, len)| n.contains(".ferry-") && *len >= 256 << 10)
    };
    wait_until(
        &mut child,
        "a partial blob in the archive's temp file",
        partial,
    );
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted (SIGINT)"), "{stderr}");
    assert_eq!(
        temp_files(),
        Vec::<(String, u64)>::new(),
        "nothing is left, no archive"
    );
}
