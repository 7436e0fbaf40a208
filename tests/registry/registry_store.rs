//! The registry store against the real docker-registry: blobs, the four manifest types, tags,
//! mounts, and uploads whose bytes do not match their descriptor.

use crate::registry_common::*;
use crate::support::registry::Registry;
use ferry::error::Error;
use ferry::manifest::Descriptor;
use ferry::manifest::{self, RawManifest};
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore, Verify};
use ferry::store::{Store, Target};

fn blob_on_disk(reg: &Registry, digest: &ferry::Digest) -> bool {
    let hex = digest.hex();
    reg.storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
        .exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_round_trip_with_offsets() {
    let reg = Registry::start();
    let c = client(&reg.addr, None);
    let s = store(&c, "team/blobs");
    let blob = MemBlob::new(bytes_of(1, 1_000_003));
    let desc = blob.descriptor("application/octet-stream");

    assert!(!s.has_blob(&desc).await.unwrap());
    assert_eq!(s.put_blob(&desc, &blob).await.unwrap(), desc.size);
    assert!(s.has_blob(&desc).await.unwrap());
    assert_eq!(*blob.opens.lock().unwrap(), vec![0]);

    let all = read_all(s.open_blob(&desc, 0).await.unwrap())
        .await
        .unwrap();
    assert_eq!(all, blob.bytes);
    let tail = read_all(s.open_blob(&desc, 12_345).await.unwrap())
        .await
        .unwrap();
    assert_eq!(tail, blob.bytes[12_345..]);
    let none = read_all(s.open_blob(&desc, desc.size).await.unwrap())
        .await
        .unwrap();
    assert!(none.is_empty());

    let st = c.stats();
    assert_eq!(st.blob_bytes_uploaded, desc.size);
    assert_eq!(st.blob_uploads, 1);
    assert_eq!(st.blob_gets, 2, "{st:?}");
    assert_eq!(st.blob_bytes_downloaded, desc.size + desc.size - 12_345);
    // The Range request got a 206 from the registry (its access log is written as it goes:
    // give it a moment under load).
    let ranged = || log_lines(&reg.log(), &["GET /v2/team/blobs/blobs/", "\" 206 "]).len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ranged() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ranged(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_blob_uploads() {
    let reg = Registry::start();
    let s = store(&client(&reg.addr, None), "team/empty");
    let blob = MemBlob::new(bytes::Bytes::new());
    let desc = blob.descriptor("application/octet-stream");
    assert_eq!(s.put_blob(&desc, &blob).await.unwrap(), 0);
    assert!(s.has_blob(&desc).await.unwrap());
    assert!(read_all(s.open_blob(&desc, 0).await.unwrap())
        .await
        .unwrap()
        .is_empty());
}

async fn check_round_trip(s: &RegistryStore, m: &RawManifest, tags: &[String]) {
    s.put_manifest(m, tags).await.unwrap();
    let by_digest = s
        .get_manifest(&Target::Digest(m.digest.clone()))
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, m.bytes, "bytes kept exactly");
    assert_eq!(by_digest.media_type, m.media_type);
    assert_eq!(by_digest.digest, m.digest);
    let gets = s.client().stats().manifest_gets;
    let d = s
        .resolve(&Target::Digest(m.digest.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d, m.descriptor());
    assert_eq!(
        s.client().stats().manifest_gets,
        gets,
        "resolve is a HEAD only"
    );
    for t in tags {
        let by_tag = s.get_manifest(&Target::Tag(t.clone())).await.unwrap();
        assert_eq!(by_tag.bytes, m.bytes);
        let d = s.resolve(&Target::Tag(t.clone())).await.unwrap().unwrap();
        assert_eq!(
            (d.digest, d.media_type),
            (m.digest.clone(), m.media_type.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_four_manifest_types_round_trip() {
    let reg = Registry::start();
    let c = client(&reg.addr, None);
    let s = store(&c, "team/app");
    let tags = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();

    let d1 = push_image(&s, manifest::DOCKER_MANIFEST, 1).await;
    let d2 = push_image(&s, manifest::DOCKER_MANIFEST, 2).await;
    check_round_trip(&s, &d1, &tags(&["docker-v2"])).await;
    let list = index_of(manifest::DOCKER_MANIFEST_LIST, &[&d1, &d2]);
    check_round_trip(&s, &list, &tags(&["docker-list", "latest"])).await;

    let o1 = push_image(&s, manifest::OCI_MANIFEST, 3).await;
    let o2 = push_image(&s, manifest::OCI_MANIFEST, 4).await;
    check_round_trip(&s, &o1, &tags(&["oci-manifest"])).await;
    let index = index_of(manifest::OCI_INDEX, &[&o1, &o2]);
    check_round_trip(&s, &index, &tags(&["oci-index", "1.0"])).await;

    let mut listed = s.list_tags().await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        tags(&[
            "1.0",
            "docker-list",
            "docker-v2",
            "latest",
            "oci-index",
            "oci-manifest"
        ])
    );
    // Re-pointing a tag moves it.
    s.put_manifest(&index, &tags(&["latest"])).await.unwrap();
    let d = s
        .resolve(&Target::Tag("latest".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.digest, index.digest);
    assert!(c.stats().manifest_puts >= 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_are_reported_as_missing() {
    let reg = Registry::start();
    let s = store(&client(&reg.addr, None), "team/none");
    let blob = MemBlob::new("never pushed");
    let desc = blob.descriptor("application/octet-stream");
    assert!(!s.has_blob(&desc).await.unwrap());
    let e = s.open_blob(&desc, 0).await.err().unwrap();
    assert!(
        matches!(e, Error::NotFound { .. }) && e.is_not_found(),
        "{e}"
    );
    let e = s
        .get_manifest(&Target::Tag("nope".into()))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(
        e.to_string().contains("nope") && e.to_string().contains("team/none"),
        "{e}"
    );
    assert!(s
        .resolve(&Target::Tag("nope".into()))
        .await
        .unwrap()
        .is_none());
    assert!(s.list_tags().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_naming_a_missing_blob_is_refused_with_the_registry_codes() {
    let reg = Registry::start();
    let c = client(&reg.addr, None);
    let s = store(&c, "team/broken");
    let ghost = MemBlob::new("not uploaded").descriptor("application/vnd.oci.image.config.v1+json");
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": ghost, "layers": []});
    let m = RawManifest::new(serde_json::to_vec(&body).unwrap().into(), None).unwrap();
    let e = s.put_manifest(&m, &[]).await.unwrap_err();
    let Error::Registry {
        status,
        codes,
        attempts,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*status, *attempts), (400, 1), "a 400 is not retried");
    assert!(
        codes.iter().any(|c| c.code == "MANIFEST_BLOB_UNKNOWN"),
        "{codes:?}"
    );
    assert!(e.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{e}");
    assert_eq!(c.stats().retries, 0);
}

/// Sources whose bytes differ from the descriptor: same size, shorter, longer.
fn wrong_sources(good: &MemBlob) -> [(&'static str, bytes::Bytes); 3] {
    [
        ("same size, other bytes", bytes_of(8, 300_000)),
        ("shorter", good.bytes.slice(..299_999)),
        (
            "longer",
            [good.bytes.clone(), bytes::Bytes::from_static(b"x")]
                .concat()
                .into(),
        ),
    ]
}

/// After the wrong uploads: nothing stored, every failed session cancelled, nothing committed,
/// and the right bytes still go through.
async fn assert_nothing_stored(
    reg: &Registry,
    s: &RegistryStore,
    desc: &Descriptor,
    good: &MemBlob,
) {
    assert!(!s.has_blob(desc).await.unwrap());
    assert!(!blob_on_disk(reg, &desc.digest));
    let log = reg.log();
    assert_eq!(
        log_lines(&log, &["DELETE /v2/team/verify/blobs/uploads/"]).len(),
        3,
        "{log}"
    );
    assert!(
        log_lines(&log, &["PUT /v2/team/verify/blobs/uploads/", "\" 201 "]).is_empty(),
        "{log}"
    );
    s.put_blob(desc, good).await.unwrap();
    assert!(s.has_blob(desc).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_bytes_that_do_not_match_the_descriptor_is_refused_with_verify_always() {
    let reg = Registry::start();
    let opts = RegistryOptions {
        verify: Verify::Always,
        ..options(None)
    };
    let s = store(
        &RegistryClient::new(&reg.addr, opts).unwrap(),
        "team/verify",
    );
    let good = MemBlob::new(bytes_of(7, 300_000));
    let desc = good.descriptor("application/octet-stream");
    for (what, wrong) in wrong_sources(&good) {
        let source = MemBlob::new(wrong.clone());
        let e = s.put_blob(&desc, &source).await.unwrap_err();
        let Error::DigestMismatch {
            expected, actual, ..
        } = &e
        else {
            panic!("{what}: {e:?}")
        };
        assert_eq!(expected, &desc.digest, "{what}");
        assert_ne!(actual, &desc.digest, "{what}");
        let msg = e.to_string();
        assert!(
            msg.contains(&desc.digest.to_string()) && msg.contains(&actual.to_string()),
            "{msg}"
        );
        if what != "longer" {
            assert_eq!(
                actual,
                &ferry::Digest::of(&wrong),
                "{what}: names the digest of what it got"
            );
        }
        assert_eq!(
            *source.opens.lock().unwrap(),
            vec![0],
            "{what}: a mismatch is not retried"
        );
        assert!(!s.has_blob(&source.descriptor("")).await.unwrap(), "{what}");
        assert!(!blob_on_disk(&reg, &ferry::Digest::of(&wrong)), "{what}");
    }
    assert_nothing_stored(&reg, &s, &desc, &good).await;
}

/// The default (`--verify auto`): ferry counts the bytes and the registry checks the digest
/// when the upload is committed, so other bytes of the right size are refused by the registry
/// (`DIGEST_INVALID`, not retried, exit 5), and a wrong size is caught by ferry's count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_of_bytes_that_do_not_match_the_descriptor_is_refused_by_default() {
    let reg = Registry::start();
    let s = store(&client(&reg.addr, None), "team/verify");
    let good = MemBlob::new(bytes_of(7, 300_000));
    let desc = good.descriptor("application/octet-stream");
    for (what, wrong) in wrong_sources(&good) {
        let source = MemBlob::new(wrong.clone());
        let e = s.put_blob(&desc, &source).await.unwrap_err();
        match what {
            "same size, other bytes" => {
                assert!(e.has_code(ferry::error::DIGEST_INVALID), "{what}: {e:?}");
                assert_eq!(e.status(), Some(400), "{what}");
                assert!(e.to_string().contains(&desc.digest.to_string()), "{e}");
            }
            _ => {
                let Error::BlobSizeMismatch {
                    digest,
                    expected,
                    actual,
                    ..
                } = &e
                else {
                    panic!("{what}: {e:?}")
                };
                assert_eq!((digest, *expected), (&desc.digest, 300_000), "{what}");
                assert_eq!(*actual, wrong.len() as u64, "{what}");
            }
        }
        assert_eq!(
            *source.opens.lock().unwrap(),
            vec![0],
            "{what}: a wrong source is not read again"
        );
        assert!(!blob_on_disk(&reg, &ferry::Digest::of(&wrong)), "{what}");
    }
    assert_nothing_stored(&reg, &s, &desc, &good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_between_repositories_sends_no_blob_bytes() {
    let reg = Registry::start();
    let seed = store(&client(&reg.addr, None), "team/base");
    let m = push_image(&seed, manifest::OCI_MANIFEST, 9).await;
    let ferry::manifest::Children::Image { config, layers } = m.children().unwrap() else {
        panic!()
    };

    let c = client(&reg.addr, None);
    let dst = store(&c, "team/derived");
    for d in std::iter::once(&config).chain(&layers) {
        assert!(
            !dst.has_blob(d).await.unwrap(),
            "a blob of another repository is 404 here"
        );
        assert!(dst.mount_blob(d, "team/base").await.unwrap());
        assert!(dst.has_blob(d).await.unwrap());
    }
    dst.put_manifest(&m, &["mounted".into()]).await.unwrap();
    let st = c.stats();
    assert_eq!((st.mounts_attempted, st.mounts_succeeded), (2, 2));
    assert_eq!((st.blob_uploads, st.blob_bytes_uploaded), (0, 0), "{st:?}");
    let log = reg.log();
    assert_eq!(
        log_lines(
            &log,
            &["POST /v2/team/derived/blobs/uploads/?", "mount=", "\" 201 "]
        )
        .len(),
        2,
        "{log}"
    );
    assert!(
        log_lines(&log, &["PATCH /v2/team/derived/"]).is_empty(),
        "{log}"
    );
    assert!(
        log_lines(&log, &["PUT /v2/team/derived/blobs/"]).is_empty(),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_of_an_unknown_blob_returns_false_and_cancels_the_session() {
    let reg = Registry::start();
    let c = client(&reg.addr, None);
    let dst = store(&c, "team/dst");
    let unknown = MemBlob::new("nobody has this").descriptor("application/octet-stream");
    assert!(!dst.mount_blob(&unknown, "team/src").await.unwrap());
    assert!(
        !dst.mount_blob(&unknown, "team/dst").await.unwrap(),
        "mount from itself"
    );
    assert!(!dst.has_blob(&unknown).await.unwrap());
    let log = reg.log();
    assert_eq!(
        log_lines(&log, &["POST /v2/team/dst/blobs/uploads/?", "\" 202 "]).len(),
        1,
        "{log}"
    );
    assert_eq!(
        log_lines(&log, &["DELETE /v2/team/dst/blobs/uploads/", "\" 204 "]).len(),
        1,
        "{log}"
    );
    assert_eq!(c.stats().mounts_succeeded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_locations() {
    let reg = Registry::start();
    let c = client(&reg.addr, None);
    c.ping().await.unwrap();
    assert_eq!(
        c.scheme(),
        "http",
        "loopback registries are plain HTTP by default"
    );
    assert_eq!(c.host(), reg.addr);
    let s = store(&c, "a/b");
    assert_eq!(s.location(), format!("{}/a/b", reg.addr));
    let loc = s.repo_location().unwrap();
    assert_eq!(
        (loc.registry, loc.repository),
        (reg.addr.clone(), "a/b".to_string())
    );
}
