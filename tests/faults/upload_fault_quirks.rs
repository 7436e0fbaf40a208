//! The fault server's registry personalities, driven with plain HTTP: each quirk must be live
//! (so the upload tests that rely on it can fail).

use crate::support::fault_server::{FaultConfig, FaultServer, Personality, Quirks};
use reqwest::{Client, Response};

const MIB: usize = 1024 * 1024;

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A new session's Location.
async fn session(srv: &FaultServer) -> String {
    let r = Client::new()
        .post(srv.url("/v2/r/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    header(&r, "location")
}

async fn patch(loc: &str, range: Option<(usize, usize)>, len: usize) -> Response {
    let mut b = Client::new()
        .patch(loc)
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; len]);
    if let Some((s, e)) = range {
        b = b.header("content-range", format!("{s}-{e}"));
    }
    b.send().await.unwrap()
}

async fn put(loc: &str, len: usize) -> Response {
    let digest = ferry::Digest::of(&vec![7u8; len]);
    let url = format!("{loc}&digest={digest}");
    Client::new()
        .put(url)
        .body(vec![7u8; len])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ecr_answers_201_with_a_stuck_range_and_wants_5_mib_parts() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Ecr));
    let loc = session(&srv).await;
    let r = patch(&loc, Some((0, MIB - 1)), MIB).await;
    assert_eq!(r.status(), 400, "a 1 MiB part is refused");
    let r = patch(&loc, Some((0, 5 * MIB - 1)), 5 * MIB).await;
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "range"), format!("0-{}", 5 * MIB - 1));
    let loc = header(&r, "location");
    let r = patch(&loc, Some((5 * MIB, 10 * MIB - 1)), 5 * MIB).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        header(&r, "range"),
        format!("0-{}", 5 * MIB - 1),
        "stuck at the first part"
    );
    let status = Client::new()
        .get(header(&r, "location"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&status, "range"),
        format!("0-{}", 10 * MIB - 1),
        "a status GET tells the truth"
    );
}

#[tokio::test]
async fn ghcr_refuses_bodies_over_4_mib() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Ghcr));
    let loc = session(&srv).await;
    assert_eq!(
        patch(&loc, Some((0, 5 * MIB - 1)), 5 * MIB).await.status(),
        416
    );
    assert_eq!(patch(&loc, None, 5 * MIB).await.status(), 413);
    let r = patch(&loc, Some((0, 4 * MIB - 1)), 4 * MIB).await;
    assert_eq!(r.status(), 202);
    assert_eq!(put(&session(&srv).await, 5 * MIB).await.status(), 413);
}

#[tokio::test]
async fn gar_refuses_every_patch() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Gar));
    let loc = session(&srv).await;
    assert_eq!(patch(&loc, Some((0, 99)), 100).await.status(), 405);
    assert_eq!(patch(&loc, None, 100).await.status(), 405);
    assert_eq!(put(&loc, 30 * MIB).await.status(), 201, "monolithic works");
}

#[tokio::test]
async fn acr_refuses_monolithic_bodies_over_20_mb_only() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Acr));
    assert_eq!(put(&session(&srv).await, 20 * MIB).await.status(), 413);
    let loc = session(&srv).await;
    let r = patch(&loc, Some((0, 20 * MIB - 1)), 20 * MIB).await;
    assert_eq!(r.status(), 202, "chunks of any size");
    let r = Client::new()
        .put(format!(
            "{}&digest={}",
            header(&r, "location"),
            ferry::Digest::of(&vec![7u8; 20 * MIB])
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "an empty closing PUT");
}

#[tokio::test]
async fn range_can_be_ignored_and_minimum_chunks_enforced() {
    let cfg = FaultConfig::new().chunk_min_length(1000).quirks(Quirks {
        ignore_range: true,
        ..Quirks::default()
    });
    let srv = FaultServer::start(cfg);
    let d = srv.put_blob(vec![1u8; 5000]);
    let r = Client::new()
        .get(srv.url(&format!("/v2/r/blobs/{d}")))
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 5000);
    let loc = session(&srv).await;
    assert_eq!(patch(&loc, Some((0, 499)), 500).await.status(), 416);
    assert_eq!(
        patch(&loc, None, 500).await.status(),
        202,
        "a streamed PATCH is the last part"
    );
}
