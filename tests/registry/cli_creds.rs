//! The `ferry` binary's credential sources failing loudly: a missing `--authfile`, and credential
//! helpers that are missing or refuse (named with their message, never with a secret).

use std::path::Path;
use std::process::{Command, Output};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::{Registry, RegistryConfig};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A registry that wants HTTP Basic (the fixture's htpasswd user `ferry`).
fn basic_registry() -> Registry {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/htpasswd");
    Registry::start_with(RegistryConfig {
        auth_yaml: Some(format!(
            "  htpasswd:\n    realm: ferry-test\n    path: {path}\n"
        )),
    })
}

/// A source layout holding `v1`, as `oci:DIR:v1`.
fn source(dir: &Path) -> String {
    fixtures::write_layout(dir, "v1", &ImageSpec::oci());
    format!("oci:{}:v1", dir.display())
}

#[test]
fn a_missing_authfile_is_a_usage_error_before_any_request() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let missing = dir.path().join("no-such-auth.json");
    for cmd in ["copy", "promote"] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args([cmd, "--authfile"])
            .arg(&missing)
            .arg(&src)
            .arg(format!("{}/team/app:v1", reg.addr))
            .env("DOCKER_CONFIG", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("--authfile") && e.contains("no-such-auth.json"),
            "{cmd}: {e}"
        );
    }
    assert!(
        !reg.storage()
            .join("docker/registry/v2/repositories/team")
            .exists(),
        "nothing was pushed"
    );
}

/// `credsStore` names a helper that fails: the error names the helper and what it said, at any
/// verbosity, and never the secret a helper printed.
#[test]
fn failing_credential_helpers_are_named_with_their_message() {
    let reg = basic_registry();
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let helpers = tempfile::tempdir().unwrap();
    let write_helper = |name: &str, body: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = helpers.path().join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_helper("locked", "echo 'keychain locked' >&2; exit 1");
    write_helper(
        "leaky",
        "echo '{\"Username\":\"ferry\",\"Secret\":\"leaked-helper-secret\"}'; exit 1",
    );
    let path = format!(
        "{}:{}",
        helpers.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let image = format!("{}/team/app:v1", reg.addr);
    let run_as = |cmd: &[&str], helper: &str, verbose: &[&str]| {
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("config.json"),
            format!(r#"{{"credsStore": "{helper}"}}"#),
        )
        .unwrap();
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(cmd)
            .args(verbose)
            .env("DOCKER_CONFIG", config.path())
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let run = |helper: &str, verbose: &[&str]| run_as(&["copy", &src, &image], helper, verbose);
    for verbose in [&[][..], &["-vv"][..]] {
        let out = run("locked", verbose);
        let e = stderr(&out);
        assert!(!out.status.success(), "{e}");
        assert!(
            e.contains("docker-credential-locked") && e.contains("keychain locked"),
            "names the helper and its message ({verbose:?}): {e}"
        );
        assert!(!e.contains("no credentials were found"), "{e}");

        let out = run("absent", verbose);
        let e = stderr(&out);
        assert!(!out.status.success(), "{e}");
        assert!(
            e.contains("docker-credential-absent") && e.contains("not found"),
            "a missing helper is named ({verbose:?}): {e}"
        );
        assert!(!e.contains("no credentials were found"), "{e}");

        let out = run("leaky", verbose);
        let e = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(!out.status.success(), "{e}");
        assert!(e.contains("docker-credential-leaky"), "{e}");
        assert!(!e.contains("leaked-helper-secret"), "{e}");
    }
    // Every command that reaches a registry says the same.
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "copy",
            "-q",
            "--dest-creds",
            "ferry:ferry-test-password",
            &src,
            &image,
        ])
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v2 = format!("{}/team/app:v2", reg.addr);
    let repo = format!("{}/team/app", reg.addr);
    let commands: [&[&str]; 6] = [
        &["promote", &image, &v2],
        &["tag", &image, "v3"],
        &["digest", &image],
        &["inspect", &image],
        &["ls", &repo],
        &["delete", &image],
    ];
    for cmd in commands {
        let out = run_as(cmd, "locked", &[]);
        let e = stderr(&out);
        assert!(!out.status.success(), "{cmd:?}: {e}");
        assert!(
            e.contains("docker-credential-locked") && e.contains("keychain locked"),
            "{cmd:?}: {e}"
        );
    }
}
