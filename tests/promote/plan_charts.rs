//! Release plans with `charts:` through the binary: every chart guard checked before any image
//! tag is written (a refused chart leaves every tag unwritten), charts pushed after the tags
//! (ChartMuseum and OCI), re-runs unchanged, dry runs, a chart failure after the tags reported
//! as partial, and `charts:` problems reported with file:line:column before any request.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry::chart::{package_dir, PackageOptions};
use serde_json::Value;
use sha2::Digest as _;

use crate::chartmuseum::{ChartMuseum, MuseumConfig};
use crate::promote_cli::{code, json, stderr};
use crate::promote_common::*;
use crate::support::registry::Registry;

fn ferry(args: &[&str]) -> Output {
    let no_auth = std::env::temp_dir().join("ferry-plan-charts-no-auth.json");
    std::fs::write(&no_auth, "{}").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args).env("REGISTRY_AUTH_FILE", &no_auth).env(
        "DOCKER_CONFIG",
        std::env::temp_dir().join("ferry-plan-charts-no-docker"),
    );
    for k in [
        "HELM_REPO_USERNAME",
        "HELM_REPO_PASSWORD",
        "HELM_REPO_ACCESS_TOKEN",
        "HELM_REPO_CONTEXT_PATH",
        "FERRY_CHART_CREDS",
        "SOURCE_DATE_EPOCH",
    ] {
        cmd.env_remove(k);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// A chart directory `dir/chart` named `api`, at a development version the plan rewrites.
fn chart_dir(dir: &Path, values: &str) -> PathBuf {
    let root = dir.join("chart");
    std::fs::create_dir_all(root.join("templates")).unwrap();
    std::fs::write(
        root.join("Chart.yaml"),
        "apiVersion: v2\nname: api\ndescription: The API\nversion: 0.0.0-dev\n",
    )
    .unwrap();
    std::fs::write(root.join("values.yaml"), values).unwrap();
    std::fs::write(
        root.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    )
    .unwrap();
    root
}

/// The release plan: one image to `1.4.2`, `1.4`, `latest` and the chart (`chart/` beside the
/// plan) packaged at the version, to `chart_dest`. Returns the plan's path.
fn release_plan(dir: &Path, src: &Registry, dst: &Registry, chart_dest: &str) -> String {
    let plan = dir.join("release.yaml");
    let text = format!(
        "vars: {{version: 1.4.2}}\ndefaults:\n  registry: {}\n  tags: [\"{{version}}\", \"{{major}}.{{minor}}\", latest]\n  overwrite: [latest, \"{{major}}.{{minor}}\"]\nimages:\n  - source: {}/ci/api:build\n    destination: prod/api\ncharts:\n  - path: chart\n    destination: {chart_dest}\n    version: \"{{version}}\"\n    app-version: \"{{version}}\"\n",
        dst.addr, src.addr
    );
    std::fs::write(&plan, text).unwrap();
    plan.to_str().unwrap().to_string()
}

fn tags_written(r: &Value) -> Vec<bool> {
    r["images"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["written"].as_bool().unwrap())
        .collect()
}

#[test]
fn plan_pushes_a_new_chart_after_the_tags_and_a_rerun_changes_nothing() {
    let (src, dst) = (Registry::start(), Registry::start());
    let cm = ChartMuseum::start(MuseumConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let img = seed(
        &src,
        &dir.path().join("img"),
        "v",
        &small(3),
        "ci/api:build",
    );
    chart_dir(dir.path(), "replicas: 2\n");
    let plan = release_plan(dir.path(), &src, &dst, &cm.url(""));

    // Dry run: the chart action is listed, nothing is written anywhere.
    let o = ferry(&["promote", "--plan", &plan, "--dry-run"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains(&format!("{plan}:10: would create chart api 1.4.2 -> "))
            && text.contains("dry run: nothing was written"),
        "{text}"
    );
    let o = ferry(&["promote", "--plan", &plan, "--dry-run", "--json"]);
    let r = json(&o);
    assert_eq!(
        (
            r["charts"][0]["status"].as_str(),
            r["charts"][0]["action"].as_str()
        ),
        (Some("planned"), Some("created"))
    );
    assert!(cm.seen_with("POST").is_empty() && writes(&dst).is_empty());

    let o = ferry(&["promote", "--plan", &plan, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "promoted");
    assert_eq!(tags_written(&r), [true, true, true]);
    let c = &r["charts"][0];
    let stored = cm
        .stored("", "api-1.4.2.tgz")
        .expect("the chart is uploaded");
    assert_eq!(
        (
            c["action"].as_str(),
            c["status"].as_str(),
            c["written"].as_bool()
        ),
        (Some("created"), Some("published"), Some(true))
    );
    assert_eq!(c["digest"], sha256(&stored), "{c}");
    assert_eq!(
        (
            c["chart"].as_str(),
            c["version"].as_str(),
            c["label"].as_str()
        ),
        (
            Some("api"),
            Some("1.4.2"),
            Some(format!("{plan}:10").as_str())
        )
    );
    assert_eq!(c["destination"], cm.url("/api/charts"));
    assert_eq!(r["totals"]["charts_written"], 1);
    assert_eq!(
        tag_of(&dst.addr, "prod/api", "1.4").await_blocking(),
        Some(img.digest.clone())
    );

    // The re-run of an unchanged release: every tag and the chart unchanged, nothing written.
    let before = writes(&dst).len();
    let o = ferry(&["promote", "--plan", &plan]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("tags:  1.4.2 unchanged, 1.4 unchanged, latest unchanged")
            && text.contains(&format!(
                "unchanged chart api 1.4.2 -> {} @ {}",
                cm.url("/api/charts"),
                sha256(&stored)
            )),
        "{text}"
    );
    assert_eq!(writes(&dst).len(), before);
    assert_eq!(cm.seen_with("POST").len(), 1);
}

/// Blocks on a future from a synchronous test.
trait Blocking: std::future::Future + Sized {
    fn await_blocking(self) -> Self::Output {
        tokio::runtime::Runtime::new().unwrap().block_on(self)
    }
}
impl<F: std::future::Future> Blocking for F {}

#[test]
fn a_refused_chart_leaves_every_image_tag_unwritten_unless_forced() {
    let (src, dst) = (Registry::start(), Registry::start());
    let cm = ChartMuseum::start(MuseumConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let img = seed(
        &src,
        &dir.path().join("img"),
        "v",
        &small(4),
        "ci/api:build",
    );
    let root = chart_dir(dir.path(), "replicas: 2\n");
    // The server already holds api 1.4.2 with other bytes.
    let versions = PackageOptions {
        version: Some("1.4.2".into()),
        ..PackageOptions::default()
    };
    let other = package_dir(&root, &versions).unwrap();
    cm.put("", "api-1.4.2.tgz", other.archive.to_vec());
    let plan = release_plan(dir.path(), &src, &dst, &cm.url(""));

    let o = ferry(&["promote", "--plan", &plan, "--json"]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "no-tags-written");
    assert_eq!(tags_written(&r), [false, false, false]);
    let c = &r["charts"][0];
    assert_eq!(
        (
            c["status"].as_str(),
            c["action"].as_str(),
            c["written"].as_bool()
        ),
        (Some("refused"), Some("refused"), Some(false))
    );
    assert_eq!(c["previous"], other.digest.to_string());
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(
        writes(&dst).is_empty(),
        "not a blob, manifest or tag: {:#?}",
        writes(&dst)
    );
    assert!(cm.seen_with("POST").is_empty());
    assert_eq!(
        cm.stored("", "api-1.4.2.tgz").unwrap(),
        other.archive.to_vec()
    );

    let o = ferry(&["promote", "--plan", &plan]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("REFUSED chart api 1.4.2")
            && stdout(&o).contains("nothing was written"),
        "{}",
        stdout(&o)
    );

    // --force replaces the chart too, after the tags.
    let o = ferry(&["promote", "--plan", &plan, "--force", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["charts"][0]["action"], "replaced");
    assert_eq!(tags_written(&r), [true, true, true]);
    let posts = cm.seen_with("POST");
    assert_eq!((posts.len(), posts[0].query.as_deref()), (1, Some("force")));
    assert_eq!(
        tag_of(&dst.addr, "prod/api", "1.4.2").await_blocking(),
        Some(img.digest)
    );
}

#[test]
fn an_oci_chart_is_written_after_every_tag_and_a_chart_failure_after_the_tags_is_partial() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    seed(
        &src,
        &dir.path().join("img"),
        "v",
        &small(5),
        "ci/api:build",
    );
    chart_dir(dir.path(), "replicas: 3\n");
    let plan = release_plan(
        dir.path(),
        &src,
        &dst,
        &format!("oci://{}/charts", dst.addr),
    );
    let o = ferry(&["promote", "--plan", &plan, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    let c = &r["charts"][0];
    assert_eq!(
        (c["action"].as_str(), c["written"].as_bool()),
        (Some("created"), Some(true))
    );
    assert_eq!(c["destination"], format!("{}/charts/api:1.4.2", dst.addr));
    let log = writes(&dst);
    let last_tag = log
        .iter()
        .rposition(|l| l.contains("/v2/prod/api/manifests/") && !l.contains("sha256:"))
        .expect("the image tags were written");
    let first_chart = log
        .iter()
        .position(|l| l.contains("/v2/charts/api/"))
        .expect("the chart was written");
    assert!(last_tag < first_chart, "chart before a tag: {log:#?}");
    assert_eq!(
        tag_of(&dst.addr, "charts/api", "1.4.2").await_blocking(),
        c["manifest"].as_str().map(|m| m.parse().unwrap())
    );

    // A ChartMuseum that refuses the upload (413) after the guard passed: the new 1.4.3
    // tag is written, the chart is not, and the report says so.
    let cm = ChartMuseum::start(MuseumConfig {
        max_upload_size: 64,
        ..MuseumConfig::default()
    });
    let plan = release_plan(dir.path(), &src, &dst, &cm.url(""));
    let o = ferry(&["promote", "--plan", &plan, "--var", "version=1.4.3"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("tags:  1.4.3 created, 1.4 unchanged, latest unchanged")
            && text.contains("FAILED chart api 1.4.3")
            && text.contains("PARTIAL: 1 tag(s) and 0 chart(s) written")
            && text.contains("not written: chart api 1.4.3"),
        "{text}"
    );
    assert!(stderr(&o).contains("413"), "{}", stderr(&o));
}

#[test]
fn chart_problems_are_reported_with_file_line_and_column_before_any_request() {
    let (src, dst) = (Registry::start(), Registry::start());
    let cm = ChartMuseum::start(MuseumConfig::default());
    let dir = tempfile::tempdir().unwrap();
    chart_dir(dir.path(), "replicas: 1\n");
    let plan = release_plan(dir.path(), &src, &dst, &cm.url(""));
    let good = std::fs::read_to_string(&plan).unwrap();
    let cases = [
        (
            "    version: \"{version}\"",
            "    verison: \"{version}\"",
            "12:5:",
            "verison",
        ),
        (
            "    version: \"{version}\"",
            "    version: \"{versoin}\"",
            "12:14:",
            "unknown variable {versoin}",
        ),
        (
            "  - path: chart",
            "  - path: charts/api",
            "10:11:",
            "does not exist",
        ),
        (
            "    destination: http",
            "    destination: ftp",
            "11:18:",
            "chart destination",
        ),
        (
            "    version: \"{version}\"",
            "    version: \"{version}.0\"",
            "12:14:",
            "not a semantic version",
        ),
    ];
    for (from, to, at, says) in cases {
        assert!(good.contains(from), "{from}");
        std::fs::write(&plan, good.replacen(from, to, 1)).unwrap();
        let o = ferry(&["promote", "--plan", &plan]);
        assert_eq!(code(&o), 2, "{to}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains(&format!("{plan}:{at}")) && e.contains(says),
            "{to}: {e}"
        );
    }
    // A chart Helm would refuse is a problem at its entry too.
    std::fs::write(&plan, &good).unwrap();
    std::fs::write(
        dir.path().join("chart/Chart.yaml"),
        "apiVersion: v2\nversion: 1.0.0\n",
    )
    .unwrap();
    let o = ferry(&["promote", "--plan", &plan]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{plan}:10:11:")) && stderr(&o).contains("name"),
        "{}",
        stderr(&o)
    );
    assert!(cm.seen().is_empty(), "{:#?}", cm.seen());
    assert!(!src.log().contains("/v2/") && !dst.log().contains("/v2/"));
}
