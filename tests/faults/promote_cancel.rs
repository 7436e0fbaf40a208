//! A promotion that fails because a source blob is missing (404) leaves no upload session open
//! at the destination (the README promises open sessions are deleted on failure).

use std::sync::Arc;

use crate::support::fault_server::{FaultConfig, FaultServer, Kind};
use ferry::copy::RegistryLimits;
use ferry::manifest::OCI_MANIFEST;
use ferry::promote::{Job, Outcome, Overwrite, PromoteOptions, Promoter, SilentPlan};
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore};
use ferry::store::{Store, Target};
use ferry::Digest;

/// `repo:tag` at `server` naming a config that is there and a large layer that is not.
fn image_missing_a_layer(server: &FaultServer, repo: &str, tag: &str) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = server.put_blob(&config[..]);
    let present = server.put_blob(vec![3u8; 16 << 20]);
    let missing = Digest::of(b"never uploaded anywhere");
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": present, "size": 16 << 20},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 64 << 20},
        ],
    });
    server.put_manifest(repo, tag, &serde_json::to_vec(&body).unwrap(), OCI_MANIFEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_blob_cancels_the_destination_upload() {
    let (src, dst) = (
        FaultServer::start(FaultConfig::new()),
        FaultServer::start(FaultConfig::new()),
    );
    image_missing_a_layer(&src, "ci/api", "build-7");
    let client = |s: &FaultServer| RegistryClient::new(&s.host(), RegistryOptions::default());
    let (sc, dc) = (client(&src).unwrap(), client(&dst).unwrap());
    let job = Job {
        label: "api".into(),
        source: Arc::new(RegistryStore::new(sc, "ci/api")) as Arc<dyn Store>,
        target: Target::Tag("build-7".into()),
        destination: Arc::new(RegistryStore::new(dc, "prod/api")) as Arc<dyn Store>,
        tags: vec!["1.0".into()],
        expect_digest: None,
        overwrite: Overwrite::Never,
        referrers: None,
        seen_tags: Vec::new(),
        manifest: None,
    };
    let promoter = Promoter::new(
        PromoteOptions::default(),
        RegistryLimits::unlimited(),
        Arc::new(SilentPlan),
    );
    let r = promoter.run(&[job]).await;
    assert_eq!(r.outcome, Outcome::NoTagsWritten, "{r:#?}");
    assert!(
        dst.count(Kind::UploadStart) > 0,
        "the test needs an upload session opened"
    );
    assert_eq!(dst.open_uploads(), 0, "sessions left open: {r:#?}");
}

/// The binary exits right after the failure: its sessions are cancelled before it does.
#[test]
fn the_cli_cancels_the_destination_upload_before_exiting() {
    let (src, dst) = (
        FaultServer::start(FaultConfig::new()),
        FaultServer::start(FaultConfig::new()),
    );
    image_missing_a_layer(&src, "ci/api", "build-7");
    let runs = [
        ("promote", "auto"),
        ("copy", "auto"),
        ("promote", "streamed"),
        ("promote", "chunked"),
        ("promote", "monolithic"),
    ];
    for (cmd, strategy) in runs {
        let before = dst.count(Kind::UploadStart);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args([cmd, "--upload-strategy", strategy, "--chunk-size", "1MiB"])
            .arg(format!("{}/ci/api:build-7", src.host()))
            .arg(format!("{}/prod/api:1.0", dst.host()))
            .env("DOCKER_CONFIG", "/nonexistent")
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{cmd} {strategy}: {e}");
        assert!(
            dst.count(Kind::UploadStart) > before,
            "{cmd} {strategy}: no session opened"
        );
        assert_eq!(
            dst.open_uploads(),
            0,
            "{cmd} {strategy}: sessions left open: {e}"
        );
    }
}
