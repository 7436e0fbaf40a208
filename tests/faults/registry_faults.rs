//! What a real registry will not do on demand, from the fault server: redirects and upload
//! sessions on another host, oversized or lying manifests, HEADs without digests, paginated tags.

use crate::registry_common::*;
use crate::support::fault_server::{FaultConfig, FaultServer, Kind, Quirks};
use ferry::error::Error;
use ferry::manifest::{self, RawManifest};
use ferry::store::registry::{RegistryClient, RegistryOptions, RetryPolicy};
use ferry::store::{Store, Target};

fn small_manifest() -> RawManifest {
    let cfg = MemBlob::new("{}").descriptor("application/vnd.oci.image.config.v1+json");
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": cfg, "layers": []});
    RawManifest::new(serde_json::to_vec(&body).unwrap().into(), None).unwrap()
}

#[tokio::test]
async fn redirected_blob_reads_never_carry_credentials_elsewhere() {
    let data = bytes_of(3, 50_000);
    let quirks = Quirks {
        basic_realm: Some("fault, with a comma".into()),
        redirect_query: Some("X-Amz-Signature=topsecret".into()),
        ..Quirks::default()
    };
    let reg = FaultServer::start(
        FaultConfig::new()
            .basic_auth("u", "p4ss")
            .redirect_blob_gets()
            .quirks(quirks),
    );
    reg.put_blob(data.clone());
    let creds = TestCreds::new(&reg.host(), "u", "p4ss");
    let c = client(&reg.host(), Some(creds));
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
    let log = reg.requests();
    let to_storage: Vec<_> = log.iter().filter(|l| l.redirected).collect();
    assert_eq!(to_storage.len(), 1);
    assert!(!to_storage[0].authorization, "{:?}", to_storage[0]);
    assert_eq!(reg.redirected_with_authorization(), 0);
    assert!(
        to_storage[0].uri.contains("X-Amz-Signature=topsecret"),
        "the query is kept"
    );
    let last_at_registry = log.iter().rev().find(|l| !l.redirected).unwrap();
    assert!(last_at_registry.authorization);

    // A redirect to a host that is down: the error shows no signed query.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let quirks = Quirks {
        redirect_to: Some(dead.to_string()),
        redirect_query: Some("X-Amz-Signature=topsecret".into()),
        ..Quirks::default()
    };
    let reg2 = FaultServer::start(FaultConfig::new().redirect_blob_gets().quirks(quirks));
    reg2.put_blob(data.clone());
    let c2 = client(&reg2.host(), None);
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
    let srv = FaultServer::start(FaultConfig::new());
    let big = vec![b' '; manifest::MAX_MANIFEST_BYTES + 1];
    srv.put_manifest("a/b", "big", &big, manifest::OCI_MANIFEST);
    // Any digest: the wrong bytes, named by their own digest.
    let wrong = (&other.bytes[..], other.media_type.as_str());
    srv.put_manifest_claiming("a/b", &m.digest, None, wrong, &other.digest);
    // The right bytes, named by another digest.
    let lying = (&m.bytes[..], m.media_type.as_str());
    srv.put_manifest_claiming(
        "a/lying",
        &m.digest,
        Some("lying-header"),
        lying,
        &other.digest,
    );
    // No Content-Length: the cap applies while reading.
    let endless = FaultServer::start(FaultConfig::new().quirks(Quirks {
        no_content_length: true,
        ..Quirks::default()
    }));
    endless.put_manifest(
        "a/b",
        "endless",
        &vec![b' '; 20 << 20],
        manifest::OCI_MANIFEST,
    );
    let s = store(&client(&srv.host(), None), "a/b");
    let e = s
        .get_manifest(&Target::Tag("big".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ManifestTooLarge { .. }), "big: {e:?}");
    let s2 = store(&client(&endless.host(), None), "a/b");
    let e = s2
        .get_manifest(&Target::Tag("endless".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::ManifestTooLarge { .. }),
        "endless: {e:?}"
    );
    assert!(
        endless.requests()[0].status == 200 && endless.sent_bytes() < 20 << 20,
        "streamed without a length, not read to its end"
    );
    let e = s
        .get_manifest(&Target::Digest(m.digest.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::DigestMismatch { expected, actual, .. } if expected == &m.digest && actual == &other.digest),
        "{e:?}"
    );
    let e = store(&client(&srv.host(), None), "a/lying")
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
    let srv = FaultServer::start(FaultConfig::new().quirks(Quirks {
        head_without_digest: true,
        ..Quirks::default()
    }));
    srv.put_manifest("a/b", "v1", &m.bytes, &m.media_type);
    let c = client(&srv.host(), None);
    let d = store(&c, "a/b")
        .resolve(&Target::Tag("v1".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d, m.descriptor());
    assert_eq!(
        (srv.count(Kind::ManifestHead), srv.count(Kind::ManifestGet)),
        (1, 1)
    );
    let accept = srv.requests()[0].accept.clone().unwrap();
    assert_eq!(accept, manifest::ACCEPT);
}

#[tokio::test]
async fn upload_sessions_on_another_host_get_no_credentials() {
    // Like distribution, the registry ignores a single POST's body and opens a session.
    let quirks = Quirks {
        uploads_elsewhere: Some("token=abc".into()),
        no_single_post: true,
        ..Quirks::default()
    };
    let reg = FaultServer::start(FaultConfig::new().basic_auth("u", "pw").quirks(quirks));
    let c = client(&reg.host(), Some(TestCreds::new(&reg.host(), "u", "pw")));
    let blob = MemBlob::new("elsewhere");
    let desc = blob.descriptor("");
    store(&c, "a/b").put_blob(&desc, &blob).await.unwrap();
    let seen: Vec<_> = reg
        .requests()
        .into_iter()
        .filter(|l| l.redirected)
        .collect();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0]
            .uri
            .starts_with("/v2/a/b/blobs/uploads/upload-1?_state=0&token=abc&digest=sha256%3A"),
        "{}",
        seen[0].uri
    );
    assert!(!seen[0].authorization);
    assert_eq!(reg.redirected_with_authorization(), 0);
    assert!(reg.blob_in("a/b", &desc.digest).is_some());
}

#[tokio::test]
async fn tag_lists_follow_link_pages() {
    let srv = FaultServer::start(FaultConfig::new().quirks(Quirks {
        tags_page_size: Some(2),
        ..Quirks::default()
    }));
    let m = small_manifest();
    for t in ["a", "b", "c", "d", "e"] {
        srv.put_manifest("r", t, &m.bytes, &m.media_type);
    }
    let c = client(&srv.host(), None);
    assert_eq!(
        store(&c, "r").list_tags().await.unwrap(),
        vec!["a", "b", "c", "d", "e"]
    );
    assert_eq!(srv.count(Kind::TagsList), 3);
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
