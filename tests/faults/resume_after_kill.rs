//! A copy killed with SIGKILL in the middle of a large blob (issue 13, defect 2): the upload
//! journal remembers the registry's session, and the rerun asks the registry where it stands
//! (`GET` → `Range`) and sends only the rest, at most one chunk more than the registry lacks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind};
use crate::support::fixtures::{self, ImageSpec};

const LAYER: usize = 24 << 20;
const CHUNK: u64 = 1 << 20;

fn ferry(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env("DOCKER_CONFIG", "/nonexistent")
        .env("FERRY_CACHE_DIR", cache)
        .args(["copy", "--chunk-size", "1MiB", "--resumable-above", "4MiB"]);
    c
}

fn journal_entries(cache: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(cache.join("uploads"))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_copy_killed_mid_blob_resumes_where_the_registry_stands() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let layout = dir.path().join("src");
    let built = fixtures::write_layout(&layout, "v1", &ImageSpec::oci().layers(1, LAYER));
    let local = format!("oci:{}:v1", layout.display());
    // The first run reads from a registry whose downloads crawl (cut every 256 KiB), so it can
    // be killed half-way; the rerun reads the same image from the layout.
    let slow = FaultServer::start(FaultConfig::new());
    let remote = format!("{}/team/app:v1", slow.host());
    let o = ferry(&cache)
        .args(["-q", &local, &remote])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    slow.add_fault(Fault::drop_body_after(Kind::BlobGet, 1, 256 << 10).times(100_000));

    let dst = FaultServer::start(FaultConfig::new());
    let target = format!("{}/prod/app:v1", dst.host());
    let mut child = ferry(&cache)
        .args([
            "-q",
            "--retries",
            "1000",
            "--retry-max-time",
            "600",
            &remote,
            &target,
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while dst.upload_bytes() < 6 * CHUNK {
        assert!(Instant::now() < deadline, "the upload did not get going");
        assert!(child.try_wait().unwrap().is_none(), "the copy ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        journal_entries(&cache).len(),
        1,
        "the session was not journaled"
    );
    let held: u64 = dst.open_upload_sizes().into_iter().max().unwrap();
    assert!(held >= 5 * CHUNK, "held {held}");
    let before = dst.upload_bytes();
    let starts = dst.count(Kind::UploadStart);

    let o = ferry(&cache)
        .args(["-v", &local, &target])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let resent = dst.upload_bytes() - before;
    // The layer blob as stored (gzip of LAYER bytes: its size depends on the compressor).
    let blob = built.blobs.iter().map(|d| d.size).max().unwrap();
    eprintln!("held {held} of {blob}; the rerun sent {resent}");
    assert!(
        resent <= blob - held + CHUNK,
        "the rerun sent {resent} bytes; the registry lacked {}",
        blob - held
    );
    assert_eq!(
        dst.count(Kind::UploadStart),
        starts,
        "a new session was opened"
    );
    assert!(
        dst.count(Kind::UploadStatus) >= 1,
        "the registry was not asked where it stands"
    );
    assert!(
        stderr.contains("previous run left this upload unfinished"),
        "{stderr}"
    );
    // The image is whole and verified: every blob as the source has it, the tag written.
    for d in &built.blobs {
        assert_eq!(
            dst.blob_in("prod/app", &d.digest)
                .map(|b| ferry::Digest::of(&b)),
            Some(d.digest.clone())
        );
    }
    assert_eq!(dst.tag("prod/app", "v1"), Some(built.digest.clone()));
    assert_eq!(dst.open_uploads(), 0);
    assert!(
        journal_entries(&cache).is_empty(),
        "{:?}",
        journal_entries(&cache)
    );
}

/// A journal entry whose session the registry no longer has (distribution drops a session
/// after a partial write; registries expire them) costs one status request, then the blob goes
/// in a new session; an unreadable entry is ignored. Neither breaks the copy.
#[test]
fn a_session_the_registry_lost_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let layout = dir.path().join("src");
    let built = fixtures::write_layout(&layout, "v1", &ImageSpec::oci().layers(1, 6 << 20));
    let layer = built.blobs.iter().max_by_key(|d| d.size).unwrap().clone();
    let dst = FaultServer::start(FaultConfig::new());
    let key = |repo: &str| {
        let k = ferry::Digest::of(format!("{}\n{repo}\n{}", dst.host(), layer.digest).as_bytes());
        cache
            .join("uploads")
            .join(format!("{}.json", &k.hex()[..32]))
    };
    std::fs::create_dir_all(cache.join("uploads")).unwrap();
    let entry = serde_json::json!({
        "registry": dst.host(), "repository": "prod/app", "digest": layer.digest.to_string(),
        "size": layer.size, "offset": 3 << 20,
        "location": format!("http://{}/v2/prod/app/blobs/uploads/gone?_state=1", dst.host()),
    });
    std::fs::write(key("prod/app"), entry.to_string()).unwrap();
    std::fs::write(key("prod/other"), "{ not json").unwrap();
    for repo in ["prod/app", "prod/other"] {
        let target = format!("{}/{repo}:v1", dst.host());
        let o = ferry(&cache)
            .args(["-v", &format!("oci:{}:v1", layout.display()), &target])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{repo}: {stderr}");
        assert_eq!(dst.tag(repo, "v1"), Some(built.digest.clone()), "{repo}");
        if repo == "prod/app" {
            assert!(stderr.contains("no longer has the session"), "{stderr}");
        }
    }
    assert_eq!(dst.count(Kind::UploadStatus), 1, "{:?}", dst.counts());
    assert!(
        journal_entries(&cache).is_empty(),
        "{:?}",
        journal_entries(&cache)
    );
}
