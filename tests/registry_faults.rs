//! What a real registry will not do on demand, from a scripted server: redirects and upload
//! sessions on another host, oversized or lying manifests, HEADs without digests, paginated tags.
mod registry_common;
mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use ferry::error::Error;
use ferry::manifest::{self, RawManifest};
use ferry::store::registry::{RegistryClient, RegistryOptions, RetryPolicy};
use ferry::store::{Store, Target};
use registry_common::scripted::*;
use registry_common::*;
use support::token_server::full;

#[tokio::test]
async fn redirected_blob_reads_never_carry_credentials_elsewhere() {
    let data = bytes_of(3, 50_000);
    let d2 = data.clone();
    let (storage, storage_log) = scripted(move |_, _| status(200).body(full(d2.clone())).unwrap());
    let target = storage.url("/bucket/blob?X-Amz-Signature=topsecret");
    let (reg, reg_log) = scripted(move |req, _| {
        if req.headers().get("authorization").is_none() {
            return status(401)
                .header(
                    "www-authenticate",
                    r#"Basic realm="scripted, with a comma""#,
                )
                .body(error_body("UNAUTHORIZED"))
                .unwrap();
        }
        status(307)
            .header("location", &target)
            .body(full(""))
            .unwrap()
    });
    let creds = TestCreds::new(&reg.addr.to_string(), "u", "p4ss");
    let c = client(&reg.addr.to_string(), Some(creds));
    let logs = Logs::capture();
    let blob = MemBlob::new(data.clone());
    let s = store(&c, "a/b");
    let got = read_all(s.open_blob(&blob.descriptor(""), 0).await.unwrap())
        .await
        .unwrap();
    assert_eq!(got, data);
    let text = logs.text();
    assert!(text.contains("redirect"), "{text}");
    assert!(
        !text.contains("p4ss") && !text.contains("dTpwNHNz") && !text.contains("topsecret"),
        "{text}"
    );
    let to_storage = storage_log.lock().unwrap().clone();
    assert_eq!(to_storage.len(), 1);
    assert!(
        to_storage[0].headers.get("authorization").is_none(),
        "{:?}",
        to_storage[0].headers
    );
    assert!(
        to_storage[0].uri.contains("X-Amz-Signature=topsecret"),
        "the query is kept"
    );
    assert!(reg_log
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .headers
        .get("authorization")
        .is_some());

    // A redirect to a host that is down: the error shows no signed query.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (reg2, _) = scripted(move |_, _| {
        status(302)
            .header(
                "location",
                format!("http://{dead}/b?X-Amz-Signature=topsecret"),
            )
            .body(full(""))
            .unwrap()
    });
    let c2 = client(&reg2.addr.to_string(), None);
    let e = store(&c2, "a/b")
        .open_blob(&blob.descriptor(""), 0)
        .await
        .err()
        .unwrap();
    assert!(!format!("{e} {e:?}").contains("topsecret"), "{e:?}");
}

#[tokio::test]
async fn oversized_and_lying_manifests_are_refused() {
    let m = small_manifest();
    let other = RawManifest::new(br#"{"schemaVersion":2,"config":{"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#.to_vec().into(), Some(manifest::OCI_MANIFEST)).unwrap();
    let (m2, other2) = (m.clone(), other.clone());
    let (srv, _) = scripted(move |req, _| {
        let p = req.uri().path();
        if p.ends_with("/manifests/big") {
            let big = vec![b' '; manifest::MAX_MANIFEST_BYTES + 1];
            return status(200)
                .header("content-type", manifest::OCI_MANIFEST)
                .body(full(big))
                .unwrap();
        }
        if p.ends_with("/manifests/endless") {
            // No Content-Length: the cap applies while reading.
            let chunks =
                futures::stream::iter((0..20).map(|_| {
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b' '; 1 << 20])))
                }));
            return status(200)
                .header("content-type", manifest::OCI_MANIFEST)
                .body(StreamBody::new(chunks).boxed())
                .unwrap();
        }
        if p.ends_with("/manifests/lying-header") {
            return status(200)
                .header("content-type", &m2.media_type)
                .header("docker-content-digest", other2.digest.to_string())
                .body(full(m2.bytes.clone()))
                .unwrap();
        }
        // Any digest: the wrong bytes.
        manifest_response(&other2)
    });
    let c = client(&srv.addr.to_string(), None);
    let s = store(&c, "a/b");
    for tag in ["big", "endless"] {
        let e = s.get_manifest(&Target::Tag(tag.into())).await.unwrap_err();
        assert!(matches!(e, Error::ManifestTooLarge { .. }), "{tag}: {e:?}");
    }
    let e = s
        .get_manifest(&Target::Digest(m.digest.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::DigestMismatch { expected, actual, .. } if expected == &m.digest && actual == &other.digest),
        "{e:?}"
    );
    let e = s
        .get_manifest(&Target::Tag("lying-header".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    let e = s
        .resolve(&Target::Digest(m.digest.clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
}

#[tokio::test]
async fn head_without_digest_falls_back_to_get() {
    let m = small_manifest();
    let m2 = m.clone();
    let (srv, log) = scripted(move |req, _| {
        if req.method() == hyper::Method::HEAD {
            return status(200)
                .header("content-type", &m2.media_type)
                .body(full(""))
                .unwrap();
        }
        status(200)
            .header("content-type", &m2.media_type)
            .body(full(m2.bytes.clone()))
            .unwrap()
    });
    let c = client(&srv.addr.to_string(), None);
    let d = store(&c, "a/b")
        .resolve(&Target::Tag("v1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d, m.descriptor());
    assert_eq!(
        (
            count(&log, "HEAD", "/manifests/v1"),
            count(&log, "GET", "/manifests/v1")
        ),
        (1, 1)
    );
    let accept = log.lock().unwrap()[0]
        .headers
        .get("accept")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(accept, manifest::ACCEPT);
}

#[tokio::test]
async fn upload_sessions_on_another_host_get_no_credentials() {
    let (upload_host, up_log) = scripted(|req, _| match req.method().as_str() {
        "PUT" => status(201).body(full("")).unwrap(),
        _ => status(204).body(full("")).unwrap(),
    });
    let session = upload_host.url("/upload/xyz?token=abc");
    let (reg, _) = scripted(move |req, _| {
        if req.headers().get("authorization").is_none() {
            return status(401)
                .header("www-authenticate", "Basic realm=r")
                .body(full(""))
                .unwrap();
        }
        status(202)
            .header("location", &session)
            .body(full(""))
            .unwrap()
    });
    let c = client(
        &reg.addr.to_string(),
        Some(TestCreds::new(&reg.addr.to_string(), "u", "pw")),
    );
    let blob = MemBlob::new("elsewhere");
    store(&c, "a/b")
        .put_blob(&blob.descriptor(""), &blob)
        .await
        .unwrap();
    let seen = up_log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .uri
            .starts_with("/upload/xyz?token=abc&digest=sha256%3A"),
        "{}",
        seen[0].uri
    );
    assert!(seen[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn tag_lists_follow_link_pages() {
    let (srv, log) = scripted(|req, _| {
        let q = req.uri().query().unwrap_or("");
        let (tags, next) = match q {
            "" => (
                vec!["a", "b"],
                Some("</v2/r/tags/list?last=b&n=2>; rel=\"next\""),
            ),
            "last=b&n=2" => (vec!["c", "d"], Some("<tags/list?last=d&n=2>; rel=\"next\"")),
            _ => (vec!["e"], None),
        };
        let mut r = status(200).header("content-type", "application/json");
        if let Some(l) = next {
            r = r.header("link", l);
        }
        r.body(full(
            serde_json::json!({"name": "r", "tags": tags}).to_string(),
        ))
        .unwrap()
    });
    let c = client(&srv.addr.to_string(), None);
    assert_eq!(
        store(&c, "r").list_tags().await.unwrap(),
        vec!["a", "b", "c", "d", "e"]
    );
    assert_eq!(count(&log, "GET", "/tags/list"), 3);
}

#[tokio::test]
async fn docker_hub_and_tls_options() {
    let hub = RegistryClient::new("docker.io", RegistryOptions::default()).unwrap();
    assert_eq!(
        (hub.host(), hub.api_host().as_str(), hub.scheme()),
        ("docker.io", "registry-1.docker.io", "https")
    );
    let forced = RegistryClient::new(
        "127.0.0.1:5000",
        RegistryOptions {
            plain_http: Some(false),
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    assert_eq!(forced.scheme(), "https");
    let remote = RegistryClient::new("registry.example:5000", RegistryOptions::default()).unwrap();
    assert_eq!(remote.scheme(), "https");
    let e = RegistryClient::new(
        "r.example",
        RegistryOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..RegistryOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    assert!(RegistryClient::new("bad host/", RegistryOptions::default()).is_err());
    let _ = RetryPolicy::none();
}
