//! The fault server, driven with plain HTTP: it must behave like a registry (uploads of every
//! kind, mounts, ranges, manifests) and inject each fault it promises, counting what it saw.

use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind};
use bytes::Bytes;
use ferry::Digest;
use futures::StreamExt;
use reqwest::{Client, Method, Response, StatusCode};

fn client() -> Client {
    Client::new()
}

/// Deterministic test bytes.
fn blob(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// `loc` (absolute or relative to the server) with `k=v` added to its query.
fn with_query(server: &FaultServer, loc: &str, k: &str, v: &str) -> String {
    let mut url = url::Url::parse(&server.url("/"))
        .unwrap()
        .join(loc)
        .unwrap();
    url.query_pairs_mut().append_pair(k, v);
    url.to_string()
}

fn header(r: &Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn json(r: Response) -> serde_json::Value {
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

async fn error_code(r: Response) -> String {
    let v = json(r).await;
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

/// POST for a new session; returns its Location.
async fn open_session(server: &FaultServer, repo: &str) -> String {
    let url = server.url(&format!("/v2/{repo}/blobs/uploads/"));
    let r = client().post(url).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-0");
    header(&r, "location")
}

async fn upload_monolithic(server: &FaultServer, repo: &str, bytes: &[u8]) -> Digest {
    let digest = Digest::of(bytes);
    let loc = open_session(server, repo).await;
    let put = with_query(server, &loc, "digest", &digest.to_string());
    let r = client().put(put).body(bytes.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
    digest
}

#[tokio::test]
async fn ping_and_monolithic_upload() {
    let server = FaultServer::start(FaultConfig::new());
    let r = client().get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let bytes = blob(300_000, 1);
    let digest = upload_monolithic(&server, "team/app", &bytes).await;
    assert_eq!(server.blob_in("team/app", &digest).unwrap(), bytes);
    assert!(
        server.blob_in("other", &digest).is_none(),
        "uploads are per repository"
    );
    assert_eq!(server.upload_bytes(), bytes.len() as u64);
    assert_eq!(server.count(Kind::UploadStart), 1);
    assert_eq!(server.count(Kind::UploadPut), 1);
    assert_eq!(server.open_uploads(), 0);

    let url = server.url(&format!("/v2/team/app/blobs/{digest}"));
    let r = client().head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), bytes.len().to_string());
    assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
    let got = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got, bytes);
    let other = server.url(&format!("/v2/other/blobs/{digest}"));
    let r = client().head(other).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn single_request_upload_and_bad_digest() {
    let server = FaultServer::start(FaultConfig::new());
    let bytes = blob(1000, 2);
    let digest = Digest::of(&bytes);
    let url = server.url(&format!("/v2/r/blobs/uploads/?digest={digest}"));
    let r = client().post(url).body(bytes.clone()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(server.blob_in("r", &digest).unwrap(), bytes);

    let loc = open_session(&server, "r").await;
    let wrong = Digest::of(b"something else");
    let put = with_query(&server, &loc, "digest", &wrong.to_string());
    let r = client().put(put).body(bytes).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    assert!(server.blob(&wrong).is_none());
    assert_eq!(
        server.open_uploads(),
        0,
        "a failed commit closes the session"
    );
}

#[tokio::test]
async fn chunked_upload_with_status_and_out_of_order_chunk() {
    let server = FaultServer::start(FaultConfig::new().chunk_min_length(1000));
    let bytes = blob(2500, 3);
    let digest = Digest::of(&bytes);
    let r = client()
        .post(server.url("/v2/r/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "oci-chunk-min-length"), "1000");
    let mut loc = header(&r, "location");

    let patch = |loc: &str, range: &str, body: &[u8]| {
        client()
            .patch(loc)
            .header("content-type", "application/octet-stream")
            .header("content-range", range)
            .body(body.to_vec())
            .send()
    };
    let r = patch(&loc, "0-999", &bytes[..1000]).await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-999");
    loc = header(&r, "location");

    let r = patch(&loc, "500-1499", &bytes[500..1500]).await.unwrap();
    assert_eq!(r.status(), 416, "out of order");
    assert_eq!(header(&r, "range"), "0-999");
    let r = patch(&loc, "1000-1999", &bytes[1000..1500]).await.unwrap();
    assert_eq!(r.status(), 416, "Content-Range longer than the body");

    let r = client().get(&loc).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "range"),
        "0-999",
        "refused chunks left nothing behind"
    );

    let r = patch(&loc, "1000-1999", &bytes[1000..2000]).await.unwrap();
    assert_eq!(header(&r, "range"), "0-1999");
    loc = header(&r, "location");
    let put = with_query(&server, &loc, "digest", &digest.to_string());
    let r = client()
        .put(put)
        .header("content-range", "2000-2499")
        .body(bytes[2000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(server.blob_in("r", &digest).unwrap(), bytes);
    assert_eq!(server.count(Kind::UploadPatch), 4);
    let log = server.requests();
    let ranges: Vec<_> = log.iter().filter_map(|l| l.content_range.clone()).collect();
    assert_eq!(
        ranges,
        ["0-999", "500-1499", "1000-1999", "1000-1999", "2000-2499"]
    );
}

/// A streamed PATCH of a large blob, then a ranged GET of it.
#[tokio::test]
async fn streamed_upload_of_a_large_blob_and_range_get() {
    let server = FaultServer::start(FaultConfig::new());
    let len = 100 * 1024 * 1024 + 7;
    let bytes = Bytes::from(blob(len, 4));
    let digest = Digest::of(&bytes);
    let loc = open_session(&server, "big").await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..len)
        .step_by(1 << 20)
        .map(|o| Ok(bytes.slice(o..(o + (1 << 20)).min(len))))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = client().patch(&loc).body(body).send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), format!("0-{}", len - 1));
    let put = with_query(
        &server,
        &header(&r, "location"),
        "digest",
        &digest.to_string(),
    );
    assert_eq!(client().put(put).send().await.unwrap().status(), 201);
    assert_eq!(server.upload_bytes(), len as u64);
    assert_eq!(server.blob(&digest).unwrap().len(), len);

    let url = server.url(&format!("/v2/big/blobs/{digest}"));
    let start = len - 5000;
    let r = client()
        .get(&url)
        .header("range", format!("bytes={start}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "content-range"),
        format!("bytes {start}-{}/{len}", len - 1)
    );
    assert_eq!(r.bytes().await.unwrap(), bytes.slice(start..));
    let r = client()
        .get(&url)
        .header("range", format!("bytes={len}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
}

#[tokio::test]
async fn cancel_and_unknown_sessions() {
    let server = FaultServer::start(FaultConfig::new().relative_locations());
    let loc = open_session(&server, "r").await;
    assert!(loc.starts_with("/v2/r/blobs/uploads/"), "{loc}");
    let abs = with_query(&server, &loc, "x", "1");
    assert_eq!(server.open_uploads(), 1);
    let r = client().delete(&abs).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(server.open_uploads(), 0);
    let r = client().patch(&abs).body("x").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn rotating_locations_refuse_stale_ones() {
    let server = FaultServer::start(FaultConfig::new().rotate_upload_location());
    let first = open_session(&server, "r").await;
    let r = client().patch(&first).body("abc").send().await.unwrap();
    let second = header(&r, "location");
    assert_ne!(first, second);
    let r = client().patch(&first).body("def").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "BLOB_UPLOAD_INVALID");
    let r = client().patch(&second).body("def").send().await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "range"), "0-5");
}

#[tokio::test]
async fn cross_repository_mount() {
    let server = FaultServer::start(FaultConfig::new());
    let digest = server.put_blob_in("src", blob(5000, 5));
    let mount = |from: &str| {
        let q = if from.is_empty() {
            String::new()
        } else {
            format!("&from={from}")
        };
        client()
            .post(server.url(&format!("/v2/dst/blobs/uploads/?mount={digest}{q}")))
            .send()
    };
    let r = mount("elsewhere").await.unwrap();
    assert_eq!(r.status(), 202, "not in `from`: a session instead");
    let r = mount("").await.unwrap();
    assert_eq!(r.status(), 202, "mount without from is not supported");
    assert!(server.blob_in("dst", &digest).is_none());
    assert_eq!(server.open_uploads(), 2);
    let r = mount("src").await.unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
    assert!(server.blob_in("dst", &digest).is_some());
    assert_eq!(server.upload_bytes(), 0);
}

fn image_manifest(config: &Digest, layers: &[&Digest]) -> Vec<u8> {
    let desc = |d: &Digest| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d.to_string(), "size": 1});
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 1},
        "layers": layers.iter().map(|d| desc(d)).collect::<Vec<_>>(),
    });
    serde_json::to_vec_pretty(&m).unwrap()
}

async fn put_manifest(server: &FaultServer, repo: &str, reference: &str, bytes: &[u8]) -> Response {
    client()
        .put(server.url(&format!("/v2/{repo}/manifests/{reference}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn manifests_keep_exact_bytes_and_need_their_blobs() {
    let server = FaultServer::start(FaultConfig::new());
    let config = upload_monolithic(&server, "app", b"{}").await;
    let layer = Digest::of(b"layer");
    let manifest = image_manifest(&config, &[&layer]);
    let r = put_manifest(&server, "app", "v1", &manifest).await;
    assert_eq!(r.status(), 400);
    let body = json(r).await;
    assert_eq!(body["errors"][0]["code"], "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(body["errors"][0]["detail"]["missing"][0], layer.to_string());

    upload_monolithic(&server, "app", b"layer").await;
    let r = put_manifest(&server, "app", "v1", &manifest).await;
    assert_eq!(r.status(), 201);
    let digest = Digest::of(&manifest);
    assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
    assert_eq!(server.tag("app", "v1"), Some(digest.clone()));

    for reference in ["v1".to_string(), digest.to_string()] {
        let url = server.url(&format!("/v2/app/manifests/{reference}"));
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(
            header(&r, "content-type"),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(header(&r, "docker-content-digest"), digest.to_string());
        assert_eq!(r.bytes().await.unwrap(), manifest);
        let r = client().head(&url).send().await.unwrap();
        assert_eq!(header(&r, "content-length"), manifest.len().to_string());
    }
    let wrong = Digest::of(b"nope");
    let r = put_manifest(&server, "app", &wrong.to_string(), &manifest).await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");

    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": wrong.to_string(), "size": 1}]});
    let r = client()
        .put(server.url("/v2/app/manifests/multi"))
        .body(index.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        "MANIFEST_BLOB_UNKNOWN",
        "children must exist"
    );

    let r = client()
        .get(server.url("/v2/app/tags/list"))
        .send()
        .await
        .unwrap();
    let tags = json(r).await;
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let r = client()
        .get(server.url("/v2/app/manifests/v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn preloaded_content_and_wrong_digest_source() {
    let server = FaultServer::start(FaultConfig::new());
    let good = blob(4096, 6);
    let digest = server.put_corrupt_blob(&good);
    let m = server.put_manifest(
        "r",
        "t",
        b"{\"x\":1}",
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(server.tag("r", "t"), Some(m.clone()));
    assert_eq!(server.manifest("r", &m).unwrap().0, &b"{\"x\":1}"[..]);

    let url = server.url(&format!("/v2/any/blobs/{digest}"));
    let r = client().head(&url).send().await.unwrap();
    assert_eq!(header(&r, "content-length"), "4096");
    let served = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(served.len(), good.len());
    assert_ne!(
        Digest::of(&served),
        digest,
        "the bytes do not match their digest"
    );
}

#[tokio::test]
async fn status_faults_on_the_nth_request() {
    let digest_holder = FaultServer::start(
        FaultConfig::new()
            .fault(Fault::status(Kind::BlobGet, 2, 500))
            .fault(Fault::status(Kind::ManifestGet, 1, 503).times(2)),
    );
    let server = &digest_holder;
    let digest = server.put_blob(blob(10, 7));
    let url = server.url(&format!("/v2/r/blobs/{digest}"));
    let statuses = async {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(client().get(&url).send().await.unwrap().status().as_u16());
        }
        v
    };
    assert_eq!(statuses.await, [200, 500, 200]);
    server.put_manifest(
        "r",
        "t",
        b"{}",
        "application/vnd.oci.image.manifest.v1+json",
    );
    let murl = server.url("/v2/r/manifests/t");
    let r = client().get(&murl).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(error_code(r).await, "UNAVAILABLE");
    assert_eq!(client().get(&murl).send().await.unwrap().status(), 503);
    assert_eq!(client().get(&murl).send().await.unwrap().status(), 200);
    assert_eq!(server.count(Kind::BlobGet), 3);
    assert_eq!(server.count(Kind::ManifestGet), 3);

    // A fault added later counts from then on; a faulted upload's body still counts.
    server.add_fault(Fault::status(Kind::UploadPatch, 1, 500));
    let loc = open_session(server, "r").await;
    let r = client()
        .patch(&loc)
        .body(vec![0u8; 777])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(server.upload_bytes(), 777);
    let r = client()
        .patch(&loc)
        .body(vec![0u8; 3])
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "range"),
        "0-2",
        "the faulted chunk was not stored"
    );
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let server =
        FaultServer::start(FaultConfig::new().fault(Fault::too_many_requests(Kind::Ping, 1, 2)));
    let r = client().get(server.url("/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after"), "2");
    assert_eq!(error_code(r).await, "TOOMANYREQUESTS");
    assert_eq!(
        client()
            .get(server.url("/v2/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn get_body_dropped_after_n_bytes() {
    let cut = 200_000;
    let server =
        FaultServer::start(FaultConfig::new().fault(Fault::drop_body_after(Kind::BlobGet, 1, cut)));
    let bytes = blob(1_000_000, 8);
    let digest = server.put_blob(bytes.clone());
    let url = server.url(&format!("/v2/r/blobs/{digest}"));
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), "1000000");
    let mut stream = r.bytes_stream();
    let (mut got, mut failed) = (Vec::new(), false);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end in an error");
    assert_eq!(got, bytes[..cut as usize]);
    let full = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(full, bytes, "the next request is served in full");
}

#[tokio::test]
async fn redirected_blob_gets_do_not_receive_authorization() {
    let server = FaultServer::start(FaultConfig::new().basic_auth("u", "p").redirect_blob_gets());
    let bytes = blob(70_000, 9);
    let digest = server.put_blob(bytes.clone());
    let url = server.url(&format!("/v2/r/blobs/{digest}"));

    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "www-authenticate"), "Basic realm=\"fault\"");
    assert_eq!(server.unauthorized(), 1);

    // reqwest follows the 307 to another port and drops Authorization on the way.
    let r = client()
        .get(&url)
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), bytes);
    assert_eq!(server.count(Kind::RedirectedGet), 1);
    assert_eq!(server.redirected_with_authorization(), 0);

    // A client that leaks the header is caught.
    let manual = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = manual
        .get(&url)
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let to = header(&r, "location");
    assert!(to.contains(&server.redirect_addr().to_string()), "{to}");
    let r = manual
        .get(&to)
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(server.redirected_with_authorization(), 1);
    let redirected: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|l| l.redirected)
        .collect();
    assert_eq!(redirected.len(), 2);
    assert!(!redirected[0].authorization && redirected[1].authorization);
}

#[tokio::test]
async fn bearer_auth_with_password_and_identity_token() {
    let server = FaultServer::start(FaultConfig::new().bearer_auth("u", "p", Some("refresh-1")));
    let r = client()
        .get(server.url("/v2/team/app/tags/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let www = header(&r, "www-authenticate");
    let realm = server.url("/token");
    assert!(
        www.starts_with(&format!("Bearer realm=\"{realm}\"")),
        "{www}"
    );
    assert!(
        www.contains("scope=\"repository:team/app:pull,push\""),
        "{www}"
    );

    let r = client()
        .get(&realm)
        .basic_auth("u", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(&realm)
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    let token = json(r).await;
    let token = token["token"].as_str().unwrap().to_string();
    let r = client()
        .get(server.url("/v2/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "refresh-1"),
        ("service", "fault-registry"),
    ];
    let r = client()
        .request(Method::POST, &realm)
        .form(&form)
        .send()
        .await
        .unwrap();
    let token = json(r).await;
    let token = token["access_token"].as_str().unwrap();
    let r = client()
        .get(server.url("/v2/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(server.count(Kind::Token), 3);
}

#[tokio::test]
async fn patch_body_dropped_after_n_bytes_then_resumed() {
    let server = FaultServer::start(FaultConfig::new().fault(Fault::drop_request_after(
        Kind::UploadPatch,
        1,
        300_000,
    )));
    let bytes = blob(1_000_000, 10);
    let digest = Digest::of(&bytes);
    let loc = open_session(&server, "r").await;
    let r = client().patch(&loc).body(bytes.clone()).send().await;
    assert!(r.is_err(), "the connection is dropped without an answer");

    let r = client().get(&loc).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        header(&r, "range"),
        "0-299999",
        "the received part was kept"
    );
    let r = client()
        .patch(&loc)
        .header("content-range", "300000-999999")
        .body(bytes[300_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let put = with_query(
        &server,
        &header(&r, "location"),
        "digest",
        &digest.to_string(),
    );
    assert_eq!(client().put(put).send().await.unwrap().status(), 201);
    assert_eq!(server.blob_in("r", &digest).unwrap(), bytes);
    assert_eq!(server.upload_bytes(), 1_000_000);
    let first_patch = server
        .requests()
        .into_iter()
        .find(|l| l.kind == Kind::UploadPatch)
        .unwrap();
    assert_eq!((first_patch.status, first_patch.body_bytes), (0, 300_000));
}
