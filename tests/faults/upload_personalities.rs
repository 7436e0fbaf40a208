//! Copies of one multi-layer image with a 100 MiB layer, by the real copy engine, to fault
//! servers that behave like the registries users hit (ECR, GHCR, GAR, ACR, one announcing
//! `OCI-Chunk-Min-Length`, a flaky one). Each test checks the image arrived intact (every blob
//! re-hashed at the destination, the tag on the right digest) and how it got there (strategies,
//! chunk sizes, refusals, resume offsets) from the client's stats and the server's log.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::support::fault_server::{FaultConfig, FaultServer, Kind, Logged, Personality};
use crate::support::fixtures::{self, BuiltImage, ImageSpec};
use ferry::copy::{Copier, CopyOptions, CopyReport};
use ferry::manifest::Descriptor;
use ferry::progress::Reporter;
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{
    ClientStats, RegistryClient, RegistryOptions, RegistryStore, RetryPolicy, UploadStrategy,
};
use ferry::store::BlobOutcome;
use ferry::store::{Store, Target};
use ferry::Digest;

const MIB: u64 = 1024 * 1024;
const REPO: &str = "team/app";

/// The image every test copies: a 100 MiB base layer, two 6 MiB layers, a small config. Built
/// once per test binary.
fn image() -> &'static (PathBuf, BuiltImage) {
    static IMAGE: OnceLock<(PathBuf, BuiltImage)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let spec = ImageSpec::oci()
            .shared_base(100 * MIB as usize)
            .layers(2, 6 * MIB as usize);
        let built = fixtures::write_layout(&dir, "v1", &spec);
        (dir, built)
    })
}

fn big_layer() -> &'static Descriptor {
    image().1.blobs.iter().max_by_key(|d| d.size).unwrap()
}

fn options(chunk_size: u64) -> RegistryOptions {
    RegistryOptions {
        chunk_size,
        // Exercise the chunked path: auto sends only blobs that fit in one chunk whole.
        monolithic_max: chunk_size,
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            max_total: Duration::from_secs(60),
        },
        ..RegistryOptions::default()
    }
}

/// Copies the image from `src` to `repo` of `srv` and checks it arrived intact.
async fn copy_from(
    src: &dyn Store,
    srv: &FaultServer,
    repo: &str,
    opts: RegistryOptions,
    jobs: usize,
) -> (RegistryClient, CopyReport) {
    let client = RegistryClient::new(&srv.host(), opts).unwrap();
    let dst = RegistryStore::new(client.clone(), repo);
    let copy = CopyOptions {
        jobs,
        ..CopyOptions::default()
    };
    let tally = Arc::new(Tally::default());
    let report = Copier::new(tally.clone())
        .copy(src, &Target::Tag("v1".into()), &dst, &["v1".into()], &copy)
        .await
        .unwrap();
    assert_intact(srv, repo);
    tally.assert_each_byte_once();
    (client, report)
}

/// Progress per blob: resumed or restarted uploads re-read bytes, progress counts them once.
#[derive(Default)]
struct Tally {
    progress: std::sync::Mutex<std::collections::HashMap<Digest, u64>>,
    copied: std::sync::Mutex<Vec<(Digest, u64)>>,
}

impl Reporter for Tally {
    fn blob_progress(&self, digest: &Digest, n: u64) {
        *self
            .progress
            .lock()
            .unwrap()
            .entry(digest.clone())
            .or_default() += n;
    }
    fn blob_done(&self, digest: &Digest, size: u64, outcome: BlobOutcome) {
        if matches!(outcome, BlobOutcome::Copied(_)) {
            self.copied.lock().unwrap().push((digest.clone(), size));
        }
    }
}

impl Tally {
    fn assert_each_byte_once(&self) {
        let progress = self.progress.lock().unwrap();
        for (d, size) in self.copied.lock().unwrap().iter() {
            assert_eq!(
                progress.get(d).copied().unwrap_or(0),
                *size,
                "progress of {d}"
            );
        }
    }
}

async fn copy(srv: &FaultServer, opts: RegistryOptions) -> (RegistryClient, CopyReport) {
    let src = LayoutStore::open(&image().0).unwrap();
    copy_from(&src, srv, REPO, opts, 8).await
}

/// Every blob of the image is in `repo` with bytes that hash to its digest, and `v1` names it.
fn assert_intact(srv: &FaultServer, repo: &str) {
    let built = &image().1;
    assert_eq!(srv.tag(repo, "v1").as_ref(), Some(&built.digest));
    assert!(srv.manifest(repo, &built.digest).is_some());
    for d in &built.blobs {
        let bytes = srv
            .blob_in(repo, &d.digest)
            .unwrap_or_else(|| panic!("{} missing", d.digest));
        assert_eq!(
            (Digest::of(&bytes), bytes.len() as u64),
            (d.digest.clone(), d.size)
        );
    }
}

fn upload_requests(srv: &FaultServer) -> Vec<Logged> {
    srv.requests()
        .into_iter()
        .filter(|l| {
            matches!(
                l.kind,
                Kind::UploadStart | Kind::UploadPatch | Kind::UploadPut
            )
        })
        .collect()
}

/// Strategies that stored the blobs: (monolithic, of which single POST, chunked, streamed).
fn strategies(st: &ClientStats) -> (u64, u64, u64, u64) {
    (
        st.uploads_monolithic,
        st.uploads_single_post,
        st.uploads_chunked,
        st.uploads_streamed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecr_201_on_patch_5_mib_parts_and_a_stale_range() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Ecr));
    let (client, report) = copy(&srv, options(ferry::store::registry::DEFAULT_CHUNK_SIZE)).await;
    let st = client.stats();
    // Defaults fit ECR: the big layer in 16 MiB parts (answered 201, with a Range stuck at the
    // first part), its last part on the PUT; the 6 MiB layers and the config in one request.
    assert_eq!(strategies(&st), (3, 1, 1, 0), "{st:?}");
    assert_eq!((st.upload_fallbacks, st.upload_resumes), (0, 0));
    let patches: Vec<Logged> = upload_requests(&srv)
        .into_iter()
        .filter(|l| l.kind == Kind::UploadPatch)
        .collect();
    assert_eq!(patches.len() as u64, big_layer().size / (16 * MIB));
    assert!(
        patches
            .iter()
            .all(|l| l.status == 201 && l.content_length == Some(16 * MIB)),
        "{patches:?}"
    );
    assert_eq!(report.blobs.copied, 4);

    // A chunk size below ECR's part minimum: the refused part teaches 5 MiB.
    let client = RegistryClient::new(&srv.host(), options(MIB)).unwrap();
    let dst = RegistryStore::new(client.clone(), "team/small-parts");
    let layout = LayoutStore::open(&image().0).unwrap();
    let layer = image()
        .1
        .blobs
        .iter()
        .find(|d| d.size > 6 * MIB && d.size < 7 * MIB)
        .unwrap();
    let src = ferry::store::StoreBlob {
        store: &layout,
        desc: layer,
    };
    let r = dst
        .upload_with(layer, &src, UploadStrategy::Chunked, MIB)
        .await
        .unwrap();
    assert_eq!(r.chunk_size, Some(5 * MIB));
    assert_eq!(client.upload_profile().min_chunk, Some(5 * MIB));
    assert_eq!(r.patches, 1, "one 5 MiB part, the rest on the PUT");
    assert_eq!(
        srv.blob_in("team/small-parts", &layer.digest)
            .map(|b| Digest::of(&b)),
        Some(layer.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghcr_requests_over_4_mib_refused() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Ghcr));
    let (client, _) = copy(&srv, options(ferry::store::registry::DEFAULT_CHUNK_SIZE)).await;
    let st = client.stats();
    let profile = client.upload_profile();
    assert!(
        profile.max_chunk.is_some_and(|m| m <= 4 * MIB),
        "{profile:?}"
    );
    assert_eq!(strategies(&st), (1, 1, 3, 0), "{st:?}");
    // Whichever refusal came first (a 6 MiB PUT, or a 16 MiB chunk) taught the cap.
    assert!(st.chunk_size_changes >= 1, "{st:?}");
    assert!(st.upload_fallbacks <= 2, "{st:?}");
    let accepted: Vec<Logged> = upload_requests(&srv)
        .into_iter()
        .filter(|l| (200..300).contains(&l.status))
        .collect();
    assert!(
        accepted
            .iter()
            .all(|l| l.content_length.unwrap_or(0) <= 4 * MIB),
        "{accepted:?}"
    );
    let refused = upload_requests(&srv)
        .into_iter()
        .filter(|l| matches!(l.status, 413 | 416))
        .count();
    assert!(
        refused >= 3,
        "the big layer twice, the 6 MiB layers: {refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gar_refuses_patch_so_everything_goes_monolithic() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Gar));
    let (client, _) = copy(&srv, options(ferry::store::registry::DEFAULT_CHUNK_SIZE)).await;
    let st = client.stats();
    assert_eq!(strategies(&st), (4, 1, 0, 0), "{st:?}");
    assert_eq!(st.upload_fallbacks, 1, "the big layer fell back once");
    assert!(client.upload_profile().chunked_refused);
    let patches: Vec<u16> = upload_requests(&srv)
        .iter()
        .filter(|l| l.kind == Kind::UploadPatch)
        .map(|l| l.status)
        .collect();
    assert_eq!(patches, [405]);
    let big_put = upload_requests(&srv)
        .into_iter()
        .find(|l| l.kind == Kind::UploadPut && l.status == 201 && l.body_bytes == big_layer().size);
    assert!(big_put.is_some(), "the 100 MiB layer in one PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acr_monolithic_bodies_over_20_mb_refused() {
    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Acr));
    // Defaults never send ACR a body over 16 MiB.
    let (client, _) = copy(&srv, options(ferry::store::registry::DEFAULT_CHUNK_SIZE)).await;
    let st = client.stats();
    assert_eq!(strategies(&st), (3, 1, 1, 0), "{st:?}");
    assert_eq!(st.upload_fallbacks, 0);
    assert!(upload_requests(&srv).iter().all(|l| l.status != 413));

    // 128 MiB chunks: the big layer fits one chunk, so auto sends it monolithically; ACR refuses,
    // the engine falls back to chunks, and the last chunk goes as a PATCH once a PUT that large
    // was refused.
    let src = LayoutStore::open(&image().0).unwrap();
    let (client, _) = copy_from(&src, &srv, "team/big-chunks", options(128 * MIB), 8).await;
    let st = client.stats();
    assert_eq!(st.upload_fallbacks, 1, "{st:?}");
    assert_eq!(st.uploads_chunked, 1, "{st:?}");
    let profile = client.upload_profile();
    assert!(
        profile
            .monolithic_refused_from
            .is_some_and(|r| r <= 64 * MIB),
        "{profile:?}"
    );
    let puts_ok = upload_requests(&srv)
        .into_iter()
        .filter(|l| l.kind == Kind::UploadPut && l.status == 201);
    assert!(puts_ok.into_iter().all(|l| l.body_bytes <= 20_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_announcing_its_minimum_chunk_length() {
    let srv = FaultServer::start(FaultConfig::new().chunk_min_length(20 * MIB));
    let (client, _) = copy(&srv, options(ferry::store::registry::DEFAULT_CHUNK_SIZE)).await;
    let st = client.stats();
    assert_eq!(strategies(&st), (3, 1, 1, 0), "{st:?}");
    assert_eq!(client.upload_profile().min_chunk, Some(20 * MIB));
    let patches: Vec<(u16, Option<u64>)> = upload_requests(&srv)
        .iter()
        .filter(|l| l.kind == Kind::UploadPatch)
        .map(|l| (l.status, l.content_length))
        .collect();
    let n = (big_layer().size / (20 * MIB)) as usize;
    assert_eq!(patches, vec![(202, Some(20 * MIB)); n]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_network_resumes_uploads_and_downloads() {
    // The source is a flaky registry too: its first blob GET (the big layer, largest first)
    // breaks off after 5 MiB.
    let src_srv = FaultServer::start(FaultConfig::new().personality(Personality::Flaky));
    let (dir, built) = image();
    let src_client = RegistryClient::new(&src_srv.host(), options(16 * MIB)).unwrap();
    let src = RegistryStore::new(src_client.clone(), "team/src");
    for d in &built.blobs {
        src_srv.put_blob(std::fs::read(dir.join("blobs/sha256").join(d.digest.hex())).unwrap());
    }
    let (m, t) = fixtures_manifest(dir, built);
    src_srv.put_manifest("team/src", "v1", &m, &t);

    let srv = FaultServer::start(FaultConfig::new().personality(Personality::Flaky));
    let t0 = Instant::now();
    let (client, _) = copy_from(&src, &srv, REPO, options(16 * MIB), 1).await;
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "Retry-After: 2 was honoured"
    );
    let st = client.stats();
    // Chunks of 16 MiB: the 2nd PATCH broke off after 3 MiB (kept), the 4th got a 500, the 6th a
    // 429, the closing PUT a 503; each time the upload went on from where the registry stood.
    assert_eq!(
        st.upload_resume_offsets,
        [19 * MIB, 35 * MIB, 51 * MIB, 99 * MIB],
        "{st:?}"
    );
    assert_eq!(st.upload_restarts, 0);
    assert_eq!(strategies(&st), (3, 1, 1, 0), "{st:?}");
    assert!(st.retries >= 4, "{st:?}");
    // The source was read again from where the registry stood (Range GETs: with the default
    // `--verify auto` nothing before that offset needs re-hashing), and its broken first GET
    // was resumed too.
    let ranges: Vec<String> = src_srv
        .requests()
        .into_iter()
        .filter(|l| l.kind == Kind::BlobGet)
        .filter_map(|l| l.range)
        .collect();
    for at in [19 * MIB, 35 * MIB, 51 * MIB, 99 * MIB] {
        assert!(
            ranges.iter().any(|r| r == &format!("bytes={at}-")),
            "{at}: {ranges:?}"
        );
    }
    let first_resume: u64 = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(first_resume > 0 && first_resume <= 5 * MIB, "{ranges:?}");
    assert_eq!(src_client.stats().retries, 1);
}

/// The top manifest of the layout: its bytes and media type.
fn fixtures_manifest(dir: &std::path::Path, built: &BuiltImage) -> (Vec<u8>, String) {
    let path = dir.join("blobs/sha256").join(built.digest.hex());
    (std::fs::read(path).unwrap(), built.media_type.clone())
}
