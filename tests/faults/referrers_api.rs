//! The referrers API path: the fault server's API (paged with `Link`, the `artifactType`
//! filter with and without `OCI-Filters-Applied`, `OCI-Subject` on push), and
//! `ferro-oci-server` (an independent OCI 1.1 implementation, in-process) in a round trip
//! API registry → docker-registry (fallback tags) → API registry.

use std::sync::Arc;

use crate::support::fault_server::{FaultConfig, FaultServer, Kind, Quirks};
use crate::support::referrers::*;
use crate::support::registry::Registry;
use ferry::copy::{Copier, CopyOptions};
use ferry::progress::Silent;
use ferry::referrers::{fallback_tag, Referrer, ReferrerOptions, SIGSTORE_BUNDLE};
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore};
use ferry::store::{Store, Target};

fn client(host: &str) -> RegistryClient {
    RegistryClient::new(host, RegistryOptions::default()).unwrap()
}

fn api_server(page: Option<usize>, filter: bool) -> FaultServer {
    FaultServer::start(FaultConfig {
        quirks: Quirks {
            referrers_api: true,
            referrers_page_size: page,
            referrers_filter: filter,
            ..Quirks::default()
        },
        ..FaultConfig::default()
    })
}

/// A plain image (no subject) tagged `v1`, and `n` signatures plus 2 SBOMs referring to it.
async fn seed(store: &dyn Store, n: u64) -> (Artifact, Vec<Artifact>) {
    let image = legacy_signature(7000 + n);
    push(store, &image, &["v1"]).await;
    let mut referrers: Vec<Artifact> = (0..n).map(|i| signature(&image.descriptor(), i)).collect();
    referrers.push(sbom(&image.descriptor(), 1));
    referrers.push(sbom(&image.descriptor(), 2));
    for r in &referrers {
        push(store, r, &[]).await;
    }
    (image, referrers)
}

fn sorted(mut v: Vec<Referrer>) -> Vec<String> {
    let mut d: Vec<String> = v.drain(..).map(|r| r.digest.to_string()).collect();
    d.sort();
    d
}

fn digests(a: &[&Artifact]) -> Vec<String> {
    let mut d: Vec<String> = a.iter().map(|a| a.digest().to_string()).collect();
    d.sort();
    d
}

fn with_referrers() -> CopyOptions {
    CopyOptions {
        referrers: ReferrerOptions::all(),
        ..CopyOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_pages_are_followed_and_unapplied_filters_are_applied_here() {
    let server = api_server(Some(2), false);
    let c = client(&server.host());
    let store = RegistryStore::new(c.clone(), "team/app");
    let (image, refs) = seed(&store, 3).await;
    let all = store.referrers(&image.digest(), &[]).await.unwrap();
    assert_eq!(sorted(all), digests(&refs.iter().collect::<Vec<_>>()));
    assert_eq!(server.count(Kind::Referrers), 3, "5 entries in pages of 2");
    assert_eq!(c.referrers_api(), Some(true));
    // The server ignores ?artifactType= (no OCI-Filters-Applied): ferry filters.
    let sboms = store
        .referrers(&image.digest(), &[SPDX.to_string()])
        .await
        .unwrap();
    assert_eq!(sorted(sboms), digests(&[&refs[3], &refs[4]]));
    let asked = server.requests();
    assert!(
        asked.iter().any(|r| r.kind == Kind::Referrers
            && r.uri.contains("artifactType=application%2Fspdx%2Bjson")),
        "the filter was asked for"
    );
    // Several types: no query, filtered here too.
    let both = store
        .referrers(
            &image.digest(),
            &[SPDX.to_string(), SIGSTORE_BUNDLE.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(both.len(), 5);
    // An unknown subject has no referrers (200, an empty index): not "no API".
    let none = store.referrers(&refs[0].digest(), &[]).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_applied_by_the_registry_are_trusted_and_oci_subject_means_no_fallback_tag() {
    let server = api_server(Some(1), true);
    let store = RegistryStore::new(client(&server.host()), "team/app");
    let (image, refs) = seed(&store, 2).await;
    let sigs = store
        .referrers(&image.digest(), &[SIGSTORE_BUNDLE.to_string()])
        .await
        .unwrap();
    assert_eq!(sorted(sigs), digests(&[&refs[0], &refs[1]]));
    assert_eq!(
        server.count(Kind::Referrers),
        2,
        "pages of 1, filtered by the server"
    );

    // Copy to another API registry: it answers OCI-Subject, so no fallback tag is written.
    let dst_server = api_server(None, false);
    let dc = client(&dst_server.host());
    let dst = RegistryStore::new(dc.clone(), "prod/app");
    let copier = Copier::new(Arc::new(Silent));
    let r = copier
        .copy(
            &store,
            &Target::Tag("v1".into()),
            &dst,
            &["v1".into()],
            &with_referrers(),
        )
        .await
        .unwrap();
    assert_eq!(r.referrers.len(), 4, "{r:#?}");
    assert!(r.referrer_tags.is_empty(), "{:?}", r.referrer_tags);
    assert_eq!(dst_server.tags("prod/app"), vec!["v1".to_string()]);
    let listed = dst.referrers(&image.digest(), &[]).await.unwrap();
    assert_eq!(sorted(listed), digests(&refs.iter().collect::<Vec<_>>()));

    // To a registry without the API (the fault server's default: 404 there): fallback tag.
    let plain = FaultServer::start(FaultConfig::default());
    let pc = client(&plain.host());
    let pdst = RegistryStore::new(pc.clone(), "prod/app");
    let r = copier
        .copy(
            &dst,
            &Target::Tag("v1".into()),
            &pdst,
            &["v1".into()],
            &with_referrers(),
        )
        .await
        .unwrap();
    assert_eq!(r.referrer_tags, vec![fallback_tag(&image.digest())]);
    let entries = fallback_entries(&pdst, &image.digest()).await.unwrap();
    assert_eq!(sorted(entries), digests(&refs.iter().collect::<Vec<_>>()));
    assert_eq!(pc.referrers_api(), None, "nothing listed there yet");
    assert_eq!(pdst.referrers(&image.digest(), &[]).await.unwrap().len(), 4);
    assert_eq!(pc.referrers_api(), Some(false), "a 404 means no API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferro_api_to_docker_registry_fallback_and_back() {
    let ferro = Ferro::start();
    let fc = client(&ferro.addr);
    let src = RegistryStore::new(fc.clone(), "team/app");
    let (image, refs) = seed(&src, 2).await;
    let all: Vec<&Artifact> = refs.iter().collect();
    // ferro applies the filter itself (OCI-Filters-Applied).
    let sboms = src
        .referrers(&image.digest(), &[SPDX.to_string()])
        .await
        .unwrap();
    assert_eq!(sorted(sboms), digests(&[&refs[2], &refs[3]]));
    assert_eq!(fc.referrers_api(), Some(true));
    let entry = src.referrers(&image.digest(), &[]).await.unwrap();
    let sig = entry.iter().find(|r| r.digest == refs[0].digest()).unwrap();
    assert_eq!(
        sig,
        &Referrer::of(&refs[0].manifest),
        "artifactType and annotations as ferry derives them"
    );

    // API → fallback (docker-registry 2.8).
    let reg = Registry::start();
    let rc = client(&reg.addr);
    let mid = RegistryStore::new(rc.clone(), "mirror/app");
    let copier = Copier::new(Arc::new(Silent));
    let tag = Target::Tag("v1".into());
    let r = copier
        .copy(&src, &tag, &mid, &["v1".into()], &with_referrers())
        .await
        .unwrap();
    assert_eq!(r.referrer_tags, vec![fallback_tag(&image.digest())]);
    let fallback = fallback_entries(&mid, &image.digest()).await.unwrap();
    assert_eq!(sorted(fallback), digests(&all));
    for a in &all {
        let m = mid.get_manifest(&Target::Digest(a.digest())).await.unwrap();
        assert_eq!(m.bytes, a.manifest.bytes, "digests kept");
    }

    // Fallback → API (another repository of ferro): ferro indexes them, no tag written.
    let back = RegistryStore::new(fc.clone(), "back/app");
    let r = copier
        .copy(&mid, &tag, &back, &["v1".into()], &with_referrers())
        .await
        .unwrap();
    assert_eq!(r.referrers.len(), 4, "{r:#?}");
    assert!(r.referrer_tags.is_empty(), "{:?}", r.referrer_tags);
    let listed = back.referrers(&image.digest(), &[]).await.unwrap();
    assert_eq!(sorted(listed), digests(&all));
    assert!(back
        .resolve(&Target::Tag(fallback_tag(&image.digest())))
        .await
        .unwrap()
        .is_none());
    assert_eq!(back.list_tags().await.unwrap(), vec!["v1".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_writer_of_the_fallback_tag_is_caught_and_merged_with() {
    let src_server = api_server(None, false);
    let src = RegistryStore::new(client(&src_server.host()), "team/app");
    let (image, refs) = seed(&src, 1).await;
    let plain = FaultServer::start(FaultConfig::default());
    let dst = RegistryStore::new(client(&plain.host()), "prod/app");
    push(&dst, &image, &[]).await;
    // Another client signs the image at the destination right after ferry's fallback write.
    let rival_sig = signature(&image.descriptor(), 77);
    push(&dst, &rival_sig, &[]).await;
    let rival = ferry::referrers::build_index(&[Referrer::of(&rival_sig.manifest)]);
    let rival_digest = plain.put_manifest_untagged("prod/app", &rival.bytes, &rival.media_type);
    let tag = fallback_tag(&image.digest());
    plain.rival_write_after_put("prod/app", &tag, &rival_digest);
    let r = Copier::new(Arc::new(Silent))
        .copy(
            &src,
            &Target::Tag("v1".into()),
            &dst,
            &["v1".into()],
            &with_referrers(),
        )
        .await
        .unwrap();
    assert_eq!(r.referrer_tags, vec![tag.clone()]);
    let entries = fallback_entries(&dst, &image.digest()).await.unwrap();
    let mut want: Vec<&Artifact> = refs.iter().collect();
    want.push(&rival_sig);
    assert_eq!(
        sorted(entries),
        digests(&want),
        "the rival's entry and ferry's"
    );
    let puts = plain
        .requests()
        .iter()
        .filter(|l| l.kind == Kind::ManifestPut && l.uri.ends_with(&tag))
        .count();
    assert_eq!(puts, 2, "written, found changed, merged and written again");
}

#[tokio::test]
async fn referrers_are_pushed_after_their_subject_and_before_the_tags() {
    use ferry::store::memory::{MemoryStore, Write};
    let src = MemoryStore::new("src");
    let (image, refs) = seed(&src, 1).await;
    let on_sbom = signature(&refs[1].descriptor(), 5);
    push(&src, &on_sbom, &[]).await;
    let dst = MemoryStore::new("dst");
    let r = Copier::new(Arc::new(Silent))
        .copy(
            &src,
            &Target::Tag("v1".into()),
            &dst,
            &["v1".into()],
            &with_referrers(),
        )
        .await
        .unwrap();
    assert_eq!(r.referrers.len(), 4, "{r:#?}");
    let writes = dst.writes();
    let at = |w: &Write| {
        writes
            .iter()
            .position(|x| x == w)
            .unwrap_or_else(|| panic!("{w:?} not written: {writes:?}"))
    };
    let root = at(&Write::Manifest(image.digest()));
    let tag = at(&Write::Tag("v1".into(), image.digest()));
    for a in refs.iter().chain([&on_sbom]) {
        let m = at(&Write::Manifest(a.digest()));
        assert!(root < m && m < tag, "{writes:?}");
        for (d, _) in &a.blobs {
            assert!(at(&Write::Blob(d.digest.clone())) < m, "{writes:?}");
        }
    }
    assert!(
        at(&Write::Manifest(refs[1].digest())) < at(&Write::Manifest(on_sbom.digest())),
        "a referrer of a referrer after its subject"
    );
    // Without the option, only the image.
    let plain = MemoryStore::new("plain");
    Copier::new(Arc::new(Silent))
        .copy(
            &src,
            &Target::Tag("v1".into()),
            &plain,
            &["v1".into()],
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert!(plain
        .referrers(&image.digest(), &[])
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fallback_entry_at_the_source_is_skipped() {
    let server = FaultServer::start(FaultConfig::default());
    let src = RegistryStore::new(client(&server.host()), "team/app");
    let (image, refs) = seed(&src, 1).await;
    let gone = signature(&image.descriptor(), 404);
    let listed: Vec<Referrer> = [&refs[0], &gone]
        .iter()
        .map(|a| Referrer::of(&a.manifest))
        .collect();
    let index = ferry::referrers::build_index(&listed);
    let tag = fallback_tag(&image.digest());
    server.put_manifest("team/app", &tag, &index.bytes, &index.media_type);
    let dst_server = FaultServer::start(FaultConfig::default());
    let dst = RegistryStore::new(client(&dst_server.host()), "prod/app");
    let r = Copier::new(Arc::new(Silent))
        .copy(
            &src,
            &Target::Tag("v1".into()),
            &dst,
            &["v1".into()],
            &with_referrers(),
        )
        .await
        .unwrap();
    assert_eq!(r.referrers.len(), 1, "{r:#?}");
    let entries = fallback_entries(&dst, &image.digest()).await.unwrap();
    assert_eq!(sorted(entries), digests(&[&refs[0]]));
}
