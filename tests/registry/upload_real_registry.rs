//! Upload strategies against the real docker-registry (distribution 2.8): forced small chunks
//! through the copy engine (refereed by skopeo), every strategy for a blob through
//! `upload_with`, and auto with its single-`POST` probe remembered.

use std::sync::Arc;

use crate::registry_common::{bytes_of, log_lines, read_all, MemBlob};
use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;
use ferry::copy::{Copier, CopyOptions};
use ferry::progress::Silent;
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore, UploadStrategy};
use ferry::store::{Store, Target};

const MIB: u64 = 1024 * 1024;

fn client(reg: &Registry, opts: RegistryOptions) -> RegistryClient {
    RegistryClient::new(&reg.addr, opts).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_small_chunks_through_the_copy_engine() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(
        dir.path(),
        "v1",
        &ImageSpec::oci().layers(2, 5 * MIB as usize),
    );
    let c = client(
        &reg,
        RegistryOptions {
            upload_strategy: UploadStrategy::Chunked,
            chunk_size: MIB,
            ..RegistryOptions::default()
        },
    );
    let dst = RegistryStore::new(c.clone(), "team/chunked");
    let src = LayoutStore::open(dir.path()).unwrap();
    Copier::new(Arc::new(Silent))
        .copy(
            &src,
            &Target::Tag("v1".into()),
            &dst,
            &["v1".into()],
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    let st = c.stats();
    assert_eq!(st.uploads_chunked, 3, "{st:?}");
    assert_eq!((st.upload_resumes, st.upload_fallbacks), (0, 0));
    // Each 5 MiB layer: 5 PATCHes of 1 MiB (its last part on the PUT).
    let log = reg.log();
    let patches = log_lines(&log, &["PATCH /v2/team/chunked/blobs/uploads/", "\" 202 "]);
    let layers: u64 = built
        .blobs
        .iter()
        .filter(|b| b.size > MIB)
        .map(|b| b.size / MIB)
        .sum();
    assert_eq!(patches.len() as u64, layers, "{log}");
    // skopeo sees the digest we built and pulls every blob (verifying each).
    let image = format!("docker://{}/team/chunked:v1", reg.addr);
    assert_eq!(fixtures::inspect_digest(&image), built.digest);
    let out = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:pulled", out.path().display());
    fixtures::skopeo(&["copy", "--src-tls-verify=false", &image, &dest]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_stores_the_right_bytes() {
    let reg = Registry::start();
    let c = client(&reg, RegistryOptions::default());
    let cases = [
        (UploadStrategy::Monolithic, 3 * MIB + 1),
        (UploadStrategy::Chunked, 3 * MIB + 2),
        (UploadStrategy::Streamed, 3 * MIB + 3),
        (UploadStrategy::Auto, 40 * MIB),
        (UploadStrategy::Auto, 1000),
    ];
    for (i, (strategy, size)) in cases.into_iter().enumerate() {
        let s = RegistryStore::new(c.clone(), "team/strategies");
        let blob = MemBlob::new(bytes_of(i as u64, size as usize));
        let desc = blob.descriptor("application/octet-stream");
        let r = s.upload_with(&desc, &blob, strategy, MIB).await.unwrap();
        let want = match (strategy, size) {
            // Auto sends blobs up to `monolithic_max` (2 GiB) in one request.
            (UploadStrategy::Auto, _) => UploadStrategy::Monolithic,
            (s, _) => s,
        };
        assert_eq!(r.strategy, want, "{strategy} {size}");
        let back = read_all(s.open_blob(&desc, 0).await.unwrap())
            .await
            .unwrap();
        assert!(back == blob.bytes, "{strategy} {size}: bytes differ");
    }
    // Distribution ignores a single POST's body (202): probed once, then remembered.
    assert_eq!(c.upload_profile().single_post, Some(false));
    let log = reg.log();
    assert_eq!(
        log_lines(&log, &["POST /v2/team/strategies/blobs/uploads/?digest="]).len(),
        1,
        "{log}"
    );
    let st = c.stats();
    assert_eq!(
        (
            st.uploads_monolithic,
            st.uploads_chunked,
            st.uploads_streamed,
            st.uploads_single_post
        ),
        (3, 1, 1, 0),
        "{st:?}"
    );
    assert_eq!(st.upload_fallbacks, 0);
}
