//! Retries against the fault server: 5xx and 429 with `Retry-After`, bounded attempts, refused
//! connections, uploads started again after a failure, and blob reads resumed after a dropped body.

use std::time::{Duration, Instant};

use crate::registry_common::*;
use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind, Logged, Quirks};
use ferry::error::Error;
use ferry::manifest::{self, RawManifest};
use ferry::store::{Store, Target};

fn small_manifest() -> RawManifest {
    let cfg = MemBlob::new("{}").descriptor("application/vnd.oci.image.config.v1+json");
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": cfg, "layers": []});
    RawManifest::new(serde_json::to_vec(&body).unwrap().into(), None).unwrap()
}

/// Requests whose method is `method` and whose path and query contain `part`.
fn seen(srv: &FaultServer, method: &str, part: &str) -> Vec<Logged> {
    srv.requests()
        .into_iter()
        .filter(|l| l.method == method && l.uri.contains(part))
        .collect()
}

#[tokio::test]
async fn retry_after_is_honoured_for_503_and_429() {
    let m = small_manifest();
    let srv = FaultServer::start(
        FaultConfig::new()
            .fault(Fault::retry_after(Kind::ManifestGet, 1, 503, 1))
            .fault(Fault::retry_after_date(Kind::ManifestGet, 2, 429, 2)),
    );
    srv.put_manifest("a/b", "v1", &m.bytes, &m.media_type);
    let c = client(&srv.host(), None);
    let logs = Logs::capture();
    let t0 = Instant::now();
    let got = store(&c, "a/b")
        .get_manifest(&Target::Tag("v1".into()))
        .await
        .unwrap();
    let waited = t0.elapsed();
    assert_eq!(got.bytes, m.bytes);
    // 1 s, then an HTTP date 1-2 s ahead (second resolution): far above the 20 ms backoff.
    assert!(waited >= Duration::from_millis(1_900), "{waited:?}");
    assert_eq!(seen(&srv, "GET", "/manifests/v1").len(), 3);
    assert_eq!(c.stats().retries, 2);
    let warned: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("retrying"))
        .map(String::from)
        .collect();
    assert_eq!(warned.len(), 2, "{warned:?}");
    for w in &warned {
        assert!(
            w.contains(&srv.host()) && w.contains("get manifest") && w.contains("v1"),
            "{w}"
        );
    }
    assert!(
        warned[0].contains("HTTP 503") && warned[1].contains("HTTP 429"),
        "{warned:?}"
    );
}

#[tokio::test]
async fn retries_are_bounded_and_the_final_error_counts_attempts() {
    let srv = FaultServer::start(
        FaultConfig::new()
            .fault(Fault::status(Kind::ManifestGet, 1, 500).times(3))
            .fault(Fault::retry_after(Kind::ManifestGet, 4, 429, 3600))
            .fault(Fault::error(Kind::UploadStart, 1, 400, "NAME_INVALID")),
    );
    let c = client(&srv.host(), None);
    let s = store(&c, "a/b");
    let e = s.get_manifest(&Target::Tag("v1".into())).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Registry {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
    assert_eq!(seen(&srv, "GET", "/manifests/v1").len(), 3);

    // A Retry-After beyond the time budget ends the retries at once.
    let t0 = Instant::now();
    let e = s
        .get_manifest(&Target::Tag("slow".into()))
        .await
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(2) && e.status() == Some(429),
        "{e}"
    );
    assert_eq!(seen(&srv, "GET", "/manifests/slow").len(), 1);

    // A plain 4xx is not retried.
    let blob = MemBlob::new("x");
    let e = s.put_blob(&blob.descriptor(""), &blob).await.unwrap_err();
    assert!(
        matches!(&e, Error::Registry { status: 400, attempts: 1, codes, .. } if codes[0].code == "NAME_INVALID"),
        "{e:?}"
    );
    assert_eq!(seen(&srv, "POST", "/blobs/uploads/").len(), 1);
}

#[tokio::test]
async fn connection_failures_are_transport_errors_after_retries() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(&format!("127.0.0.1:{port}"), None);
    let e = store(&c, "a/b").list_tags().await.unwrap_err();
    assert!(matches!(e, Error::Transport { attempts: 3, .. }), "{e:?}");
    assert!(
        !e.to_string().contains("http://"),
        "no URL in the message: {e}"
    );
    assert!(ferry::store::registry::is_retryable(&e));
}

/// A monolithic PUT answered 503 is not sent whole in a new session: the engine asks where the
/// session stands and goes on there, resumably (the body is re-read from the registry's offset).
#[tokio::test]
async fn a_failed_monolithic_put_goes_on_on_its_own_session() {
    let srv = FaultServer::start(FaultConfig::new().fault(Fault::status(Kind::UploadPut, 1, 503)));
    let c = client(&srv.host(), None);
    let blob = MemBlob::new(bytes_of(11, 333_333));
    let desc = blob.descriptor("");
    assert_eq!(
        store(&c, "a/b").put_blob(&desc, &blob).await.unwrap(),
        desc.size
    );
    assert_eq!(
        *blob.opens.lock().unwrap(),
        vec![0, 0],
        "the source is read again from the registry's offset (0)"
    );
    let statuses = seen(&srv, "GET", "/blobs/uploads/");
    assert_eq!(statuses.len(), 1, "asked where the session stands");
    let puts = seen(&srv, "PUT", "/blobs/uploads/");
    assert_eq!(puts.len(), 2);
    let digest = desc.digest.to_string().replace(':', "%3A");
    // The same session's newest Location, its query kept, the digest added.
    assert_eq!(
        puts[1].uri,
        format!("/v2/a/b/blobs/uploads/upload-1?_state=0&digest={digest}")
    );
    assert_eq!(puts[1].body_bytes, desc.size);
    assert_eq!(puts[1].content_length, Some(desc.size));
    assert_eq!(
        puts[1].content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert!(seen(&srv, "DELETE", "/blobs/uploads/").is_empty());
    let st = c.stats();
    assert_eq!(
        (st.blob_uploads, st.blob_bytes_uploaded),
        (1, 2 * desc.size)
    );
    assert_eq!(
        (st.upload_resume_offsets.clone(), st.upload_restarts),
        (vec![0], 0)
    );
    assert_eq!(srv.blob_in("a/b", &desc.digest).unwrap(), blob.bytes);
}

#[tokio::test]
async fn ranges_ignored_by_the_server_and_dropped_bodies() {
    let data = bytes_of(5, 200_000);
    let blob = MemBlob::new(data.clone());
    let desc = blob.descriptor("");
    let ignores = FaultServer::start(FaultConfig::new().quirks(Quirks {
        ignore_range: true,
        ..Quirks::default()
    }));
    ignores.put_blob(data.clone());
    let c = client(&ignores.host(), None);
    let tail = read_all(
        store(&c, "x/ignores-range")
            .open_blob(&desc, 1234)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(tail, data[1234..]);
    assert_eq!(ignores.requests()[0].status, 200, "the Range was ignored");

    // First read: everything promised, 70 000 bytes sent, then the connection drops.
    let drops = FaultServer::start(FaultConfig::new().fault(Fault::drop_body_after(
        Kind::BlobGet,
        1,
        70_000,
    )));
    drops.put_blob(data.clone());
    let c = client(&drops.host(), None);
    let all = read_all(store(&c, "x/drops").open_blob(&desc, 0).await.unwrap())
        .await
        .unwrap();
    assert_eq!(all.len(), data.len());
    assert!(all == data, "resumed bytes line up");
    let ranges: Vec<String> = seen(&drops, "GET", "x/drops")
        .into_iter()
        .filter_map(|l| l.range)
        .collect();
    assert_eq!(ranges.len(), 1);
    let resumed_at: usize = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(resumed_at > 0 && resumed_at <= 70_000, "{ranges:?}");
}

#[tokio::test]
async fn a_failing_token_server_is_retried_once_per_request_not_per_attempt() {
    let srv = FaultServer::start(
        FaultConfig::new()
            .bearer_auth("u", "p", None)
            .fault(Fault::status(Kind::Token, 1, 503).times(u64::MAX)),
    );
    let c = client(&srv.host(), None);
    let e = store(&c, "a/b")
        .get_manifest(&Target::Tag("v1".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Registry {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        seen(&srv, "GET", "/token").len(),
        3,
        "the token fetch has its own retries only"
    );
    assert_eq!(seen(&srv, "GET", "/manifests/v1").len(), 1);
}
