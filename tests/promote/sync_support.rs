//! Helpers of the sync tests: a source of many repositories seeded in seconds (ten images
//! written once, pushed through ferry's copier so every later repository mounts the blobs), the
//! `ferry sync` binary, and what a destination holds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use ferry::copy::{Copier, CopyOptions};
use ferry::error::Side;
use ferry::progress::Silent;
use ferry::reference::ImageRef;
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{RegistryClient, RegistryStore};
use ferry::store::{Store, Target};
use ferry::sync::Endpoints;
use ferry::Digest;

use crate::promote_common::{client, store};
use crate::support::fixtures::{write_layout, BuiltImage, ImageSpec};
use crate::support::registry::Registry;

/// The ten tags of every seeded repository; `latest` is a two-platform index.
pub const TAGS: [&str; 10] = [
    "0.9.0",
    "1.0.0",
    "1.1.0",
    "1.2.0",
    "1.2.1-rc.1",
    "1.3.0",
    "2.0.0",
    "v2.1",
    "latest",
    "dev-abc",
];

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Pushes the ten images under their tags into every repository of `repos` at `reg`: the first
/// repository receives the blobs, the others mount them.
pub fn seed_many(reg: &Registry, repos: &[String]) -> BTreeMap<&'static str, BuiltImage> {
    let dir = tempfile::tempdir().unwrap();
    let mut built = BTreeMap::new();
    for (i, t) in TAGS.iter().enumerate() {
        let spec = match *t {
            "latest" => ImageSpec::oci_index().platforms(&["linux/amd64", "linux/arm64"]),
            _ => ImageSpec::oci(),
        };
        let spec = spec.layers(1, 2048).seed(i as u64 + 1);
        built.insert(*t, write_layout(dir.path(), t, &spec));
    }
    runtime().block_on(push_all(dir.path(), &reg.addr, repos));
    built
}

async fn push_all(layout: &Path, addr: &str, repos: &[String]) {
    let layout = LayoutStore::open(layout).unwrap();
    let copier = Copier::new(Arc::new(Silent));
    let c = client(addr);
    let (layout, copier, c) = (&layout, &copier, &c);
    // The first repository alone, so that every other one mounts its blobs.
    for batch in [&repos[..1], &repos[1..]] {
        futures::stream::iter(batch)
            .map(|repo| async move {
                let dst = store(c, repo);
                for t in TAGS {
                    let tags = [t.to_string()];
                    let target = Target::Tag(t.to_string());
                    copier
                        .copy(
                            layout,
                            &target,
                            dst.as_ref(),
                            &tags,
                            &CopyOptions::default(),
                        )
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Runs `ferry ARGS` with no credentials, with `envs`.
pub fn ferry(args: &[&str], envs: &[(&str, String)]) -> Output {
    let empty_auth = std::env::temp_dir().join("ferry-sync-no-auth.json");
    std::fs::write(&empty_auth, "{}").unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("REGISTRY_AUTH_FILE", &empty_auth)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Every tag of `repo` at `addr` and the digest it names (a fresh client).
pub async fn tags_at(addr: &str, repo: &str) -> BTreeMap<String, Digest> {
    let s = RegistryStore::new(client(addr), repo);
    let mut out = BTreeMap::new();
    for t in s.list_tags().await.unwrap() {
        let d = s.resolve(&Target::Tag(t.clone())).await.unwrap().unwrap();
        out.insert(t, d.digest);
    }
    out
}

/// Whether `repo` at `addr` holds the manifest `digest`.
pub async fn has_manifest(addr: &str, repo: &str, digest: &Digest) -> bool {
    let s = RegistryStore::new(client(addr), repo);
    s.resolve(&Target::Digest(digest.clone()))
        .await
        .unwrap()
        .is_some()
}

/// The sync engine's way to the test registries, for library-level tests (catalog pages of
/// `page` names, so paging is exercised).
pub struct TestEndpoints {
    pub clients: Vec<RegistryClient>,
    pub page: usize,
}

impl TestEndpoints {
    fn client(&self, registry: &str) -> &RegistryClient {
        self.clients
            .iter()
            .find(|c| c.host() == registry)
            .unwrap_or_else(|| panic!("no client for {registry}"))
    }
}

#[async_trait]
impl Endpoints for TestEndpoints {
    fn open(&self, r: &ImageRef, _side: Side) -> ferry::Result<Arc<dyn Store>> {
        match r {
            ImageRef::Registry(rr) => Ok(store(self.client(&rr.registry), &rr.repository)),
            ImageRef::Layout(_) => panic!("registries only here"),
        }
    }

    async fn catalog(&self, registry: &str) -> ferry::Result<Vec<String>> {
        self.client(registry).catalog(self.page).await
    }
}
