//! The fault matrix through the copy engine with the default `auto` upload strategy: a dropped
//! monolithic PUT (unseen by the registry, as behind a proxy, or cut after the registry kept
//! bytes), a dropped PATCH after that, a dropped download, each resumed with the bytes asserted;
//! and errors that name their side (a destination 404 is not "source not found").

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind, Quirks};
use crate::support::fixtures::{self, BuiltImage, ImageSpec};
use ferry::copy::{Copier, CopyOptions};
use ferry::error::Side;
use ferry::progress::Silent;
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore, RetryPolicy};
use ferry::store::sided::Sided;
use ferry::store::{Store, Target};
use ferry::Digest;

const MIB: u64 = 1024 * 1024;
const REPO: &str = "team/app";

/// The issue's case: three 24 MiB layers and a small config.
fn image() -> &'static (PathBuf, BuiltImage) {
    static IMAGE: OnceLock<(PathBuf, BuiltImage)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let spec = ImageSpec::oci().layers(3, 24 * MIB as usize);
        let built = fixtures::write_layout(&dir, "v1", &spec);
        (dir, built)
    })
}

fn total() -> u64 {
    image().1.blobs.iter().map(|d| d.size).sum()
}

fn big_layers() -> usize {
    image().1.blobs.iter().filter(|d| d.size > MIB).count()
}

/// The defaults (auto strategy, 16 MiB chunks), with short waits.
fn options() -> RegistryOptions {
    RegistryOptions {
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_total: Duration::from_secs(60),
        },
        ..RegistryOptions::default()
    }
}

async fn copy_to(src: &dyn Store, srv: &FaultServer, jobs: usize) -> RegistryClient {
    let client = RegistryClient::new(&srv.host(), options()).unwrap();
    let dst = RegistryStore::new(client.clone(), REPO);
    let copy = CopyOptions {
        jobs,
        ..CopyOptions::default()
    };
    copy_v1(src, &dst, &["v1".into()], &copy).await.unwrap();
    assert_intact(srv);
    client
}

/// Copies tag `v1` of `src` to `dst` under `tags`, reporting nothing.
async fn copy_v1(
    src: &dyn Store,
    dst: &dyn Store,
    tags: &[String],
    opts: &CopyOptions,
) -> ferry::Result<ferry::copy::CopyReport> {
    Copier::new(std::sync::Arc::new(Silent))
        .copy(src, &Target::Tag("v1".into()), dst, tags, opts)
        .await
}

fn assert_intact(srv: &FaultServer) {
    let built = &image().1;
    assert_eq!(srv.tag(REPO, "v1").as_ref(), Some(&built.digest));
    for d in &built.blobs {
        let bytes = srv.blob_in(REPO, &d.digest).expect("blob present");
        assert_eq!(Digest::of(&bytes), d.digest);
    }
    assert_eq!(srv.open_uploads(), 0, "no session left open");
}

fn layout() -> LayoutStore {
    LayoutStore::open(&image().0).unwrap()
}

#[tokio::test]
async fn a_monolithic_put_dropped_unseen_goes_on_resumably_on_the_same_session() {
    let quirks = Quirks {
        drop_first_body_after: Some(MIB),
        ..Quirks::default()
    };
    let srv = FaultServer::start(FaultConfig::new().quirks(quirks));
    let c = copy_to(&layout(), &srv, 8).await;
    let st = c.stats();
    let n = big_layers() as u64;
    // Each big layer: one monolithic PUT dropped at 1 MiB, then the same session resumed from
    // the registry's offset (0: it never saw the bytes) with chunks; nothing restarted.
    assert_eq!(st.upload_resumes, n, "{st:?}");
    assert!(st.upload_resume_offsets.iter().all(|o| *o == 0), "{st:?}");
    assert_eq!(st.upload_restarts, 0, "{st:?}");
    assert_eq!(st.uploads_chunked, n, "{st:?}");
    assert_eq!(st.blob_uploads, n + 1, "one session per blob: {st:?}");
    // The registry read every byte once, plus the 1 MiB of each dropped body.
    assert_eq!(srv.upload_bytes(), total() + n * MIB);
    let statuses: Vec<u16> = srv
        .requests()
        .iter()
        .filter(|l| l.kind == Kind::UploadStatus)
        .map(|l| l.status)
        .collect();
    assert_eq!(
        statuses,
        vec![204; n as usize],
        "asked where each session stood"
    );
}

#[tokio::test]
async fn a_monolithic_put_cut_after_the_registry_kept_bytes_resumes_there() {
    let cut = 5 * MIB + 4321;
    let srv = FaultServer::start(FaultConfig::new().fault(Fault::drop_request_after(
        Kind::UploadPut,
        1,
        cut,
    )));
    // One job: the largest blob goes first, so the first PUT is a 24 MiB one.
    let c = copy_to(&layout(), &srv, 1).await;
    let st = c.stats();
    assert_eq!(st.upload_resume_offsets, vec![cut], "{st:?}");
    assert_eq!((st.upload_restarts, st.uploads_chunked), (0, 1), "{st:?}");
    // Nothing the registry kept was sent again.
    assert_eq!(srv.upload_bytes(), total());
}

#[tokio::test]
async fn a_dropped_patch_after_the_fallback_resumes_mid_chunk() {
    let quirks = Quirks {
        drop_first_body_after: Some(MIB),
        ..Quirks::default()
    };
    let cut = 2 * MIB + 99;
    let cfg = FaultConfig::new()
        .quirks(quirks)
        .fault(Fault::drop_request_after(Kind::UploadPatch, 1, cut));
    let srv = FaultServer::start(cfg);
    let c = copy_to(&layout(), &srv, 1).await;
    let st = c.stats();
    let n = big_layers() as u64;
    // Every big layer resumed at 0 after its monolithic drop; one also at the PATCH's cut.
    assert_eq!(st.upload_resumes, n + 1, "{st:?}");
    assert!(st.upload_resume_offsets.contains(&cut), "{st:?}");
    assert_eq!(st.upload_restarts, 0, "{st:?}");
    assert_eq!(srv.upload_bytes(), total() + n * MIB);
}

#[tokio::test]
async fn a_dropped_download_resumes_with_range_and_reads_each_byte_once() {
    let src_srv = FaultServer::start(FaultConfig::new());
    copy_to_src(&src_srv).await;
    let cut = 3 * MIB + 17;
    src_srv.add_fault(Fault::drop_body_after(Kind::BlobGet, 1, cut));
    let src_client = RegistryClient::new(&src_srv.host(), options()).unwrap();
    let src = RegistryStore::new(src_client.clone(), REPO);
    let dst = FaultServer::start(FaultConfig::new());
    copy_to(&src, &dst, 1).await;
    let ranges: Vec<String> = src_srv
        .requests()
        .iter()
        .filter(|l| l.kind == Kind::BlobGet)
        .filter_map(|l| l.range.clone())
        .collect();
    assert_eq!(ranges, vec![format!("bytes={cut}-")]);
    let st = src_client.stats();
    assert_eq!(st.blob_bytes_downloaded, total(), "{st:?}");
    assert_eq!(st.retries, 1, "{st:?}");
    assert_eq!(dst.upload_bytes(), total());
}

/// Seeds the image into `srv` (through ferry: the layout tests check that path).
async fn copy_to_src(srv: &FaultServer) {
    let client = RegistryClient::new(&srv.host(), options()).unwrap();
    let dst = RegistryStore::new(client, REPO);
    copy_v1(&layout(), &dst, &["v1".into()], &CopyOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_destination_404_is_a_destination_failure_not_a_missing_source() {
    let srv = FaultServer::start(
        FaultConfig::new()
            .fault(Fault::error(Kind::UploadStart, 1, 404, "NAME_UNKNOWN").times(1000)),
    );
    let client = RegistryClient::new(&srv.host(), options()).unwrap();
    let dst = Sided::wrap(
        std::sync::Arc::new(RegistryStore::new(client, REPO)),
        Side::Destination,
    );
    let src = Sided::wrap(std::sync::Arc::new(layout()), Side::Source);
    let e = copy_v1(
        src.as_ref(),
        dst.as_ref(),
        &["v1".into()],
        &CopyOptions::default(),
    )
    .await
    .unwrap_err();
    let sides: Vec<_> = match &e {
        ferry::Error::Many(v) => v.iter().map(|e| e.side()).collect(),
        e => vec![e.side()],
    };
    assert!(sides.iter().all(|s| *s == Some(Side::Destination)), "{e}");
    assert_eq!(srv.tag(REPO, "v1"), None);

    // The CLI: exit 1 (a failed write), never 4 ("source image not found"), and it says where.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["copy", "-q", "--retries", "1"])
        .arg(format!("oci:{}:v1", image().0.display()))
        .arg(format!("{}/{REPO}:v1", srv.host()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("destination: "), "{stderr}");
    assert!(stderr.contains("NAME_UNKNOWN"), "{stderr}");
}

#[tokio::test]
async fn a_missing_source_exits_4_with_its_side() {
    let srv = FaultServer::start(FaultConfig::new());
    let dst = FaultServer::start(FaultConfig::new());
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["copy", "-q"])
        .arg(format!("{}/{REPO}:nope", srv.host()))
        .arg(format!("{}/{REPO}:v1", dst.host()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("source: "), "{stderr}");
}

/// A source in memory: an index of two images, each a config and a layer.
fn memory_source() -> (
    ferry::store::memory::MemoryStore,
    ferry::manifest::RawManifest,
) {
    use ferry::manifest::RawManifest;
    let src = ferry::store::memory::MemoryStore::new("src");
    let blob = |bytes: Vec<u8>, media_type: &str| {
        let digest = Digest::of(&bytes);
        let size = bytes.len();
        src.insert_blob(digest.clone(), bytes.into());
        serde_json::json!({"mediaType": media_type, "digest": digest, "size": size})
    };
    let mut children = Vec::new();
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let config = blob(
            format!(r#"{{"architecture":"{arch}","os":"linux"}}"#).into_bytes(),
            "application/vnd.oci.image.config.v1+json",
        );
        let layer = blob(
            vec![i as u8; 70_000 + i],
            "application/vnd.oci.image.layer.v1.tar+gzip",
        );
        let body = serde_json::json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": [layer]});
        let m = RawManifest::new(serde_json::to_vec(&body).unwrap().into(), None).unwrap();
        children.push(
            serde_json::json!({"mediaType": m.media_type, "digest": m.digest,
            "size": m.bytes.len(), "platform": {"os": "linux", "architecture": arch}}),
        );
        futures::executor::block_on(src.put_manifest(&m, &[])).unwrap();
    }
    let body = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children});
    let index = RawManifest::new(serde_json::to_vec(&body).unwrap().into(), None).unwrap();
    futures::executor::block_on(src.put_manifest(&index, &["v1".into()])).unwrap();
    (src, index)
}

#[tokio::test]
async fn the_engine_writes_children_before_parents_and_tags_last() {
    use ferry::store::memory::{MemoryStore, Write};
    let (src, index) = memory_source();
    let dst = MemoryStore::new("dst");
    copy_v1(
        &src,
        &dst,
        &["v1".into(), "latest".into()],
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    let writes = dst.writes();
    let at = |w: &Write| writes.iter().position(|x| x == w).unwrap();
    let children = ferry::manifest::RawManifest::children(&index).unwrap();
    let ferry::manifest::Children::Index { manifests } = children else {
        panic!("an index")
    };
    let index_at = at(&Write::Manifest(index.digest.clone()));
    for child in &manifests {
        let m = src
            .get_manifest(&Target::Digest(child.digest.clone()))
            .await
            .unwrap();
        let child_at = at(&Write::Manifest(m.digest.clone()));
        let ferry::manifest::Children::Image { config, layers } = m.children().unwrap() else {
            panic!("an image")
        };
        for b in std::iter::once(config).chain(layers) {
            assert!(at(&Write::Blob(b.digest)) < child_at, "{writes:?}");
        }
        assert!(child_at < index_at, "{writes:?}");
    }
    let tags: Vec<usize> = writes
        .iter()
        .enumerate()
        .filter(|(_, w)| matches!(w, Write::Tag(..)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(tags.len(), 2);
    assert!(tags.iter().all(|i| *i > index_at), "{writes:?}");
    assert_eq!(dst.tag("latest"), Some(index.digest.clone()));
}

#[tokio::test]
async fn a_corrupt_source_blob_leaves_nothing_tagged() {
    use ferry::store::memory::{MemoryStore, Write};
    let (src, index) = memory_source();
    // Replace one layer's bytes: same digest, other content.
    let ferry::manifest::Children::Index { manifests } = index.children().unwrap() else {
        panic!("an index")
    };
    let m = src
        .get_manifest(&Target::Digest(manifests[0].digest.clone()))
        .await
        .unwrap();
    let ferry::manifest::Children::Image { layers, .. } = m.children().unwrap() else {
        panic!("an image")
    };
    src.insert_blob(
        layers[0].digest.clone(),
        vec![9u8; layers[0].size as usize].into(),
    );
    let dst = MemoryStore::new("dst");
    let e = copy_v1(&src, &dst, &["v1".into()], &CopyOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    let writes = dst.writes();
    assert!(
        !writes
            .iter()
            .any(|w| matches!(w, Write::Tag(..)) || *w == Write::Manifest(index.digest.clone())),
        "{writes:?}"
    );
    assert_eq!(dst.tag("v1"), None);
}
