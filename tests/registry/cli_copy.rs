//! The `ferry` binary: result output, exit codes and error messages.

use std::process::{Command, Output};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;

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

/// Every subcommand's one-line summary in `ferry --help`, and the first line of its own
/// `--help`, exactly (a missing doc comment lets clap borrow a flattened struct's text).
#[test]
fn every_subcommand_has_its_own_summary() {
    let summaries = [
        (
            "copy",
            "Copy one image (all platforms by default) between registries and OCI layouts",
        ),
        (
            "promote",
            "Publish an image (or a plan of images) under release tags, guarded and all-or-nothing",
        ),
        (
            "sync",
            "Mirror many repositories from a config: tag filters, incremental, shardable",
        ),
        (
            "tag",
            "Point more tags of the same repository at an image (no blob requests)",
        ),
        (
            "chart",
            "Package a Helm chart, or publish one to an OCI registry or ChartMuseum (guarded)",
        ),
        (
            "export",
            "Export many images into one oci-archive, docker-archive or OCI layout (each blob once)",
        ),
        (
            "import",
            "Push every image of an archive or layout under a registry prefix, all-or-nothing",
        ),
        (
            "digest",
            "Print the manifest digest an image reference names (an index's for a multi-platform image)",
        ),
        (
            "inspect",
            "Show what an image, index or artifact is (platforms, config, layers), or its exact bytes",
        ),
        (
            "ls",
            "List the tags of a repository (sorted, every page), or the images of a layout or archive",
        ),
        (
            "referrers",
            "Show what refers to an image (signatures, SBOMs, attestations) as a tree",
        ),
        (
            "delete",
            "Delete a tag or a manifest (a tag never takes a manifest that other tags still name)",
        ),
        (
            "completions",
            "Print shell completions for bash, zsh, fish, elvish or powershell",
        ),
        (
            "man",
            "Print the man page (or write one page per command with --dir)",
        ),
    ];
    let top = String::from_utf8_lossy(&ferry(&["--help"]).stdout).to_string();
    let listed: Vec<(String, String)> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            let (name, summary) = l.trim().split_once(char::is_whitespace)?;
            Some((name.to_string(), summary.trim().to_string()))
        })
        .filter(|(name, _)| name != "help")
        .collect();
    let want: Vec<(String, String)> = summaries
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_string()))
        .collect();
    assert_eq!(listed, want, "{top}");
    for (name, summary) in summaries {
        let own = String::from_utf8_lossy(&ferry(&[name, "--help"]).stdout).to_string();
        assert_eq!(own.lines().next(), Some(summary), "{name} --help: {own}");
    }
}

/// The whole credential chain a CI job uses: docker config.json (DOCKER_CONFIG) → Basic auth on
/// the real registry, and --dest-creds; a wrong password is exit 3 and never printed.
#[test]
fn credentials_from_docker_config_and_flags() {
    use base64::Engine;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/htpasswd");
    let reg = Registry::start_with(crate::support::registry::RegistryConfig {
        auth_yaml: Some(format!(
            "  htpasswd:\n    realm: ferry-test\n    path: {path}\n"
        )),
    });
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", dir.path().display());
    let config = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("ferry:ferry-test-password");
    let json = serde_json::json!({"auths": {reg.addr.clone(): {"auth": auth}}});
    std::fs::write(config.path().join("config.json"), json.to_string()).unwrap();
    let run = |args: &[&str], docker_config: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("DOCKER_CONFIG", docker_config)
            .output()
            .unwrap()
    };
    let out = run(
        &["copy", &src, &format!("{}/team/app:v1", reg.addr)],
        config.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let empty = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "copy",
            "--dest-creds",
            "ferry:ferry-test-password",
            &src,
            &format!("{}/team/app:v2", reg.addr),
        ],
        empty.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &[
            "copy",
            "--dest-creds",
            "ferry:wrong-secret-123",
            &src,
            &format!("{}/team/app:v3", reg.addr),
        ],
        empty.path(),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("wrong-secret-123"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &["copy", &src, &format!("{}/team/app:v4", reg.addr)],
        empty.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "anonymous push is refused: {}",
        stderr(&out)
    );
}

/// Auth-file keys `host/namespace` pick the credential per repository (the longest prefix wins),
/// for every request of that repository: two repositories of one registry, two htpasswd users,
/// and a registry-wide entry that is wrong. The registry's log says who sent each request.
#[test]
fn per_repository_credentials_from_the_auth_file() {
    use base64::Engine;
    let work = tempfile::tempdir().unwrap();
    let htpasswd = work.path().join("htpasswd");
    let fixture = include_str!("../fixtures/htpasswd").trim();
    // A second user, bcrypt like the fixture (made with perl's crypt, as the fixture's README says).
    let other = Command::new("perl")
        .args([
            "-e",
            r#"print crypt("other-test-password", "\$2b\$05\$ferrytestsaltferrytesu")"#,
        ])
        .output()
        .unwrap();
    let other = String::from_utf8(other.stdout).unwrap();
    assert!(other.starts_with("$2b$"), "bcrypt from perl: {other}");
    std::fs::write(&htpasswd, format!("{fixture}\nother:{other}\n")).unwrap();
    let reg = Registry::start_with(crate::support::registry::RegistryConfig {
        auth_yaml: Some(format!(
            "  htpasswd:\n    realm: ferry-test\n    path: {}\n",
            htpasswd.display()
        )),
    });
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", dir.path().display());
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let json = serde_json::json!({"auths": {
        reg.addr.clone(): {"auth": b64("ferry:wrong-registry-wide")},
        format!("{}/team-a", reg.addr): {"auth": b64("ferry:ferry-test-password")},
        format!("{}/team-b", reg.addr): {"auth": b64("other:other-test-password")},
    }});
    let authfile = work.path().join("auth.json");
    std::fs::write(&authfile, json.to_string()).unwrap();
    for repo in ["team-a/app", "team-b/app"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["copy", "-q", "--authfile"])
            .arg(&authfile)
            .arg(&src)
            .arg(format!("{}/{repo}:v1", reg.addr))
            .output()
            .unwrap();
        assert!(out.status.success(), "{repo}: {}", stderr(&out));
    }
    // The registry logs its error answers (the 404s of the presence checks) with the user.
    let log = reg.log();
    let users = |repo: &str| -> Vec<String> {
        let mut u: Vec<String> = log
            .lines()
            .filter(|l| l.split(' ').any(|f| f == format!("vars.name={repo}")))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("auth.user.name=")))
            .map(str::to_string)
            .collect();
        u.sort();
        u.dedup();
        u
    };
    assert_eq!(users("team-a/app"), vec!["ferry".to_string()], "{log}");
    assert_eq!(users("team-b/app"), vec!["other".to_string()], "{log}");
    // The registry-wide entry is wrong: a repository under no namespace key is refused (exit 3).
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["copy", "-q", "--authfile"])
        .arg(&authfile)
        .arg(&src)
        .arg(format!("{}/team-c/app:v1", reg.addr))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}
