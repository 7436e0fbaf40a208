//! What a promotion that stopped says: a tag that was not written is never reported as created,
//! in the plain output or the JSON totals.

use std::process::Command;

use crate::promote_cli::{code, json, stderr};
use crate::promote_common::*;
use crate::support::registry::Registry;

#[test]
fn an_aborted_plan_never_says_a_tag_was_created() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    seed(&reg, &dir.path().join("a"), "v", &small(1), "ci/a:build");
    seed(&reg, &dir.path().join("b"), "v", &small(2), "ci/b:build");
    // prod/b:r1 already names another image: the plan is refused, so a's r1 is not written.
    seed(&reg, &dir.path().join("c"), "v", &small(3), "prod/b:r1");
    let plan = dir.path().join("release.yaml");
    std::fs::write(
        &plan,
        format!(
            "defaults:\n  registry: {r}\n  prefix: prod\n  tags: [r1]\nimages:\n  - source: {r}/ci/a:build\n    destination: a\n  - source: {r}/ci/b:build\n    destination: b\n",
            r = reg.addr
        ),
    )
    .unwrap();
    let run = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        c.args(["promote", "--plan"]).arg(&plan);
        if json {
            c.arg("--json");
        }
        c.env("DOCKER_CONFIG", "/nonexistent").output().unwrap()
    };
    let o = run(false);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("nothing was written"), "{text}");
    assert!(!text.contains("r1 created"), "{text}");
    assert!(text.contains("r1 not written"), "{text}");
    assert!(!text.contains("1 created"), "the totals line: {text}");

    let o = run(true);
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["outcome"], "no-tags-written");
    assert_eq!(r["totals"]["tags_written"], 0, "{r}");
    assert_eq!(r["totals"]["tags_created"], 0, "{r}");
    assert_eq!(r["images"][0]["tags"][0]["written"], false, "{r}");
    assert!(writes(&reg)
        .iter()
        .all(|w| !w.contains("prod/a/manifests/r1")));
}
