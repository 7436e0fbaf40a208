//! Retries against a scripted server: 5xx and 429 with `Retry-After`, bounded attempts, refused
//! connections, uploads started again after a failure, and blob reads resumed after a dropped body.
mod registry_common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use ferry::error::Error;
use ferry::store::{Store, Target};
use registry_common::scripted::*;
use registry_common::*;
use support::token_server::full;

#[tokio::test]
async fn retry_after_is_honoured_for_503_and_429() {
    let m = small_manifest();
    let m2 = m.clone();
    let (srv, log) = scripted(move |_req, n| match n {
        0 => status(503)
            .header("retry-after", "1")
            .body(error_body("UNAVAILABLE"))
            .unwrap(),
        1 => {
            let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
            status(429)
                .header("retry-after", at)
                .body(error_body("TOOMANYREQUESTS"))
                .unwrap()
        }
        _ => manifest_response(&m2),
    });
    let c = client(&srv.addr.to_string(), None);
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
    assert_eq!(count(&log, "GET", "/manifests/v1"), 3);
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
            w.contains(&srv.addr.to_string()) && w.contains("get manifest") && w.contains("v1"),
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
    let (srv, log) = scripted(|req, _| match req.uri().path() {
        p if p.ends_with("/blobs/uploads/") => {
            status(400).body(error_body("NAME_INVALID")).unwrap()
        }
        p if p.contains("/manifests/slow") => status(429)
            .header("retry-after", "3600")
            .body(error_body("TOOMANYREQUESTS"))
            .unwrap(),
        _ => status(500).body(full("<html>oops</html>")).unwrap(),
    });
    let c = client(&srv.addr.to_string(), None);
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
    assert_eq!(count(&log, "GET", "/manifests/v1"), 3);

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
    assert_eq!(count(&log, "GET", "/manifests/slow"), 1);

    // A plain 4xx is not retried.
    let blob = MemBlob::new("x");
    let e = s.put_blob(&blob.descriptor(""), &blob).await.unwrap_err();
    assert!(
        matches!(&e, Error::Registry { status: 400, attempts: 1, codes, .. } if codes[0].code == "NAME_INVALID"),
        "{e:?}"
    );
    assert_eq!(count(&log, "POST", "/blobs/uploads/"), 1);
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
    assert!(e.is_retryable());
}

#[tokio::test]
async fn failed_uploads_are_cancelled_and_started_again() {
    let (srv, log) = scripted(move |req, n| {
        let p = req.uri().path().to_string();
        match req.method().as_str() {
            "POST" => {
                let loc = format!("/v2/a/b/blobs/uploads/session-{n}?_state=s{n}%3D%3D");
                status(202).header("location", loc).body(full("")).unwrap()
            }
            "PUT" if p.ends_with("session-0") => {
                status(503).body(error_body("UNAVAILABLE")).unwrap()
            }
            "PUT" => status(201)
                .header(
                    "docker-content-digest",
                    req.uri()
                        .query()
                        .unwrap()
                        .split("digest=")
                        .nth(1)
                        .unwrap()
                        .replace("%3A", ":"),
                )
                .body(full(""))
                .unwrap(),
            "DELETE" => status(204).body(full("")).unwrap(),
            _ => status(404).body(full("")).unwrap(),
        }
    });
    let c = client(&srv.addr.to_string(), None);
    let blob = MemBlob::new(bytes_of(11, 333_333));
    let desc = blob.descriptor("");
    assert_eq!(
        store(&c, "a/b").put_blob(&desc, &blob).await.unwrap(),
        desc.size
    );
    assert_eq!(
        *blob.opens.lock().unwrap(),
        vec![0, 0],
        "the source is read again from 0"
    );
    let seen = log.lock().unwrap().clone();
    let puts: Vec<&Seen> = seen.iter().filter(|s| s.method == "PUT").collect();
    assert_eq!(puts.len(), 2);
    let digest = desc.digest.to_string().replace(':', "%3A");
    assert_eq!(
        puts[1].uri,
        format!("/v2/a/b/blobs/uploads/session-1?_state=s1%3D%3D&digest={digest}")
    );
    assert_eq!(puts[1].body_len as u64, desc.size);
    assert_eq!(
        puts[1]
            .headers
            .get("content-length")
            .unwrap()
            .to_str()
            .unwrap(),
        desc.size.to_string()
    );
    assert_eq!(
        puts[1].headers.get("content-type").unwrap(),
        "application/octet-stream"
    );
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert_eq!(deletes.len(), 1);
    assert!(
        deletes[0]
            .uri
            .starts_with("/v2/a/b/blobs/uploads/session-0?_state="),
        "{:?}",
        deletes[0]
    );
    let st = c.stats();
    assert_eq!(
        (st.blob_uploads, st.blob_bytes_uploaded),
        (2, 2 * desc.size)
    );
}

#[tokio::test]
async fn ranges_ignored_by_the_server_and_dropped_bodies() {
    let data = bytes_of(5, 200_000);
    let d2 = data.clone();
    let (srv, log) = scripted(move |req, n| {
        let range = req
            .headers()
            .get("range")
            .map(|v| v.to_str().unwrap().to_string());
        if req.uri().path().contains("ignores-range") {
            return status(200).body(full(d2.clone())).unwrap();
        }
        match (n, range) {
            // First read: promise everything, send 70 000 bytes, then drop the connection.
            (0, _) => {
                let part = d2.slice(..70_000);
                let frames = futures::stream::unfold(0, move |i| {
                    let part = part.clone();
                    async move {
                        match i {
                            0 => Some((Ok(Frame::data(part)), 1)),
                            1 => {
                                // Let the bytes reach the client before the connection drops.
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                Some((Err(std::io::Error::other("dropped")), 2))
                            }
                            _ => None,
                        }
                    }
                });
                status(200)
                    .header("content-length", d2.len())
                    .body(StreamBody::new(frames).boxed())
                    .unwrap()
            }
            (_, Some(r)) => {
                let from: usize = r
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                status(206)
                    .header(
                        "content-range",
                        format!("bytes {from}-{}/{}", d2.len() - 1, d2.len()),
                    )
                    .body(full(d2.slice(from..)))
                    .unwrap()
            }
            _ => status(500).body(full("")).unwrap(),
        }
    });
    let c = client(&srv.addr.to_string(), None);
    let blob = MemBlob::new(data.clone());
    let desc = blob.descriptor("");
    let tail = read_all(
        store(&c, "x/ignores-range")
            .open_blob(&desc, 1234)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(tail, data[1234..]);

    let all = read_all(store(&c, "x/drops").open_blob(&desc, 0).await.unwrap())
        .await
        .unwrap();
    assert_eq!(all.len(), data.len());
    assert!(all == data, "resumed bytes line up");
    let ranges: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.uri.contains("x/drops"))
        .filter_map(|s| {
            s.headers
                .get("range")
                .map(|v| v.to_str().unwrap().to_string())
        })
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
    let realm = Arc::new(std::sync::OnceLock::<String>::new());
    let r2 = realm.clone();
    let (srv, log) = scripted(move |req, _| {
        if req.uri().path() == "/token" {
            return status(503).body(full("")).unwrap();
        }
        let challenge = format!(
            r#"Bearer realm="{}",service="svc",scope="repository:a/b:pull""#,
            r2.get().unwrap()
        );
        status(401)
            .header("www-authenticate", challenge)
            .body(error_body("UNAUTHORIZED"))
            .unwrap()
    });
    realm.set(srv.url("/token")).unwrap();
    let c = client(&srv.addr.to_string(), None);
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
        count(&log, "GET", "/token"),
        3,
        "the token fetch has its own retries only"
    );
    assert_eq!(count(&log, "GET", "/manifests/v1"), 1);
}
