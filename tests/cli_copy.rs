//! The `ferry` binary: result output, exit codes and error messages.
mod support;

use std::process::{Command, Output};

use support::fixtures::{self, ImageSpec};
use support::registry::Registry;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn json_result_and_noop_second_run() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci_index());
    let src = format!("oci:{}:v1", dir.path().display());
    let dst = format!("{}/team/api:1.4.2", reg.addr);
    let out = ferry(&["copy", "--json", &src, &dst, "--tag", "latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["source_digest"], built.digest.to_string());
    assert_eq!(r["destination_digest"], built.digest.to_string());
    assert_eq!(r["tags"], serde_json::json!(["1.4.2", "latest"]));
    assert_eq!(r["blobs"]["copied"], built.blobs.len());
    assert!(r["blobs"]["bytes_copied"].as_u64().unwrap() > 0);
    assert!(r["seconds"].as_f64().is_some());
    for t in ["1.4.2", "latest"] {
        assert_eq!(
            fixtures::inspect_digest(&format!("docker://{}/team/api:{t}", reg.addr)),
            built.digest
        );
    }
    let again = ferry(&["copy", "--json", &src, &dst, "--tag", "latest"]);
    let r: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(r["unchanged"], true);
    assert_eq!(r["blobs"]["bytes_copied"], 0);
    // Plain output names both digests and the tags.
    let plain = ferry(&["copy", &src, &format!("{}/team/api:1.4.3", reg.addr)]);
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.contains(&built.digest.to_string()) && text.contains("1.4.3"),
        "{text}"
    );
}

#[test]
fn exit_codes_and_messages() {
    let reg = Registry::start();
    // Bad reference: usage error naming the input.
    let out = ferry(&["copy", "Bad/Name:tag", &format!("{}/x:1", reg.addr)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"Bad/Name:tag\""),
        "{}",
        stderr(&out)
    );
    // Bad tag flag.
    let out = ferry(&[
        "copy",
        &format!("{}/a:1", reg.addr),
        &format!("{}/b:1", reg.addr),
        "--tag",
        "-x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // Missing source image: not found.
    let out = ferry(&[
        "copy",
        &format!("{}/missing:1", reg.addr),
        &format!("{}/b:1", reg.addr),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing"), "{}", stderr(&out));
    // Not a layout.
    let out = ferry(&[
        "copy",
        "oci:/nonexistent/dir:v1",
        &format!("{}/b:1", reg.addr),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("/nonexistent/dir"),
        "{}",
        stderr(&out)
    );
    // Malformed credentials flag: usage error that does not echo the secret.
    let out = ferry(&[
        "copy",
        "--src-creds",
        "nocolonsecret",
        &format!("{}/a:1", reg.addr),
        &format!("{}/b:1", reg.addr),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("nocolonsecret"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--src-creds"), "{}", stderr(&out));
    // Nothing reachable: a failure, not a hang.
    let out = ferry(&[
        "copy",
        "--retries",
        "1",
        "127.0.0.1:1/a:1",
        &format!("{}/b:1", reg.addr),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn help_explains_every_flag_with_examples() {
    let out = ferry(&["copy", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--tag",
        "--platform",
        "--jobs",
        "--json",
        "--quiet",
        "--src-creds",
        "--dest-tls-verify",
        "--ca-file",
        "Examples:",
        "oci:",
    ] {
        assert!(text.contains(needle), "copy --help lacks {needle}");
    }
    let top = String::from_utf8_lossy(&ferry(&["--help"]).stdout).to_string();
    assert!(top.contains("Exit codes:") && top.contains("copy"), "{top}");
}
