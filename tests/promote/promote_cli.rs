//! The `ferry promote` and `ferry tag` binaries against the real docker-registry: exit codes of
//! the guards (6, 7), plan errors (2, with file:line), `--json` after a dry run and a real run;
//! plans with charts are in `plan_charts.rs`.

use std::process::{Command, Output};

use crate::promote_common::*;
use crate::support::registry::Registry;
use serde_json::Value;

fn ferry(args: &[&str]) -> Output {
    let empty_auth = std::env::temp_dir().join("ferry-promote-cli-no-auth.json");
    std::fs::write(&empty_auth, "{}").unwrap();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("REGISTRY_AUTH_FILE", &empty_auth)
        .env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("ferry-promote-cli-no-docker"),
        )
        .output()
        .unwrap()
}

pub(crate) fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub(crate) fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn promote_guards_exit_with_their_codes_and_write_nothing() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let old = seed(&src, dir.path(), "old", &small(1), "ci/api:old");
    let new = seed(&src, dir.path(), "new", &small(2), "ci/api:new");
    let from = |t: &str| src.image(&format!("ci/api:{t}"));
    let to = dst.image("prod/api:1.4.2,latest");

    let o = ferry(&[
        "promote",
        "--quiet",
        "--expect-digest",
        &new.digest.to_string(),
        &from("old"),
        &to,
    ]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(stderr(&o).contains("not the expected"), "{}", stderr(&o));
    assert!(writes(&dst).is_empty());

    let o = ferry(&[
        "promote",
        "--json",
        "--expect-digest",
        &old.digest.to_string(),
        &from("old"),
        &to,
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "promoted");
    let img = &r["images"][0];
    assert_eq!(img["digest"], old.digest.to_string());
    assert_eq!(img["route"], "cross-registry");
    assert_eq!(img["tags"][0]["action"], "created");
    assert_eq!(img["tags"][1]["written"], true);
    let copied: u64 = old.blobs.iter().map(|b| b.size).sum();
    assert_eq!(img["blobs"]["bytes_copied"], copied);
    assert!(img["seconds"].as_f64().unwrap() > 0.0);

    let before = writes(&dst).len();
    let o = ferry(&["promote", "--json", &from("new"), &to]);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "no-tags-written");
    assert_eq!(r["images"][0]["status"], "refused");
    assert_eq!(r["images"][0]["tags"][0]["action"], "refused");
    assert_eq!(
        r["images"][0]["tags"][0]["previous"],
        old.digest.to_string()
    );
    assert_eq!(writes(&dst).len(), before, "a refusal writes nothing");

    let o = ferry(&["promote", "--quiet", "--force", &from("new"), &to]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let o = ferry(&["promote", &from("new"), &to]);
    assert_eq!(
        code(&o),
        0,
        "moving a tag to the digest it has is a no-op: {}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("1.4.2 unchanged"));
}

#[test]
fn tag_retags_in_place_with_guards() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let a = seed(&reg, dir.path(), "a", &small(3), "team/api:rc1");
    seed(&reg, dir.path(), "b", &small(4), "team/api:rc2");
    let before = blob_requests(&reg).len();
    let o = ferry(&["tag", &reg.image("team/api:rc1"), "1.0", "latest"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("same repository") && out.contains("1.0 created, latest created"),
        "{out}"
    );
    assert_eq!(blob_requests(&reg).len(), before, "no blob request");
    let o = ferry(&[
        "tag",
        "--dry-run",
        &reg.image("team/api:rc2"),
        "1.1",
        "latest",
    ]);
    assert_eq!(
        code(&o),
        7,
        "a dry run that would be refused says so: {}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("REFUSE latest"));
    let o = ferry(&["tag", "--json", &reg.image("team/api:rc2"), "latest"]);
    assert_eq!(code(&o), 7);
    assert_eq!(
        json(&o)["images"][0]["tags"][0]["previous"],
        a.digest.to_string()
    );
    let o = ferry(&[
        "tag",
        "--force",
        "--quiet",
        &reg.image("team/api:rc2"),
        "latest",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn plan_runs_dry_then_real_and_bad_plans_exit_2_with_lines() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let base = 256 * 1024;
    let a = seed(
        &src,
        &dir.path().join("a"),
        "v",
        &small(5).shared_base(base),
        "ci/a:build-9",
    );
    let b = seed(
        &src,
        &dir.path().join("b"),
        "v",
        &small(6).shared_base(base),
        "ci/b:build-9",
    );
    let plan = dir.path().join("release.yaml");
    std::fs::write(
        &plan,
        format!(
            "defaults:\n  registry: {}\n  prefix: prod\n  tags: [\"{{version}}\", \"{{major}}.{{minor}}\", latest]\nimages:\n  - source: {}/ci/a:{{commit}}\n    destination: a\n  - source: {}/ci/b:{{commit}}\n    destination: b\n    expect-digest: {}\n",
            dst.addr, src.addr, src.addr, b.digest
        ),
    )
    .unwrap();
    let plan = plan.to_str().unwrap();
    let vars = ["--var", "version=1.4.2", "--var", "commit=build-9"];
    let o = ferry(
        &[
            &["promote", "--plan", plan, "--dry-run", "--json"][..],
            &vars,
        ]
        .concat(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "planned");
    assert_eq!(
        r["images"][1]["blobs"]["mounted"], 1,
        "the shared base would be mounted"
    );
    assert_eq!(r["totals"]["tags_created"], 6);
    assert!(writes(&dst).is_empty(), "a dry run writes nothing");

    let o = ferry(&[&["promote", "--plan", plan, "--json"][..], &vars].concat());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "promoted");
    assert_eq!(
        r["totals"]["blobs"]["copied"],
        a.blobs.len() + b.blobs.len() - 1
    );
    assert_eq!(r["images"][0]["label"], format!("{plan}:6"));
    let tags: Vec<&str> = r["images"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["1.4.2", "1.4", "latest"]);

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "images:\n  - source: r.io/a:1\n    tags: [\"{version}\"]\n    destination: r.io/x\n",
    )
    .unwrap();
    let o = ferry(&["promote", "--plan", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{}:3:", bad.display())) && e.contains("unknown variable {version}"),
        "{e}"
    );
    std::fs::write(&bad, "images:\n  - source: r.io/a:1\n    tags: [x]\n    destination: r.io/x\n    flavour: spicy\n").unwrap();
    let o = ferry(&["promote", "--plan", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{}:5:5:", bad.display())) && e.contains("flavour"),
        "{e}"
    );
}
