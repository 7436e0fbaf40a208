//! Referrers through a promotion on the real docker-registry (distribution 2.8: no referrers
//! API, so the `sha256-<hex>` fallback tags): a cosign-style signature on the index, an SBOM on
//! a platform manifest, a signature on that SBOM, a legacy `.sig` tag; the destination's
//! fallback tags list them with the same digests, an existing entry there is kept, a second
//! promotion writes nothing, and a corrupt referrer blob stops the promotion with nothing
//! tagged. The CLI: promote's default, copy's opt-in, the dry-run JSON, `ferry referrers`.

use std::process::Command;
use std::sync::Arc;

use crate::promote_common::*;
use crate::support::fixtures::{BuiltImage, ImageSpec};
use crate::support::referrers::*;
use crate::support::registry::Registry;
use ferry::copy::RegistryLimits;
use ferry::promote::{ImageStatus, Outcome, PromoteOptions, Promoter, SilentPlan};
use ferry::referrers::{cosign_tags, fallback_tag, Referrer, ReferrerOptions};
use ferry::store::Target;
use ferry::Digest;

fn promoter_with_referrers() -> Promoter {
    let opts = PromoteOptions {
        referrers: ReferrerOptions::all(),
        ..PromoteOptions::default()
    };
    Promoter::new(opts, RegistryLimits::new(16), Arc::new(SilentPlan))
}

/// The image (a 3-platform index) and its referrers, pushed to `team/api:rc1` at `reg`.
struct Seeded {
    img: BuiltImage,
    sig: Artifact,
    sbom: Artifact,
    sbom_sig: Artifact,
    legacy: Artifact,
}

async fn seed_with_referrers(reg: &Registry, dir: &std::path::Path, seed_n: u64) -> Seeded {
    let spec = ImageSpec::oci_index().seed(seed_n).layers(1, 2048);
    let img = seed(reg, dir, "v1", &spec, "team/api:rc1");
    let src = store(&client(&reg.addr), "team/api");
    let sig = signature(&img.descriptor(), seed_n);
    let sbom = sbom(&img.children[1], seed_n);
    let sbom_sig = signature(&sbom.descriptor(), seed_n + 100);
    let legacy = legacy_signature(seed_n);
    for a in [&sig, &sbom, &sbom_sig] {
        push(src.as_ref(), a, &[]).await;
    }
    let legacy_tag = cosign_tags(&img.digest)[0].clone();
    push(src.as_ref(), &legacy, &[&legacy_tag]).await;
    write_fallback(src.as_ref(), &img.digest, &[&sig]).await;
    write_fallback(src.as_ref(), &img.children[1].digest, &[&sbom]).await;
    write_fallback(src.as_ref(), &sbom.digest(), &[&sbom_sig]).await;
    Seeded {
        img,
        sig,
        sbom,
        sbom_sig,
        legacy,
    }
}

fn entry(a: &Artifact) -> Referrer {
    Referrer::of(&a.manifest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_referrers_are_promoted_merged_and_left_alone_the_second_time() {
    let (src_reg, dst_reg) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let s = seed_with_referrers(&src_reg, dir.path(), 61).await;
    let (sc, dc) = (client(&src_reg.addr), client(&dst_reg.addr));
    let dst = store(&dc, "prod/api");
    // Another client already signed the image at the destination: its entry must survive.
    let other = signature(&s.img.descriptor(), 999);
    push(dst.as_ref(), &other, &[]).await;
    write_fallback(dst.as_ref(), &s.img.digest, &[&other]).await;

    let p = promoter_with_referrers();
    let report = p
        .run(&[job(&sc, "team/api:rc1", &dc, "prod/api", &["1.0"])])
        .await;
    assert_eq!(report.outcome, Outcome::Promoted, "{report:#?}");
    let i = &report.images[0];
    assert_eq!(i.referrers.len(), 4, "{:#?}", i.referrers);
    assert!(i.referrers.iter().all(|f| !f.present));
    assert_eq!(
        fallback_entries(dst.as_ref(), &s.img.digest).await.unwrap(),
        vec![entry(&other), entry(&s.sig)],
        "merged: the existing entry first, then ferry's, each with artifactType and annotations"
    );
    assert_eq!(
        fallback_entries(dst.as_ref(), &s.img.children[1].digest)
            .await
            .unwrap(),
        vec![entry(&s.sbom)]
    );
    assert_eq!(
        fallback_entries(dst.as_ref(), &s.sbom.digest())
            .await
            .unwrap(),
        vec![entry(&s.sbom_sig)],
        "a signature on the SBOM travels too"
    );
    let legacy_tag = cosign_tags(&s.img.digest)[0].clone();
    assert_eq!(
        tag_of(&dst_reg.addr, "prod/api", &legacy_tag).await,
        Some(s.legacy.digest())
    );
    assert_eq!(
        tag_of(&dst_reg.addr, "prod/api", "1.0").await,
        Some(s.img.digest.clone())
    );
    // Every referrer's bytes are at the destination, under the same digests.
    for a in [&s.sig, &s.sbom, &s.sbom_sig, &s.legacy] {
        let m = dst.get_manifest(&Target::Digest(a.digest())).await.unwrap();
        assert_eq!(m.bytes, a.manifest.bytes);
        for (d, _) in &a.blobs {
            assert!(dst.has_blob(d).await.unwrap(), "{} missing", d.digest);
        }
    }
    assert!(
        i.referrer_tags.contains(&fallback_tag(&s.img.digest)),
        "{i:#?}"
    );

    // The second time: everything is there, nothing is written.
    let before = writes(&dst_reg).len();
    let again = p
        .run(&[job(&sc, "team/api:rc1", &dc, "prod/api", &["1.0"])])
        .await;
    assert_eq!(again.outcome, Outcome::Promoted, "{again:#?}");
    let j = &again.images[0];
    assert!(j.referrers.iter().all(|f| f.present), "{:#?}", j.referrers);
    assert!(j.referrer_tags.is_empty(), "{:?}", j.referrer_tags);
    let after = writes(&dst_reg);
    assert_eq!(after.len(), before, "{:#?}", &after[before..]);
}

/// The data file of a blob in docker-registry's filesystem storage.
fn blob_file(reg: &Registry, d: &Digest) -> std::path::PathBuf {
    let hex = d.hex();
    reg.storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_referrer_blob_fails_the_promotion_with_nothing_tagged() {
    let (src_reg, dst_reg) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let s = seed_with_referrers(&src_reg, dir.path(), 62).await;
    // Same size, other bytes: only hashing can tell.
    let bundle = &s.sig.blobs[1].0;
    let file = blob_file(&src_reg, &bundle.digest);
    let mut bytes = std::fs::read(&file).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let (sc, dc) = (client(&src_reg.addr), client(&dst_reg.addr));
    let report = promoter_with_referrers()
        .run(&[job(&sc, "team/api:rc1", &dc, "prod/api", &["1.0"])])
        .await;
    assert_eq!(report.outcome, Outcome::NoTagsWritten, "{report:#?}");
    let i = &report.images[0];
    assert_eq!(i.status, ImageStatus::Failed);
    let e = i.error.as_ref().unwrap();
    assert!(
        matches!(e.root(), ferry::Error::DigestMismatch { .. })
            || matches!(e.root(), ferry::Error::Many(v) if v.iter().any(|e| matches!(e.root(), ferry::Error::DigestMismatch { .. }))),
        "{e}"
    );
    let dst = store(&dc, "prod/api");
    assert_eq!(tag_of(&dst_reg.addr, "prod/api", "1.0").await, None);
    let legacy_tag = cosign_tags(&s.img.digest)[0].clone();
    assert_eq!(tag_of(&dst_reg.addr, "prod/api", &legacy_tag).await, None);
    assert!(fallback_entries(dst.as_ref(), &s.img.digest)
        .await
        .is_none());
    assert!(dst.list_tags().await.unwrap().is_empty());
}

fn ferry(args: &[&str]) -> std::process::Output {
    let empty_auth = std::env::temp_dir().join("ferry-referrers-no-auth.json");
    std::fs::write(&empty_auth, "{}").unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("REGISTRY_AUTH_FILE", &empty_auth)
        .env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("ferry-referrers-no-docker"),
        )
        .output()
        .unwrap()
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_plans_and_copies_referrers() {
    let (src_reg, dst_reg) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let s = seed_with_referrers(&src_reg, dir.path(), 63).await;
    let src_ref = src_reg.image("team/api:rc1");

    // ferry referrers: the tree, each referrer under its subject.
    let tree = json(&ferry(&["referrers", "--json", &src_ref]));
    let manifests = tree["manifests"].as_array().unwrap();
    assert_eq!(
        manifests.len(),
        4,
        "the index and its 3 platforms: {tree:#}"
    );
    assert_eq!(manifests[0]["digest"], s.img.digest.to_string());
    let root: Vec<&str> = manifests[0]["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap())
        .collect();
    let (sig, legacy) = (s.sig.digest().to_string(), s.legacy.digest().to_string());
    assert_eq!(root, vec![sig.as_str(), legacy.as_str()], "{tree:#}");
    let sbom_node = &manifests[2]["referrers"][0];
    assert_eq!(sbom_node["digest"], s.sbom.digest().to_string());
    assert_eq!(sbom_node["artifactType"], SPDX);
    assert_eq!(
        sbom_node["referrers"][0]["digest"],
        s.sbom_sig.digest().to_string()
    );
    assert_eq!(
        manifests[0]["referrers"][0]["annotations"]["dev.sigstore.bundle.content"],
        "dsse-envelope"
    );
    let text = ferry(&["referrers", &src_ref]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(ferry::referrers::SIGSTORE_BUNDLE), "{text}");
    let filtered = json(&ferry(&[
        "referrers",
        "--json",
        "--referrers-type",
        SPDX,
        &src_ref,
    ]));
    assert!(
        filtered["manifests"][0]["referrers"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{filtered:#}"
    );

    // promote --dry-run --json: on by default, the referrers that would move, nothing written.
    let dst_ref = dst_reg.image("prod/api:1.0");
    let plan = json(&ferry(&[
        "promote",
        "--dry-run",
        "--json",
        &src_ref,
        &dst_ref,
    ]));
    let listed = plan["images"][0]["referrers"].as_array().unwrap();
    assert_eq!(listed.len(), 4, "{plan:#}");
    assert!(listed.iter().all(|r| r["present"] == false));
    assert!(writes(&dst_reg).is_empty(), "a dry run wrote");
    let off = json(&ferry(&[
        "promote",
        "--dry-run",
        "--json",
        "--no-referrers",
        &src_ref,
        &dst_ref,
    ]));
    assert!(off["images"][0].get("referrers").is_none(), "{off:#}");

    // copy: opt-in. Without --referrers nothing but the image; with a type filter, that type.
    let copy_dst = dst_reg.image("mirror/api:rc1");
    json(&ferry(&["copy", "--json", &src_ref, &copy_dst]));
    let mirror = store(&client(&dst_reg.addr), "mirror/api");
    assert!(fallback_entries(mirror.as_ref(), &s.img.digest)
        .await
        .is_none());
    let copied = json(&ferry(&[
        "copy",
        "--json",
        "--referrers-type",
        SPDX,
        &src_ref,
        &copy_dst,
    ]));
    assert_eq!(
        copied["referrers"].as_array().unwrap().len(),
        1,
        "{copied:#}"
    );
    assert!(fallback_entries(mirror.as_ref(), &s.img.digest)
        .await
        .is_none());
    assert_eq!(
        fallback_entries(mirror.as_ref(), &s.img.children[1].digest)
            .await
            .unwrap(),
        vec![entry(&s.sbom)]
    );
}

/// `ferry sync` takes referrers along by default (as promote does), over the fallback tags of
/// the real registry; `--no-referrers` and an entry's `referrers: false` leave them behind, and
/// the `sha256-<hex>` tags in the source's tag list are not synced as tags of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_takes_referrers_by_default_and_leaves_them_when_told() {
    let (src_reg, dst_reg) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let s = seed_with_referrers(&src_reg, dir.path(), 71).await;
    let config = |dest: &str, extra: &str| {
        format!(
            "sync:\n  - source: {}/team\n    repositories: [api]\n    destination: {}/{dest}\n{extra}",
            src_reg.addr, dst_reg.addr
        )
    };
    let run = |name: &str, text: String, flags: &[&str]| {
        let path = crate::sync_support::write(dir.path(), name, &text);
        let mut args = vec!["sync"];
        args.extend_from_slice(flags);
        args.push(&path);
        let out = crate::sync_support::ferry(&args, &[]);
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("default.yaml", config("mirror", ""), &[]);
    run("off.yaml", config("plain", ""), &["--no-referrers"]);
    run(
        "entry-off.yaml",
        config("entry", "    referrers: false\n"),
        &[],
    );

    let at = |repo: &str| store(&client(&dst_reg.addr), repo);
    let mirror = at("mirror/api");
    assert_eq!(
        fallback_entries(mirror.as_ref(), &s.img.digest)
            .await
            .unwrap(),
        vec![entry(&s.sig)]
    );
    assert_eq!(
        fallback_entries(mirror.as_ref(), &s.img.children[1].digest)
            .await
            .unwrap(),
        vec![entry(&s.sbom)]
    );
    let legacy_tag = cosign_tags(&s.img.digest)[0].clone();
    assert_eq!(
        tag_of(&dst_reg.addr, "mirror/api", &legacy_tag).await,
        Some(s.legacy.digest())
    );
    assert_eq!(
        tag_of(&dst_reg.addr, "mirror/api", "rc1").await,
        Some(s.img.digest.clone())
    );
    for repo in ["plain/api", "entry/api"] {
        assert_eq!(
            tag_of(&dst_reg.addr, repo, "rc1").await,
            Some(s.img.digest.clone()),
            "{repo}"
        );
        let tags = crate::sync_support::tags_at(&dst_reg.addr, repo).await;
        assert_eq!(tags.keys().collect::<Vec<_>>(), ["rc1"], "{repo}: {tags:?}");
    }
}
