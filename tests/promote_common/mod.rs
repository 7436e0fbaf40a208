//! Helpers shared by the promotion tests: seeding real images, building jobs, reading what a
//! registry saw.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use ferry::copy::RegistryLimits;
use ferry::promote::{Job, Overwrite, PromoteOptions, Promoter, SilentPlan};
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore, RetryPolicy};
use ferry::store::{Store, Target};
use ferry::Digest;

use crate::support::fixtures::{seed_registry, write_layout, BuiltImage, ImageSpec};
use crate::support::registry::Registry;

pub fn client(addr: &str) -> RegistryClient {
    let opts = RegistryOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: std::time::Duration::from_millis(20),
            max_delay: std::time::Duration::from_millis(100),
            max_total: std::time::Duration::from_secs(10),
        },
        ..RegistryOptions::default()
    };
    RegistryClient::new(addr, opts).unwrap()
}

pub fn store(c: &RegistryClient, repo: &str) -> Arc<dyn Store> {
    Arc::new(RegistryStore::new(c.clone(), repo))
}

/// Writes `spec` as `tag` into `layout` and pushes it to `reg` as `repo_tag` with skopeo.
pub fn seed(
    reg: &Registry,
    layout: &Path,
    tag: &str,
    spec: &ImageSpec,
    repo_tag: &str,
) -> BuiltImage {
    let built = write_layout(layout, tag, spec);
    seed_registry(layout, tag, &reg.addr, repo_tag);
    built
}

/// A job promoting `src_repo:tag` (via `src`) to `dst_repo` (via `dst`) under `tags`.
pub fn job(
    src: &RegistryClient,
    src_repo_tag: &str,
    dst: &RegistryClient,
    dst_repo: &str,
    tags: &[&str],
) -> Job {
    let (repo, tag) = src_repo_tag.rsplit_once(':').unwrap();
    Job {
        label: src_repo_tag.to_string(),
        source: store(src, repo),
        target: Target::Tag(tag.to_string()),
        destination: store(dst, dst_repo),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        expect_digest: None,
        overwrite: Overwrite::Never,
        referrers: None,
        seen_tags: Vec::new(),
        manifest: None,
    }
}

pub fn promoter(atomic: bool, force: bool) -> Promoter {
    let opts = PromoteOptions {
        atomic,
        force,
        images: 16,
        jobs: 8,
        referrers: ferry::referrers::ReferrerOptions::none(),
    };
    Promoter::new(opts, RegistryLimits::new(16), Arc::new(SilentPlan))
}

/// What `repo:tag` points at now (a fresh client, so the caller's counters are untouched).
pub async fn tag_of(addr: &str, repo: &str, tag: &str) -> Option<Digest> {
    let s = RegistryStore::new(client(addr), repo);
    s.resolve(&Target::Tag(tag.to_string()))
        .await
        .unwrap()
        .map(|d| d.digest)
}

/// Access-log lines of requests that change something (PUT, POST, PATCH, DELETE).
pub fn writes(reg: &Registry) -> Vec<String> {
    reg.log()
        .lines()
        .filter(|l| {
            ["\"PUT ", "\"POST ", "\"PATCH ", "\"DELETE "]
                .iter()
                .any(|m| l.contains(m))
        })
        .map(str::to_string)
        .collect()
}

/// Access-log lines that touch blobs (`/blobs/`, uploads included).
pub fn blob_requests(reg: &Registry) -> Vec<String> {
    reg.log()
        .lines()
        .filter(|l| l.contains("/blobs/") && l.contains(" HTTP/"))
        .map(str::to_string)
        .collect()
}

/// Small image specs, distinct per seed.
pub fn small(seed: u64) -> ImageSpec {
    ImageSpec::oci().layers(2, 16 * 1024).seed(seed)
}
