//! Referrers in and out of OCI layouts: a registry's fallback-tag referrers copied into a layout
//! (untagged `index.json` entries whose `subject` names the image), listed there, and copied
//! from the layout to another registry, which gets its fallback tag back with the same digests.

use std::sync::Arc;

use crate::support::referrers::*;
use crate::support::registry::Registry;
use ferry::copy::{Copier, CopyOptions};
use ferry::progress::Silent;
use ferry::referrers::{Referrer, ReferrerOptions};
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore};
use ferry::store::{Store, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_go_through_a_layout_and_back() {
    let reg = Registry::start();
    let c = RegistryClient::new(&reg.addr, RegistryOptions::default()).unwrap();
    let src = RegistryStore::new(c.clone(), "team/app");
    let image = legacy_signature(4242);
    push(&src, &image, &["v1"]).await;
    let sig = signature(&image.descriptor(), 1);
    let bom = sbom(&image.descriptor(), 2);
    push(&src, &sig, &[]).await;
    push(&src, &bom, &[]).await;
    write_fallback(&src, &image.digest(), &[&sig, &bom]).await;

    let dir = tempfile::tempdir().unwrap();
    let layout = LayoutStore::create(dir.path()).unwrap();
    let opts = CopyOptions {
        referrers: ReferrerOptions::all(),
        ..CopyOptions::default()
    };
    let copier = Copier::new(Arc::new(Silent));
    let tag = Target::Tag("v1".into());
    copier
        .copy(&src, &tag, &layout, &["v1".into()], &opts)
        .await
        .unwrap();
    let listed = layout.referrers(&image.digest(), &[]).await.unwrap();
    let mut want = vec![Referrer::of(&sig.manifest), Referrer::of(&bom.manifest)];
    let key = |r: &Referrer| r.digest.to_string();
    want.sort_by_key(key);
    let mut got = listed.clone();
    got.sort_by_key(key);
    assert_eq!(got, want);
    let index = std::fs::read_to_string(dir.path().join("index.json")).unwrap();
    assert!(index.contains(&sig.digest().to_string()), "{index}");
    let only_sbom = layout
        .referrers(&image.digest(), &[SPDX.into()])
        .await
        .unwrap();
    assert_eq!(only_sbom, vec![Referrer::of(&bom.manifest)]);

    let back = RegistryStore::new(c, "prod/app");
    let r = copier
        .copy(&layout, &tag, &back, &["v1".into()], &opts)
        .await
        .unwrap();
    assert_eq!(r.referrers.len(), 2, "{r:#?}");
    let mut entries = fallback_entries(&back, &image.digest()).await.unwrap();
    entries.sort_by_key(key);
    assert_eq!(entries, want, "same digests, artifactType and annotations");
}
