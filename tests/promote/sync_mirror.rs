//! `ferry sync` against real registries: 20 repositories × 10 tags, filters of every kind, the
//! destination checked with skopeo; a warm run that only HEADs and lists (counted); shards whose
//! union is the whole and that never overlap; N `--shard auto` processes started at once as an
//! Indexed Job runs them, leaving the destination identical to one process's sync.
//!
//! One test seeds one source and runs every stage over it: seeding 200 tags once is what keeps
//! this within seconds.

use std::collections::{BTreeMap, BTreeSet};

use ferry::copy::RegistryLimits;
use ferry::sync::{Shard, SilentSync, SyncOptions, SyncPlan, Syncer};
use ferry::Digest;
use serde_json::Value;

use crate::promote_cli::{code, json, stderr};
use crate::promote_common::client;
use crate::support::fixtures::{inspect_digest, BuiltImage};
use crate::support::registry::Registry;
use crate::sync_support::*;

fn repositories() -> Vec<String> {
    let mut r: Vec<String> = (0..12).map(|i| format!("team/r{i:02}")).collect();
    r.extend((12..18).map(|i| format!("team/cat-r{i}")));
    r.extend((18..20).map(|i| format!("team/plat-r{i}")));
    r
}

fn config(src: &str, dst: &str, pin: &Digest) -> String {
    format!(
        r#"limits: {{"{dst}": 8}}
sync:
  - source: {src}/team
    repositories: [r00, r01, r02]
    destination: {dst}/mirror
    tags: ["1.0.0", latest, "{pin}"]
  - source: {src}/team
    repositories: [r03, r04, r05]
    destination: {dst}/mirror
    tags: {{allow: ['^1\.'], deny: ['-rc']}}
  - source: {src}/team
    repositories: [r06, r07, r08]
    destination: {dst}/mirror
    tags: {{semver: '>=1.2 <2'}}
  - source: {src}/team
    repositories: [r09, r10, r11]
    destination: {dst}/mirror
    tags: {{latest: 3}}
  - source: {src}/team
    repositories: ["cat-*"]
    destination: {dst}/mirror
  - source: {src}/team
    repositories: [plat-r18, plat-r19]
    destination: {dst}/mirror
    tags: [latest, "1.0.0"]
    platforms: [linux/amd64]
  - images: ["{src}/team/r00:2.0.0"]
    destination: {dst}/base
"#
    )
}

/// (repository, tag) → digest at a destination.
type State = BTreeMap<(String, String), Digest>;

/// What the destination must hold: (repository, tag) → digest, and (repository, digest) pins.
fn expected(built: &BTreeMap<&str, BuiltImage>) -> (State, Vec<(String, Digest)>) {
    let d = |t: &str| built[t].digest.clone();
    let mut tags = BTreeMap::new();
    let mut put = |repo: &str, list: &[&str]| {
        for t in list {
            tags.insert((format!("mirror/{repo}"), t.to_string()), d(t));
        }
    };
    for r in ["r00", "r01", "r02"] {
        put(r, &["1.0.0", "latest"]);
    }
    for r in ["r03", "r04", "r05"] {
        put(r, &["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
    }
    for r in ["r06", "r07", "r08"] {
        put(r, &["1.2.0", "1.3.0"]);
    }
    for r in ["r09", "r10", "r11"] {
        put(r, &["1.3.0", "2.0.0", "v2.1"]);
    }
    for i in 12..18 {
        put(&format!("cat-r{i}"), &TAGS);
    }
    let amd64 = built["latest"].children[0].digest.clone();
    for i in 18..20 {
        tags.insert(
            (format!("mirror/plat-r{i}"), "latest".into()),
            amd64.clone(),
        );
        tags.insert((format!("mirror/plat-r{i}"), "1.0.0".into()), d("1.0.0"));
    }
    tags.insert(("base/r00".into(), "2.0.0".into()), d("2.0.0"));
    let pins = ["r00", "r01", "r02"]
        .iter()
        .map(|r| (format!("mirror/{r}"), d("2.0.0")))
        .collect();
    (tags, pins)
}

/// Every tag of every destination repository the config can write.
async fn destination_state(addr: &str) -> State {
    let mut repos: Vec<String> = repositories()
        .iter()
        .map(|r| format!("mirror/{}", r.trim_start_matches("team/")))
        .collect();
    repos.push("base/r00".into());
    let mut out = BTreeMap::new();
    for repo in repos {
        for (t, d) in tags_at(addr, &repo).await {
            out.insert((repo.clone(), t), d);
        }
    }
    out
}

fn requests(report: &Value, side: &str) -> Value {
    report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["side"] == side)
        .unwrap_or_else(|| panic!("no {side} requests in {report}"))
        .clone()
}

#[test]
fn sync_mirrors_filters_incrementally_and_in_shards() {
    let (src, dst, dst2) = (Registry::start(), Registry::start(), Registry::start());
    let repos = repositories();
    let built = seed_many(&src, &repos);
    let pin = built["2.0.0"].digest.clone();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "mirror.yaml",
        &config(&src.addr, &dst.addr, &pin),
    );
    let (want, pins) = expected(&built);
    let rt = runtime();

    // Cold: exactly the selected tags, digests read back by skopeo.
    let o = ferry(&["sync", "--json", &cfg], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let cold = json(&o);
    let targets = want.len() + pins.len();
    assert_eq!(targets, 101);
    assert_eq!(
        cold["totals"]["copied"].as_u64().unwrap() as usize,
        targets,
        "{cold}"
    );
    assert_eq!(cold["totals"]["failed"], 0);
    assert_eq!(cold["totals"]["repositories"], 21);
    let have = rt.block_on(destination_state(&dst.addr));
    assert_eq!(
        have, want,
        "the destination holds exactly the selected tags"
    );
    for (repo, digest) in &pins {
        assert!(
            rt.block_on(has_manifest(&dst.addr, repo, digest)),
            "{repo}@{digest}"
        );
    }
    let refs: Vec<(String, Digest)> = want
        .iter()
        .map(|((repo, tag), d)| (format!("docker://{}/{repo}:{tag}", dst.addr), d.clone()))
        .collect();
    std::thread::scope(|s| {
        for chunk in refs.chunks(refs.len().div_ceil(4)) {
            s.spawn(move || {
                for (r, d) in chunk {
                    assert_eq!(&inspect_digest(r), d, "skopeo reads {r}");
                }
            });
        }
    });
    // Blobs crossed once: later repositories mounted them.
    let blobs = &cold["totals"]["blobs"];
    assert!(
        blobs["mounted"].as_u64().unwrap() > blobs["copied"].as_u64().unwrap(),
        "{blobs}"
    );
    // A blob with a known mount source is mounted without a HEAD first, and a tag the fresh
    // destination lacks is read from the source with one GET, no HEAD before it.
    let (s, d) = (requests(&cold, "source"), requests(&cold, "destination"));
    let heads = d["blob_heads"].as_u64().unwrap();
    let not_mounted = blobs["copied"].as_u64().unwrap() + blobs["skipped"].as_u64().unwrap();
    assert!(heads <= not_mounted, "{heads} blob HEADs: {blobs} {d}");
    assert_eq!(s["manifest_heads"], 0, "{s}");

    // Warm: one HEAD per tag on each side, one tag list per filtered repository, the catalog.
    let log_before = dst.log().lines().count();
    let o = ferry(&["sync", "--json", &cfg], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let warm = json(&o);
    let t = &warm["totals"];
    assert_eq!(
        (t["copied"].as_u64(), t["failed"].as_u64()),
        (Some(0), Some(0)),
        "{t}"
    );
    let n = t["skipped"].as_u64().unwrap();
    assert_eq!(n as usize, targets);
    let (s, d) = (requests(&warm, "source"), requests(&warm, "destination"));
    assert_eq!(
        d["requests"], d["manifest_heads"],
        "destination: HEADs only: {d}"
    );
    assert_eq!(d["manifest_heads"].as_u64().unwrap(), n);
    // 15 repositories are listed (no exact list), the catalog once; the 4 platform-selected
    // tags read their source manifest (2 requests each), the 3 pins need no source request.
    let lists = s["tag_list_pages"].as_u64().unwrap() + s["catalog_pages"].as_u64().unwrap();
    // A tag in step is skipped before any referrer is looked for, platform-selected or not.
    assert_eq!(lists, 15 + 1, "{s}");
    let platform_reads = s["manifest_gets"].as_u64().unwrap() + s["blob_gets"].as_u64().unwrap();
    assert_eq!(platform_reads, 8, "{s}");
    let heads = s["manifest_heads"].as_u64().unwrap();
    assert_eq!(heads, n - 3 - 4, "{s}");
    assert_eq!(
        s["requests"].as_u64().unwrap(),
        heads + lists + platform_reads,
        "{s}"
    );
    let total = warm["totals"]["requests"].as_u64().unwrap();
    assert!(total <= 2 * n + 21, "{total} requests for {n} tags");
    let new_lines: Vec<String> = dst
        .log()
        .lines()
        .skip(log_before)
        .map(String::from)
        .collect();
    let others: Vec<&String> = new_lines
        .iter()
        .filter(|l| l.contains(" HTTP/1.1\"") && !l.contains("\"HEAD "))
        .collect();
    assert!(
        others.is_empty(),
        "the warm run sent more than HEADs: {others:?}"
    );

    // Shards: for N = 1..5, union = whole and pairwise disjoint (the catalog read in pages).
    let plan = SyncPlan::load(std::path::Path::new(&cfg)).unwrap();
    let ends = TestEndpoints {
        clients: vec![client(&src.addr), client(&dst.addr)],
        page: 7,
    };
    let units = |shard: Shard| {
        let opts = SyncOptions {
            shard,
            ..SyncOptions::default()
        };
        let syncer = Syncer::new(
            opts,
            RegistryLimits::unlimited(),
            std::sync::Arc::new(SilentSync),
        );
        let (units, errors) = rt.block_on(syncer.plan(&plan, &ends));
        assert!(errors.is_empty());
        units
            .iter()
            .map(|u| format!("{}#{}", u.key(), u.entry))
            .collect::<BTreeSet<_>>()
    };
    let whole = units(Shard::WHOLE);
    assert_eq!(whole.len(), 21);
    for count in 1..=5 {
        let parts: Vec<BTreeSet<String>> = (0..count)
            .map(|k| units(Shard::new(k, count).unwrap()))
            .collect();
        let union: BTreeSet<String> = parts.iter().flatten().cloned().collect();
        assert_eq!(union, whole, "N={count}");
        assert_eq!(
            parts.iter().map(|p| p.len()).sum::<usize>(),
            whole.len(),
            "N={count}: overlap"
        );
        if count > 1 {
            assert!(
                parts.iter().filter(|p| !p.is_empty()).count() > 1,
                "N={count}: one shard took all"
            );
        }
    }
    assert!(
        ends.clients[0].stats().catalog_pages >= 3,
        "the catalog is read in pages of 7"
    );

    // The Job as Kubernetes runs it: three processes at once, JOB_COMPLETION_INDEX=0..2.
    let cfg2 = write(
        dir.path(),
        "mirror2.yaml",
        &config(&src.addr, &dst2.addr, &pin),
    );
    let children: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args(["sync", "--quiet", "--shard", "auto", &cfg2])
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env("FERRY_SHARD_COUNT", "3")
                .env(
                    "REGISTRY_AUTH_FILE",
                    std::env::temp_dir().join("ferry-sync-no-auth.json"),
                )
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let sharded = rt.block_on(destination_state(&dst2.addr));
    assert_eq!(sharded, have, "three shards leave what one process left");
    for (repo, digest) in &pins {
        assert!(
            rt.block_on(has_manifest(&dst2.addr, repo, digest)),
            "{repo}@{digest}"
        );
    }
}
