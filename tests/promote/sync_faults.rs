//! `ferry sync` when things go wrong: one source tag whose manifest answers 500 (the in-process
//! fault server) does not stop the rest (`--keep-going`, the default) but is reported and makes
//! the exit non-zero; `--fail-fast` stops; a registry that says few requests remain
//! (`RateLimit-Remaining`) is paced; `--dry-run` writes nothing; config errors point at lines.

use crate::promote_cli::{code, json, stderr};
use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind, Quirks};
use crate::support::registry::Registry;
use crate::sync_support::*;
use ferry::manifest::OCI_MANIFEST;

/// `repo:tag` for every repository and tag given: small distinct images (blobs everywhere).
pub(crate) fn images(server: &FaultServer, repos: &[&str], tags: &[&str]) {
    for (i, tag) in tags.iter().enumerate() {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":{i}}}"#
        );
        let layer = vec![i as u8; 4096];
        let (cd, ld) = (
            server.put_blob(config.clone().into_bytes()),
            server.put_blob(layer),
        );
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": 4096}],
        });
        for repo in repos {
            server.put_manifest(repo, tag, &serde_json::to_vec(&body).unwrap(), OCI_MANIFEST);
        }
    }
}

fn config(src: &str, dst: &str) -> String {
    format!("sync:\n  - source: {src}\n    repositories: [app0, app1, app2]\n    destination: {dst}/m\n")
}

#[test]
fn an_unreadable_tag_is_reported_and_the_rest_synced() {
    let src = FaultServer::start(
        FaultConfig::new()
            .fault(
                Fault::status(Kind::ManifestHead, 1, 500)
                    .on_path("/app1/manifests/b")
                    .times(u64::MAX),
            )
            .fault(
                Fault::status(Kind::ManifestGet, 1, 500)
                    .on_path("/app1/manifests/b")
                    .times(u64::MAX),
            ),
    );
    images(&src, &["app0", "app1", "app2"], &["a", "b", "c"]);
    let dst = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "s.yaml", &config(&src.host(), &dst.addr));

    let o = ferry(&["sync", "--json", "--retries", "1", &cfg], &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(
        (
            r["totals"]["copied"].as_u64(),
            r["totals"]["failed"].as_u64()
        ),
        (Some(8), Some(1)),
        "{r}"
    );
    let app1 = &r["repositories"][1];
    let bad = app1["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "b")
        .unwrap();
    assert_eq!(bad["action"], "failed");
    assert!(bad["error"].as_str().unwrap().contains("500"), "{bad}");
    let rt = runtime();
    for repo in ["m/app0", "m/app2"] {
        assert_eq!(rt.block_on(tags_at(&dst.addr, repo)).len(), 3, "{repo}");
    }
    let app1_tags: Vec<String> = rt
        .block_on(tags_at(&dst.addr, "m/app1"))
        .into_keys()
        .collect();
    assert_eq!(app1_tags, vec!["a".to_string(), "c".to_string()]);

    // Again, as a person reads it: the rest is skipped, the failure listed, exit non-zero.
    let o = ferry(&["sync", "--retries", "1", &cfg], &[]);
    assert_eq!(code(&o), 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("8 skipped") && out.contains("1 failed"),
        "{out}"
    );
    assert!(
        out.contains("failed (1):") && out.contains("/app1:b"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("skipped") && stderr(&o).contains("HTTP 500"),
        "{}",
        stderr(&o)
    );

    // --fail-fast: nothing is started after the failure.
    let dst2 = Registry::start();
    let cfg2 = write(dir.path(), "s2.yaml", &config(&src.host(), &dst2.addr));
    let args = [
        "sync",
        "--json",
        "--fail-fast",
        "--retries",
        "1",
        "--repositories",
        "1",
        "--images",
        "1",
        &cfg2,
    ];
    let o = ferry(&args, &[]);
    assert_ne!(code(&o), 0);
    let r = json(&o);
    assert_eq!(r["stopped"], true, "{r}");
    assert_eq!(
        r["totals"]["copied"], 3,
        "only app0, before app1 failed: {r}"
    );
    assert!(rt.block_on(tags_at(&dst2.addr, "m/app2")).is_empty());
}

#[test]
fn few_remaining_requests_slow_manifest_gets_down() {
    let quirks = Quirks {
        rate_limit_remaining: Some("2;w=1".into()),
        ..Quirks::default()
    };
    let src = FaultServer::start(FaultConfig::new().quirks(quirks));
    images(&src, &["app0"], &["a", "b", "c"]);
    let dst = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "s.yaml",
        &format!(
            "sync:\n  - images: [\"{0}/app0:a\", \"{0}/app0:b\", \"{0}/app0:c\"]\n    destination: {1}/m\n",
            src.host(),
            dst.addr
        ),
    );
    // One image at a time: a tag the destination lacks is read with one GET, and every GET
    // after the first answer (which says few requests remain) is paced.
    let o = ferry(&["sync", "--json", "--images", "1", &cfg], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    let source = r["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["side"] == "source")
        .unwrap();
    assert_eq!(source["manifest_gets"], 3, "{source}");
    assert_eq!(source["manifest_heads"], 0, "{source}");
    assert_eq!(
        source["rate_limit_waits"], 2,
        "every GET but the first paced: {source}"
    );
    // With no reserve, nothing is paced.
    let o = ferry(&["sync", "--json", "--rate-limit-reserve", "0", &cfg], &[]);
    let r = json(&o);
    let source = r["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["side"] == "source")
        .unwrap();
    assert_eq!(source["rate_limit_waits"], 0, "{source}");
}

#[test]
fn dry_run_lists_and_writes_nothing_and_bad_configs_point_at_lines() {
    let src = FaultServer::start(FaultConfig::new());
    images(&src, &["app0", "app1", "app2"], &["1.0", "1.1", "2.0-rc"]);
    let dst = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "sync:\n  - source: {}\n    repositories: [app0, app1, app2]\n    destination: {}/m\n    tags: {{deny: ['-rc']}}\n",
        src.host(),
        dst.addr
    );
    let cfg = write(dir.path(), "s.yaml", &text);
    let o = ferry(&["sync", "--dry-run", "--json", &cfg], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["dry_run"], true);
    assert_eq!(
        (
            r["totals"]["planned"].as_u64(),
            r["totals"]["left"].as_u64()
        ),
        (Some(6), Some(3)),
        "{r}"
    );
    assert!(
        r["totals"]["blobs"]["bytes_copied"].as_u64().unwrap() > 0,
        "{r}"
    );
    let o = ferry(&["sync", "--dry-run", &cfg], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("copy 2") && out.contains("leave: 2.0-rc"),
        "{out}"
    );
    let writes = crate::promote_common::writes(&dst);
    assert!(writes.is_empty(), "a dry run wrote: {writes:?}");

    let bad = write(dir.path(), "bad.yaml", &text.replace("deny:", "deyn:"));
    let o = ferry(&["sync", &bad], &[]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.yaml:5:12"), "{}", stderr(&o));
    let o = ferry(&["sync", "--shard", "auto", &cfg], &[]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("JOB_COMPLETION_INDEX"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        src.count(Kind::TagsList),
        18,
        "two dry runs of 3 repositories (each listed once to select, and once per image to \
         find cosign's legacy tags, referrers being on by default); bad input sends nothing"
    );
}

#[test]
fn tag_lists_are_followed_page_by_page() {
    let quirks = Quirks {
        tags_page_size: Some(2),
        ..Quirks::default()
    };
    let src = FaultServer::start(FaultConfig::new().quirks(quirks));
    images(&src, &["app0"], &["t1", "t2", "t3", "t4", "t5"]);
    let dst = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "sync:\n  - source: {}\n    repositories: [app0]\n    destination: {}/m\n",
        src.host(),
        dst.addr
    );
    let cfg = write(dir.path(), "s.yaml", &text);
    let o = ferry(&["sync", "--json", &cfg], &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["totals"]["copied"], 5, "{r}");
    let source = r["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["side"] == "source")
        .unwrap();
    // 3 pages to select the tags, then 3 per image copied: cosign's legacy tags are looked
    // for in the tag list (referrers are on by default).
    assert_eq!(source["tag_list_pages"], 3 + 5 * 3, "{source}");
    let lists: Vec<String> = src
        .requests()
        .into_iter()
        .filter(|l| l.kind == Kind::TagsList)
        .map(|l| l.uri)
        .collect();
    assert!(lists[0].contains("n=1000"), "{lists:?}");
    assert!(lists[1].contains("last=t2"), "{lists:?}");
}
