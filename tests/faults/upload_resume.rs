//! The upload engine against the fault server, driven through `RegistryStore::upload_with`:
//! resume inside a chunk, a lost session, a 416 for a chunk's size, bounded retries, wrong bytes,
//! cancellation when the upload is dropped, streamed resume, the announced minimum chunk length,
//! single-request uploads, and downloads resumed with `Range` (or re-read when it is ignored).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::registry_common::*;
use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind, Logged, Quirks};
use ferry::error::Error;
use ferry::store::registry::{
    RegistryClient, RegistryOptions, RegistryStore, UploadStrategy, Verify,
};
use ferry::store::{BlobSource, BlobStream, Store, StoreBlob};

const MIB: u64 = 1024 * 1024;

fn setup(cfg: FaultConfig) -> (FaultServer, RegistryStore) {
    let srv = FaultServer::start(cfg);
    let c = client(&srv.host(), None);
    (srv, store(&c, "team/app"))
}

fn patches(srv: &FaultServer) -> Vec<Logged> {
    srv.requests()
        .into_iter()
        .filter(|l| l.kind == Kind::UploadPatch)
        .collect()
}

fn ranges(log: &[Logged]) -> Vec<String> {
    log.iter()
        .map(|l| l.content_range.clone().unwrap_or_default())
        .collect()
}

/// With `--verify always` the hash must cover every byte, so a resume re-reads the source from
/// the last acknowledged chunk and re-hashes (without sending) up to the registry's offset.
#[tokio::test]
async fn a_resume_with_verify_always_rehashes_from_the_acknowledged_chunk() {
    let cut = 3 * MIB + 12_345;
    let cfg = FaultConfig::new().fault(Fault::drop_request_after(Kind::UploadPatch, 2, cut));
    let srv = FaultServer::start(cfg);
    let opts = RegistryOptions {
        verify: Verify::Always,
        ..options(None)
    };
    let s = store(&RegistryClient::new(&srv.host(), opts).unwrap(), "team/app");
    let blob = MemBlob::new(bytes_of(1, (20 * MIB + 7) as usize));
    let desc = blob.descriptor("application/octet-stream");
    let r = s
        .upload_with(&desc, &blob, UploadStrategy::Chunked, 4 * MIB)
        .await
        .unwrap();
    assert_eq!(r.resume_offsets, vec![4 * MIB + cut]);
    assert_eq!(*blob.opens.lock().unwrap(), vec![0, 4 * MIB]);
    assert_eq!(srv.blob_in("team/app", &desc.digest).unwrap(), blob.bytes);
    assert!(
        srv.upload_bytes() < desc.size + 4 * MIB,
        "re-hashed bytes are not re-sent"
    );
}

#[tokio::test]
async fn a_chunk_cut_mid_body_resumes_where_the_registry_stands() {
    let cut = 3 * MIB + 12_345;
    let cfg = FaultConfig::new()
        .rotate_upload_location()
        .fault(Fault::drop_request_after(Kind::UploadPatch, 2, cut));
    let (srv, s) = setup(cfg);
    let blob = MemBlob::new(bytes_of(1, (20 * MIB + 7) as usize));
    let desc = blob.descriptor("application/octet-stream");
    let r = s
        .upload_with(&desc, &blob, UploadStrategy::Chunked, 4 * MIB)
        .await
        .unwrap();
    let at = 4 * MIB + cut;
    assert_eq!(r.strategy, UploadStrategy::Chunked);
    assert_eq!(r.resume_offsets, vec![at]);
    assert_eq!(r.restarts, 0);
    // Re-read from the registry's offset (nothing to re-hash with the default `--verify auto`).
    assert_eq!(*blob.opens.lock().unwrap(), vec![0, at]);
    assert_eq!(srv.blob_in("team/app", &desc.digest).unwrap(), blob.bytes);
    assert_eq!(srv.open_uploads(), 0);
    let got = ranges(&patches(&srv));
    let e = |a: u64, b: u64| format!("{a}-{}", b - 1);
    assert_eq!(
        got,
        [
            e(0, 4 * MIB),
            e(4 * MIB, 8 * MIB),
            e(at, at + 4 * MIB),
            e(at + 4 * MIB, at + 8 * MIB),
            e(at + 8 * MIB, at + 12 * MIB),
        ],
        "the last chunk rides on the PUT"
    );
    let st = s.client().stats();
    assert_eq!(
        (st.upload_resumes, st.upload_resume_offsets.clone()),
        (1, vec![at])
    );
    assert_eq!((st.uploads_chunked, st.retries), (1, 1), "{st:?}");
    assert_eq!(
        srv.count(Kind::UploadStatus),
        1,
        "asked once where the upload stands"
    );
}

#[tokio::test]
async fn a_lost_session_starts_over_in_a_new_one() {
    let (srv, s) = setup(FaultConfig::new().fault(Fault::status(Kind::UploadPatch, 2, 404)));
    let blob = MemBlob::new(bytes_of(2, (10 * MIB) as usize));
    let desc = blob.descriptor("");
    let r = s
        .upload_with(&desc, &blob, UploadStrategy::Chunked, 4 * MIB)
        .await
        .unwrap();
    assert_eq!((r.restarts, r.resume_offsets.len()), (1, 0));
    assert_eq!(*blob.opens.lock().unwrap(), vec![0, 0]);
    assert_eq!(srv.count(Kind::UploadStart), 2);
    assert_eq!(srv.blob_in("team/app", &desc.digest).unwrap(), blob.bytes);
    assert_eq!(srv.open_uploads(), 0, "the old session was cancelled too");
    assert_eq!(s.client().stats().upload_restarts, 1);
}

#[tokio::test]
async fn a_416_for_the_right_offset_halves_the_chunk_size() {
    let (srv, s) = setup(FaultConfig::new().fault(Fault::status(Kind::UploadPatch, 1, 416)));
    let blob = MemBlob::new(bytes_of(3, (9 * MIB) as usize));
    let desc = blob.descriptor("");
    let r = s
        .upload_with(&desc, &blob, UploadStrategy::Chunked, 4 * MIB)
        .await
        .unwrap();
    assert_eq!(r.chunk_size, Some(2 * MIB));
    assert_eq!(
        ranges(&patches(&srv)),
        [
            "0-4194303",
            "0-2097151",
            "2097152-4194303",
            "4194304-6291455",
            "6291456-8388607"
        ]
    );
    assert_eq!(srv.blob_in("team/app", &desc.digest).unwrap(), blob.bytes);
    assert_eq!(s.client().upload_profile().max_chunk, Some(2 * MIB));
    assert_eq!(s.client().stats().chunk_size_changes, 1);
}

#[tokio::test]
async fn retries_are_bounded_per_chunk_and_the_session_is_cancelled() {
    let cfg = FaultConfig::new().fault(Fault::status(Kind::UploadPatch, 2, 503).times(u64::MAX));
    let (srv, s) = setup(cfg);
    let logs = Logs::capture();
    let blob = MemBlob::new(bytes_of(4, (6 * MIB) as usize));
    let desc = blob.descriptor("");
    let e = s
        .upload_with(&desc, &blob, UploadStrategy::Chunked, 2 * MIB)
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
    assert!(e.to_string().contains("after 3 attempts"), "{e}");
    assert_eq!(srv.count(Kind::UploadPatch), 4, "1 accepted, 3 attempts");
    assert_eq!(srv.count(Kind::UploadDelete), 1);
    assert_eq!(srv.open_uploads(), 0);
    let text = logs.text();
    let retries: Vec<&str> = text.lines().filter(|l| l.contains("retrying")).collect();
    assert_eq!(retries.len(), 2, "{text}");
    assert!(
        retries
            .iter()
            .all(|l| l.contains(&srv.host()) && l.contains("upload blob") && l.contains("503")),
        "{retries:?}"
    );
}

#[tokio::test]
async fn wrong_bytes_in_a_chunked_upload_commit_nothing_with_verify_always() {
    let srv = FaultServer::start(FaultConfig::new());
    let opts = RegistryOptions {
        verify: Verify::Always,
        ..options(None)
    };
    let s = store(&RegistryClient::new(&srv.host(), opts).unwrap(), "team/app");
    let good = bytes_of(5, (5 * MIB) as usize);
    let mut wrong = good.to_vec();
    *wrong.last_mut().unwrap() ^= 1;
    let desc = MemBlob::new(good).descriptor("");
    let source = MemBlob::new(wrong.clone());
    let e = s
        .upload_with(&desc, &source, UploadStrategy::Chunked, 2 * MIB)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::DigestMismatch { actual, .. } if *actual == ferry::Digest::of(&wrong)),
        "{e:?}"
    );
    assert_eq!(*source.opens.lock().unwrap(), vec![0], "not retried");
    assert!(srv.blob(&desc.digest).is_none());
    assert_eq!(srv.open_uploads(), 0);
    assert!(
        srv.upload_bytes() < desc.size,
        "the last frame was held back"
    );
}

/// By default the registry's check at commit stops wrong bytes: the closing `PUT` is refused
/// with `DIGEST_INVALID`, which is final (no other strategy, no retry), and nothing is stored.
#[tokio::test]
async fn wrong_bytes_in_a_chunked_upload_are_refused_at_commit_by_default() {
    let (srv, s) = setup(FaultConfig::new());
    let good = bytes_of(5, (5 * MIB) as usize);
    let mut wrong = good.to_vec();
    *wrong.last_mut().unwrap() ^= 1;
    let desc = MemBlob::new(good).descriptor("");
    let source = MemBlob::new(wrong.clone());
    let e = s
        .upload_with(&desc, &source, UploadStrategy::Chunked, 2 * MIB)
        .await
        .unwrap_err();
    assert!(e.has_code(ferry::error::DIGEST_INVALID), "{e:?}");
    assert_eq!(*source.opens.lock().unwrap(), vec![0], "not retried");
    assert_eq!(srv.count(Kind::UploadPut), 1, "one commit, refused");
    assert!(srv.blob(&desc.digest).is_none());
    assert!(srv.blob(&ferry::Digest::of(&wrong)).is_none());
    assert_eq!(srv.open_uploads(), 0);
}

async fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A source that sends `first` bytes, then never another.
struct Stalls {
    first: Bytes,
}

#[async_trait]
impl BlobSource for Stalls {
    async fn open(&self, _offset: u64) -> ferry::Result<BlobStream> {
        let head = futures::stream::iter([Ok(self.first.clone())]);
        Ok(head.chain(futures::stream::pending()).boxed())
    }
}

#[tokio::test]
async fn a_dropped_upload_cancels_its_session() {
    let (srv, s) = setup(FaultConfig::new());
    let source = Stalls {
        first: bytes_of(6, MIB as usize),
    };
    let desc = MemBlob::new(bytes_of(6, (8 * MIB) as usize)).descriptor("");
    let task = tokio::spawn(async move {
        let _ = s
            .upload_with(&desc, &source, UploadStrategy::Chunked, 4 * MIB)
            .await;
    });
    wait_for("the upload started", || srv.upload_bytes() >= MIB).await;
    task.abort();
    let _ = task.await;
    wait_for("the session was cancelled", || srv.open_uploads() == 0).await;
    assert_eq!(srv.count(Kind::UploadDelete), 1);
}

#[tokio::test]
async fn streamed_uploads_resume_without_content_range() {
    let cfg = FaultConfig::new().fault(Fault::drop_request_after(Kind::UploadPatch, 1, 5 * MIB));
    let (srv, s) = setup(cfg);
    let blob = MemBlob::new(bytes_of(7, (12 * MIB) as usize));
    let desc = blob.descriptor("");
    let r = s
        .upload_with(&desc, &blob, UploadStrategy::Streamed, 0)
        .await
        .unwrap();
    assert_eq!(
        (r.strategy, r.resume_offsets.clone()),
        (UploadStrategy::Streamed, vec![5 * MIB])
    );
    let p = patches(&srv);
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|l| l.content_range.is_none()), "{p:?}");
    assert_eq!(p[1].content_length, Some(7 * MIB));
    let put = srv
        .requests()
        .into_iter()
        .find(|l| l.kind == Kind::UploadPut)
        .unwrap();
    assert_eq!((put.status, put.body_bytes), (201, 0));
    assert_eq!(srv.blob_in("team/app", &desc.digest).unwrap(), blob.bytes);
    assert_eq!(s.client().stats().uploads_streamed, 1);
}

#[tokio::test]
async fn the_announced_minimum_chunk_length_is_honoured() {
    let (srv, s) = setup(FaultConfig::new().chunk_min_length(3 * MIB));
    let blob = MemBlob::new(bytes_of(8, (10 * MIB) as usize));
    let desc = blob.descriptor("");
    let r = s
        .upload_with(&desc, &blob, UploadStrategy::Chunked, MIB)
        .await
        .unwrap();
    let p = patches(&srv);
    assert_eq!(
        p.iter()
            .map(|l| (l.status, l.content_length))
            .collect::<Vec<_>>(),
        vec![(202, Some(3 * MIB)); 3]
    );
    assert_eq!((r.patches, r.resume_offsets.len()), (3, 0));
    assert_eq!(s.client().upload_profile().min_chunk, Some(3 * MIB));
    assert_eq!(srv.blob_in("team/app", &desc.digest).unwrap(), blob.bytes);
}

#[tokio::test]
async fn small_blobs_go_in_one_post_where_the_registry_takes_it() {
    let (srv, s) = setup(FaultConfig::new());
    for seed in [9, 10] {
        let blob = MemBlob::new(bytes_of(seed, 10_000));
        let desc = blob.descriptor("");
        assert_eq!(s.put_blob(&desc, &blob).await.unwrap(), desc.size);
        assert!(srv.blob_in("team/app", &desc.digest).is_some());
    }
    assert_eq!(srv.count(Kind::UploadStart), 2);
    assert_eq!(srv.count(Kind::UploadPut), 0);
    let st = s.client().stats();
    assert_eq!((st.uploads_monolithic, st.uploads_single_post), (2, 2));
    assert_eq!(s.client().upload_profile().single_post, Some(true));
}

#[tokio::test]
async fn downloads_resume_with_range_or_reread_when_range_is_ignored() {
    for ignore_range in [false, true] {
        let cfg = FaultConfig::new()
            .quirks(Quirks {
                ignore_range,
                ..Quirks::default()
            })
            .fault(Fault::drop_body_after(Kind::BlobGet, 1, 3 * MIB + 5));
        let src_srv = FaultServer::start(cfg);
        let data = bytes_of(11, (9 * MIB) as usize);
        let digest = src_srv.put_blob(data.clone());
        let src = store(&client(&src_srv.host(), None), "team/src");
        let desc = MemBlob::new(data.clone()).descriptor("");
        assert_eq!(desc.digest, digest);
        // Through the upload engine: the destination verifies the digest, so a byte read (and
        // hashed) twice, or one skipped, would fail the upload.
        let (dst_srv, dst) = setup(FaultConfig::new());
        let source = StoreBlob {
            store: &src,
            desc: &desc,
        };
        dst.upload_with(&desc, &source, UploadStrategy::Chunked, 4 * MIB)
            .await
            .unwrap();
        assert_eq!(dst_srv.blob_in("team/app", &digest).unwrap(), data);
        let gets: Vec<Logged> = src_srv
            .requests()
            .into_iter()
            .filter(|l| l.kind == Kind::BlobGet)
            .collect();
        assert_eq!(gets.len(), 2, "{gets:?}");
        let resumed_at: u64 = gets[1]
            .range
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .unwrap()
            .parse()
            .unwrap();
        assert!(resumed_at > 0 && resumed_at <= 3 * MIB + 5, "{resumed_at}");
        let want = if ignore_range { 200 } else { 206 };
        assert_eq!(gets[1].status, want, "ignore_range={ignore_range}");
        assert_eq!(src.client().stats().retries, 1);
    }
}
