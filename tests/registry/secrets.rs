//! No secret at any verbosity (issue 13, "also prove"): every command runs at `-vv` with Basic
//! credentials (docker-registry with htpasswd) and with bearer tokens (docker-registry with the
//! test token server: JWTs; the fault server: known access and identity tokens), through
//! successes and failures (refused passwords, missing images, guard refusals, 5xx and dropped
//! connections that are retried), and all their output is searched for every secret: the
//! passwords, `user:password` in base64 (what an auth file and a Basic header carry), the
//! tokens. None may appear.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind};
use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::{Registry, RegistryConfig};
use crate::support::token_server::{Grant, TokenConfig, TokenServer};

const BASIC_PW: &str = "ferry-test-password";
const WRONG_PW: &str = "wrong-secret-3141";
const BEARER_PW: &str = "bearer-secret-2718";
const IDENTITY: &str = "identity-secret-1618";

/// Runs every command of `runs` at -vv and returns everything they printed, with the exit
/// codes (so the failures are known to be failures).
fn run_all(runs: &[Vec<String>], env: &[(&str, &Path)]) -> (String, Vec<i32>) {
    let mut all = String::new();
    let mut codes = Vec::new();
    for args in runs {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.arg("-vv")
            .args(args)
            .env("DOCKER_CONFIG", "/nonexistent");
        cmd.env_remove("FERRY_SRC_CREDS")
            .env_remove("FERRY_DEST_CREDS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        // The command line itself carries the secrets: only its command is recorded.
        all.push_str(&format!(
            "$ ferry -vv {} (run {})\n",
            args[0],
            codes.len() + 1
        ));
        all.push_str(&String::from_utf8_lossy(&o.stdout));
        all.push_str(&String::from_utf8_lossy(&o.stderr));
        codes.push(o.status.code().unwrap_or(-1));
    }
    (all, codes)
}

fn assert_no_secret(output: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !output.contains(s.as_str()),
            "secret {s:?} in the output:\n{}",
            output
                .lines()
                .filter(|l| l.contains(s.as_str()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn auth_file(
    dir: &Path,
    host: &str,
    user: &str,
    pw: &str,
    identity: Option<&str>,
) -> std::path::PathBuf {
    let mut entry = serde_json::json!({ "auth": b64(&format!("{user}:{pw}")) });
    if let Some(t) = identity {
        entry = serde_json::json!({ "auth": b64(&format!("{user}:")), "identitytoken": t });
    }
    let path = dir.join("auth.json");
    let doc = serde_json::json!({ "auths": { host: entry } });
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

/// Every command against `host`, successes and failures; `creds` is `user:password`.
fn commands(
    host: &str,
    src: &str,
    creds: &str,
    bad_creds: &str,
    authfile: &Path,
    chart: &Path,
    out: &Path,
) -> Vec<Vec<String>> {
    let a = authfile.display().to_string();
    let layout = format!("oci:{}:v1", out.display());
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    let app = format!("{host}/team/app:v1");
    vec![
        s(&["copy", "--dest-creds", creds, src, &app]),
        s(&[
            "copy",
            "--authfile",
            &a,
            &app,
            &format!("{host}/team/copy:v1"),
        ]),
        s(&["copy", "--src-creds", creds, &app, &layout]),
        s(&[
            "copy",
            "--dest-creds",
            bad_creds,
            src,
            &format!("{host}/team/refused:v1"),
        ]),
        s(&[
            "copy",
            "--json",
            "--src-creds",
            creds,
            &format!("{host}/team/missing:v1"),
            &layout,
        ]),
        s(&[
            "promote",
            "--dest-creds",
            creds,
            "--src-creds",
            creds,
            &app,
            &format!("{host}/team/rel:1.0"),
        ]),
        s(&[
            "promote",
            "--json",
            "--authfile",
            &a,
            src,
            &format!("{host}/team/rel:1.0"),
        ]),
        s(&["tag", "--creds", creds, &app, "extra"]),
        s(&["tag", "--creds", bad_creds, &app, "refused"]),
        s(&["digest", "--creds", creds, &app]),
        s(&[
            "digest",
            "--authfile",
            &a,
            &format!("{host}/team/missing:v1"),
        ]),
        s(&["inspect", "--creds", creds, &app]),
        s(&["inspect", "--raw", "--authfile", &a, &app]),
        s(&["ls", "--creds", creds, &format!("{host}/team/app")]),
        s(&["ls", "--creds", bad_creds, &format!("{host}/team/app")]),
        s(&[
            "delete",
            "--creds",
            creds,
            &format!("{host}/team/app:extra"),
        ]),
        s(&[
            "delete",
            "--creds",
            creds,
            &format!("{host}/team/app:never"),
        ]),
        s(&[
            "chart",
            "push",
            "--creds",
            creds,
            &chart.display().to_string(),
            &format!("oci://{host}/charts"),
        ]),
        s(&[
            "chart",
            "push",
            "--creds",
            bad_creds,
            &chart.display().to_string(),
            &format!("oci://{host}/charts"),
        ]),
    ]
}

fn chart(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("demo");
    std::fs::create_dir_all(root.join("templates")).unwrap();
    std::fs::write(
        root.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(root.join("values.yaml"), "replicas: 1\n").unwrap();
    std::fs::write(root.join("templates/cm.yaml"), "kind: ConfigMap\n").unwrap();
    root
}

/// The runs had what they were meant to have: successes and failures.
fn assert_mixed(codes: &[i32], output: &str) {
    assert!(
        codes.iter().filter(|c| **c == 0).count() >= 8,
        "{codes:?}\n{output}"
    );
    assert!(
        codes.iter().filter(|c| **c != 0).count() >= 5,
        "{codes:?}\n{output}"
    );
    assert!(output.contains("DEBUG"), "-vv logs at debug");
}

#[test]
fn basic_credentials_never_appear_in_any_output() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/htpasswd");
    let reg = Registry::start_with(RegistryConfig {
        auth_yaml: Some(format!(
            "  htpasswd:\n    realm: ferry-test\n    path: {path}\n"
        )),
    });
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_layout(&dir.path().join("src"), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let authfile = auth_file(dir.path(), &reg.addr, "ferry", BASIC_PW, None);
    let creds = format!("ferry:{BASIC_PW}");
    let bad = format!("ferry:{WRONG_PW}");
    let runs = commands(
        &reg.addr,
        &src,
        &creds,
        &bad,
        &authfile,
        &chart(dir.path()),
        &dir.path().join("out"),
    );
    let (output, codes) = run_all(&runs, &[]);
    assert_mixed(&codes, &output);
    assert_no_secret(
        &output,
        &[BASIC_PW.into(), WRONG_PW.into(), b64(&creds), b64(&bad)],
    );
}

#[test]
fn bearer_tokens_and_passwords_never_appear_in_any_output() {
    // docker-registry with the token server: the tokens are JWTs (they start "eyJ").
    let tokens = TokenServer::start(TokenConfig::default().user(
        "alice",
        BEARER_PW,
        vec![Grant::new("*", &["pull", "push", "delete"])],
    ));
    let reg = Registry::start_with(RegistryConfig {
        auth_yaml: Some(tokens.auth_yaml()),
    });
    let dir = tempfile::tempdir().unwrap();
    fixtures::write_layout(&dir.path().join("src"), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let authfile = auth_file(dir.path(), &reg.addr, "alice", BEARER_PW, None);
    let creds = format!("alice:{BEARER_PW}");
    let bad = format!("alice:{WRONG_PW}");
    let runs = commands(
        &reg.addr,
        &src,
        &creds,
        &bad,
        &authfile,
        &chart(dir.path()),
        &dir.path().join("out"),
    );
    let (output, codes) = run_all(&runs, &[]);
    assert_mixed(&codes, &output);
    assert!(!tokens.requests().is_empty(), "tokens were issued");
    assert_no_secret(
        &output,
        &[
            BEARER_PW.into(),
            WRONG_PW.into(),
            b64(&creds),
            b64(&bad),
            "eyJ".into(),
        ],
    );

    // The fault server: known tokens, an identity token from the auth file, and failures that
    // are retried (5xx, dropped bodies) so retry logs are part of the output.
    let srv = FaultServer::start(
        FaultConfig::new()
            .bearer_auth("alice", BEARER_PW, Some(IDENTITY))
            .fault(Fault::status(Kind::ManifestPut, 1, 503))
            .fault(Fault::drop_body_after(Kind::BlobGet, 1, 100))
            .fault(Fault::status(Kind::ManifestGet, 3, 500)),
    );
    let dir2 = tempfile::tempdir().unwrap();
    let authfile = auth_file(dir2.path(), &srv.host(), "alice", "", Some(IDENTITY));
    let runs = commands(
        &srv.host(),
        &src,
        &creds,
        &bad,
        &authfile,
        &chart(dir2.path()),
        &dir2.path().join("out"),
    );
    let (output, codes) = run_all(&runs, &[]);
    assert_mixed(&codes, &output);
    assert!(
        output.contains("retrying"),
        "failures were retried:\n{output}"
    );
    assert!(srv.count(Kind::Token) >= 2, "{:?}", srv.counts());
    assert_no_secret(
        &output,
        &[
            BEARER_PW.into(),
            WRONG_PW.into(),
            IDENTITY.into(),
            "fault-token-".into(),
            b64(&creds),
        ],
    );
}
