//! Concurrent promotions: registries have no compare-and-swap, so a promotion reads its tags
//! back after writing them; another writer that moved one in between is reported, not lost.

use crate::promote_multitag::{image, job, promoter};
use crate::support::fault_server::{FaultConfig, FaultServer, Kind};
use ferry::manifest::OCI_MANIFEST;
use ferry::promote::{ImageStatus, Outcome, PromoteError};
use ferry::store::registry::{RegistryClient, RegistryOptions};
use ferry::{Digest, Error};

/// Another image's manifest stored (untagged) in `repo`: what the rival writer promotes.
fn rival(server: &FaultServer, repo: &str) -> Digest {
    let config =
        br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = server.put_blob_in(repo, &config[..]);
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [],
    });
    server.put_manifest_untagged(repo, &serde_json::to_vec(&body).unwrap(), OCI_MANIFEST)
}

fn moved(e: &Error) -> Vec<(String, Option<Digest>)> {
    match e {
        Error::Many(v) => v.iter().flat_map(moved).collect(),
        e => match e.promotion() {
            Some(PromoteError::TagMovedConcurrently { tag, now, .. }) => {
                vec![(tag.clone(), now.clone())]
            }
            _ => vec![],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_moved_by_another_writer_right_after_the_write_is_reported() {
    let server = FaultServer::start(FaultConfig::new());
    let m = image(&server, "team/api", "build-7");
    let other = rival(&server, "team/api");
    server.rival_write_after_put("team/api", "1.4.2", &other);
    let c = RegistryClient::new(&server.host(), RegistryOptions::default()).unwrap();
    let r = promoter()
        .run(&[job(
            &c,
            ("team/api", "build-7"),
            "team/api",
            &["1.4.2", "latest"],
        )])
        .await;
    assert_ne!(r.outcome, Outcome::Promoted, "{r:#?}");
    assert!(!r.ok());
    let image = &r.images[0];
    assert_eq!(image.status, ImageStatus::Failed, "{r:#?}");
    let e = image.error.as_ref().expect("an error");
    assert_eq!(moved(e), [("1.4.2".to_string(), Some(other.clone()))]);
    let text = e.to_string();
    assert!(
        text.contains("1.4.2")
            && text.contains(&other.to_string())
            && text.contains("concurrently"),
        "{text}"
    );
    // The other writer's digest stands; the tag nobody else touched is ours.
    assert_eq!(server.tag("team/api", "1.4.2"), Some(other));
    assert_eq!(server.tag("team/api", "latest"), Some(m.digest.clone()));
    assert!(server.count(Kind::ManifestHead) + server.count(Kind::ManifestGet) > 0);

    // Without a rival the same promotion reads its tags back and succeeds.
    let r = promoter()
        .run(&[job(&c, ("team/api", "build-7"), "team/api", &["1.4.3"])])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted, "{r:#?}");
}

/// The binary: exit 1 (not a refusal: the tag was written, then lost), naming the tag, the
/// other digest and the concurrent writer; `--json` says the same.
#[test]
fn the_cli_exits_non_zero_and_names_the_concurrent_move() {
    let server = FaultServer::start(FaultConfig::new());
    image(&server, "team/api", "build-7");
    let other = rival(&server, "team/api");
    for (tag, json) in [("2.0.0", false), ("2.0.1", true)] {
        server.rival_write_after_put("team/api", tag, &other);
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg("promote")
            .arg(format!("{}/team/api:build-7", server.host()))
            .arg(format!("{}/team/api:{tag}", server.host()))
            .env("DOCKER_CONFIG", "/nonexistent");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(
            all.contains(tag) && all.contains(&other.to_string()) && all.contains("concurrently"),
            "{all}"
        );
        assert_eq!(server.tag("team/api", tag), Some(other.clone()));
    }
}
