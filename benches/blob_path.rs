//! Criterion benches of ferry's blob hot path: streaming, hashing and verifying one large blob
//! through ferry's real stores, next to raw `sha2` throughput on the same bytes.
//!
//! Groups (throughput in MB/s, decimal):
//! - `sha256/digest_hasher`: `DigestHasher` over the whole buffer, the ceiling of any copy.
//! - `blob_copy/*`: `ferry::copy::copy_blob` between stores, one blob per iteration:
//!   `registry_to_registry`, `registry_to_layout`, `layout_to_registry`, and
//!   `memory_to_registry` (`RegistryStore::put_blob` from memory: the upload side alone).
//!
//! Registries are an in-process loopback server ([`support::loopback`]) that serves the blob from
//! memory and drains uploads without storing or hashing them; layouts live in a temp dir (honours
//! `TMPDIR`). The blob is 256 MiB under `cargo bench`; 8 MiB when run as a test (`cargo test
//! --all-targets`, or `--test`/`--list`); `FERRY_BENCH_MIB` overrides both.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;

use ferry::copy::{copy_blob, BlobLedger, RegistryLimits};
use ferry::digest::DigestHasher;
use ferry::manifest::Descriptor;
use ferry::progress::{Reporter, Silent};
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{
    RegistryClient, RegistryOptions, RegistryStore, UploadStrategy, DEFAULT_CHUNK_SIZE,
};
use ferry::store::{BlobOutcome, Store};
use ferry::Digest;

use support::loopback::{Loopback, SOURCE_REPO};
use support::memory::{pattern, MemorySource};

const MIB: usize = 1024 * 1024;

/// Everything the benches share: one blob, the server holding it, and a layout holding it.
struct Env {
    rt: Runtime,
    blob: Bytes,
    desc: Descriptor,
    server: Loopback,
    /// Keeps the layouts' directory alive.
    _dir: tempfile::TempDir,
    src_layout: LayoutStore,
    dst_layout: LayoutStore,
}

impl Env {
    fn new(size: usize) -> Self {
        let blob = pattern(size);
        let desc = Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: Digest::of(&blob),
            size: size as u64,
            platform: None,
        };
        let server = Loopback::start(desc.digest.to_string(), blob.clone());
        let dir = tempfile::tempdir().expect("temp dir");
        let src_layout = LayoutStore::create(&dir.path().join("src")).expect("source layout");
        let dst_layout = LayoutStore::create(&dir.path().join("dst")).expect("dest layout");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let source = MemorySource(blob.clone());
        rt.block_on(src_layout.put_blob(&desc, &source))
            .expect("seed the source layout");
        Env {
            rt,
            blob,
            desc,
            server,
            _dir: dir,
            src_layout,
            dst_layout,
        }
    }

    fn size(&self) -> u64 {
        self.desc.size
    }

    /// A store for `repo` on the source or destination listener, with `opts` (plain HTTP).
    fn registry(&self, destination: bool, repo: &str, opts: RegistryOptions) -> RegistryStore {
        let addr = match destination {
            true => self.server.destination,
            false => self.server.source,
        };
        let client = RegistryClient::new(&addr.to_string(), opts).expect("registry client");
        RegistryStore::new(client, repo)
    }

    /// The destination layout's file for the blob.
    fn dst_blob_file(&self) -> PathBuf {
        blob_file(self.dst_layout.path(), &self.desc.digest)
    }
}

fn blob_file(layout: &Path, digest: &Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(digest.hex())
}

/// The blob size: full under `cargo bench`, small when criterion only tests (or lists).
fn blob_size() -> usize {
    if let Some(mib) = std::env::var("FERRY_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return mib * MIB;
    }
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--bench") && !has("--test") && !has("--list") {
        256 * MIB
    } else {
        8 * MIB
    }
}

fn group<'a>(c: &'a mut Criterion, name: &str, env: &Env) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::BytesDecimal(env.size()));
    g
}

fn bench_sha256(c: &mut Criterion, env: &Env) {
    let mut g = group(c, "sha256", env);
    g.bench_function("digest_hasher", |b| {
        b.iter(|| {
            let mut h = DigestHasher::new();
            h.update(&env.blob);
            let (digest, size) = h.finish();
            assert_eq!((&digest, size), (&env.desc.digest, env.size()));
        })
    });
    g.finish();
}

fn bench_blob_copy(c: &mut Criterion, env: &Env) {
    let src_reg = env.registry(false, SOURCE_REPO, RegistryOptions::default());
    let dst_reg = env.registry(true, "bench/dst", RegistryOptions::default());
    let mut g = group(c, "blob_copy", env);
    copy_case(&mut g, env, "registry_to_registry", &src_reg, &dst_reg);
    copy_case(&mut g, env, "registry_to_layout", &src_reg, &env.dst_layout);
    copy_case(&mut g, env, "layout_to_registry", &env.src_layout, &dst_reg);
    bench_upload(
        &mut g,
        env,
        BenchmarkId::from_parameter("memory_to_registry"),
        &dst_reg,
    );
    g.finish();
}

/// Upload throughput per strategy from memory into the loopback server: chunk sizes 1, 4, 16
/// and 64 MiB and monolithic (the table in the README, and the reason for `auto`'s choice).
fn bench_upload_strategies(c: &mut Criterion, env: &Env) {
    let mut g = group(c, "upload_strategy", env);
    let mib = 1024 * 1024;
    let mut cases = vec![(
        "monolithic".to_string(),
        UploadStrategy::Monolithic,
        DEFAULT_CHUNK_SIZE,
    )];
    for chunk in [1, 4, 16, 64] {
        cases.push((
            format!("chunked_{chunk}MiB"),
            UploadStrategy::Chunked,
            chunk * mib,
        ));
    }
    cases.push((
        "streamed".to_string(),
        UploadStrategy::Streamed,
        DEFAULT_CHUNK_SIZE,
    ));
    for (name, upload_strategy, chunk_size) in cases {
        let opts = RegistryOptions {
            upload_strategy,
            chunk_size,
            ..RegistryOptions::default()
        };
        let dst = env.registry(true, &format!("bench/up-{name}"), opts);
        bench_upload(&mut g, env, BenchmarkId::from_parameter(&name), &dst);
    }
    g.finish();
}

/// Times `copy_blob(src → dst)` of the blob, making it absent at `dst` before each iteration
/// (untimed) and checking after each that it arrived whole.
fn copy_case(
    g: &mut BenchmarkGroup<'_, WallTime>,
    env: &Env,
    name: &str,
    src: &dyn Store,
    dst: &dyn Store,
) {
    let to_layout = dst.repo_location().is_none();
    let reporter: Arc<dyn Reporter> = Arc::new(Silent);
    g.bench_function(name, |b| {
        b.to_async(&env.rt).iter_custom(|iters| {
            let reporter = reporter.clone();
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if to_layout {
                        remove_if_present(&env.dst_blob_file());
                    }
                    let completed = env.server.completed();
                    let start = Instant::now();
                    let outcome = copy_blob(
                        src,
                        dst,
                        &env.desc,
                        &BlobLedger::default(),
                        &RegistryLimits::unlimited(),
                        &reporter,
                    )
                    .await
                    .expect("copy_blob");
                    timed += start.elapsed();
                    assert_eq!(outcome, BlobOutcome::Copied(env.size()));
                    check_arrived(env, to_layout, completed);
                }
                timed
            }
        })
    });
}

/// Times `dst.put_blob` of the blob from memory, checking after each iteration that the server
/// received it whole.
///
/// This is the body of every upload measurement: an `upload_strategy` group is this function
/// called once per strategy (chunk sizes, monolithic) with `dst` built by
/// [`Env::registry`] from options naming that strategy.
fn bench_upload(
    g: &mut BenchmarkGroup<'_, WallTime>,
    env: &Env,
    id: BenchmarkId,
    dst: &RegistryStore,
) {
    let source = MemorySource(env.blob.clone());
    g.bench_function(id, |b| {
        b.to_async(&env.rt).iter_custom(|iters| {
            let source = &source;
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let completed = env.server.completed();
                    let start = Instant::now();
                    let sent = dst.put_blob(&env.desc, source).await.expect("put_blob");
                    timed += start.elapsed();
                    assert_eq!(sent, env.size());
                    check_arrived(env, false, completed);
                }
                timed
            }
        })
    });
}

/// The blob reached the destination: a layout file of the right size, or one more upload closed
/// at the server (whose byte count covers the blob).
fn check_arrived(env: &Env, to_layout: bool, completed_before: u64) {
    if to_layout {
        let len = std::fs::metadata(env.dst_blob_file()).map(|m| m.len());
        assert_eq!(len.ok(), Some(env.size()), "blob file in the layout");
    } else {
        assert_eq!(
            env.server.completed(),
            completed_before + 1,
            "upload closed"
        );
        assert!(env.server.received() >= env.size() * env.server.completed());
    }
}

fn remove_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("removing {}: {e}", path.display()),
    }
}

fn main() {
    let env = Env::new(blob_size());
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    bench_sha256(&mut c, &env);
    bench_blob_copy(&mut c, &env);
    bench_upload_strategies(&mut c, &env);
    c.final_summary();
}
