//! What the binary prints around the result: `copy --json` on failure, log lines without
//! colour codes when stderr is not a terminal, and `tag --help` without flags `tag` ignores.

use std::process::{Command, Output};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;

fn ferry(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.args(args).env("DOCKER_CONFIG", "/nonexistent");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn copy_json_prints_an_error_object_on_failure() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let dst = format!("oci:{}:x", dir.path().join("out").display());
    let src = format!("{}/missing/app:1", reg.addr);
    let o = ferry(&["copy", "--json", &src, &dst], &[]);
    assert_eq!(o.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    assert_eq!(v["source"], src);
    assert_eq!(v["destination"], dst);
    assert_eq!(v["exit_code"], 4);
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing/app")),
        "{v}"
    );
    // A usage error is an object too.
    let o = ferry(&["copy", "--json", "Bad/Name:1", &dst], &[]);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
}

#[test]
fn log_lines_to_a_pipe_carry_no_colour_codes() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", dir.path().display());
    let dst = format!("{}/team/app:v1", reg.addr);
    for env in [&[][..], &[("NO_COLOR", "1")][..]] {
        let o = ferry(&["copy", "-vv", &src, &dst], env);
        assert!(o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("DEBUG"), "debug lines are logged: {e}");
        assert!(
            !e.contains('\u{1b}'),
            "ANSI escape in piped logs ({env:?}): {e}"
        );
    }
}

#[test]
fn tag_help_lists_only_the_flags_tag_uses() {
    let o = ferry(&["tag", "--help"], &[]);
    let help = String::from_utf8_lossy(&o.stdout);
    for unused in [
        "--upload-strategy",
        "--chunk-size",
        "--src-creds",
        "--src-tls-verify",
        "--src-plain-http",
    ] {
        assert!(!help.contains(unused), "tag --help lists {unused}: {help}");
    }
    for used in [
        "--creds",
        "--authfile",
        "--tls-verify",
        "--force",
        "--expect-digest",
    ] {
        assert!(help.contains(used), "tag --help lacks {used}: {help}");
    }
}
