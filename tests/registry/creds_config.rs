//! Credentials from docker/containers config files and credential helpers, as docker and skopeo
//! users expect them to be found; malformed files fail loudly without showing secrets.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ferry::creds::{
    Chain, Credential, CredentialKind, CredentialSource, DockerConfig, StaticCredentials,
};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A temp dir holding `config.json` with `json`.
fn config(json: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, json).unwrap();
    (dir, path)
}

fn pw(user: &str, secret: &str) -> Option<Credential> {
    Some(Credential::password(user, secret))
}

/// The fake helper: answers by server URL, logs each call to `calls.log` next to itself.
const FERRYTEST_HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || { echo "unexpected action $1" >&2; exit 2; }
host=$(cat)
echo "$host" >> "$(dirname "$0")/calls.log"
case "$host" in
  ok.example) echo '{"ServerURL":"ok.example","Username":"helperuser","Secret":"helper-secret-1"}' ;;
  token.example) printf '{"Username":"<token>","Secret":"helper-token-1"}' ;;
  https://index.docker.io/v1/) echo '{"Username":"hubuser","Secret":"hub-secret-1"}' ;;
  fail.example) echo "keychain is locked" >&2; exit 3 ;;
  leaky.example) echo '{"Username":"x","Secret":"leaked-secret-1"}'; exit 1 ;;
  garbage.example) echo 'not json helper-secret-2' ;;
  empty.example) echo '{"Username":"","Secret":""}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

fn write_helper(dir: &Path, name: &str, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A config using helpers from a private directory (never the process PATH).
fn with_helpers(json: &str) -> (tempfile::TempDir, DockerConfig) {
    let (dir, path) = config(json);
    write_helper(dir.path(), "ferrytest", FERRYTEST_HELPER);
    write_helper(
        dir.path(),
        "other",
        "#!/bin/sh\ncat >/dev/null\necho '{\"Username\":\"otheruser\",\"Secret\":\"other-secret\"}'\n",
    );
    let cfg = DockerConfig::from_path_with_helper_dir(&path, dir.path()).unwrap();
    (dir, cfg)
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn missing_file_means_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DockerConfig::from_path(dir.path().join("nope.json")).unwrap();
    assert_eq!(cfg.lookup("r.io").unwrap(), None);
    assert!(cfg.files().is_empty());
}

#[test]
fn a_named_file_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = DockerConfig::from_existing_path(&missing)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("no such file"),
        "{e}"
    );
    let (_d, path) = config(&auths(&[("r.io", "u:p")]));
    let cfg = DockerConfig::from_existing_path(&path).unwrap();
    assert_eq!(cfg.lookup("r.io").unwrap(), pw("u", "p"));
}

#[test]
fn auths_key_forms() {
    let json = format!(
        r#"{{"auths": {{
            "plain.io": {{"auth": "{}"}},
            "https://secure.io": {{"auth": "{}"}},
            "http://legacy.io:5000/v1/": {{"auth": "{}"}},
            "https://index.docker.io/v1/": {{"auth": "{}"}},
            "fields.io": {{"username": "fu", "password": "fp"}},
            "empty.io": {{}}
        }}, "psFormat": "table"}}"#,
        b64("pu:pp"),
        b64("su:sp"),
        b64("lu:lp:with:colons"),
        b64("hub:hp")
    );
    let (_d, path) = config(&json);
    let cfg = DockerConfig::from_path(&path).unwrap();
    assert_eq!(cfg.lookup("plain.io").unwrap(), pw("pu", "pp"));
    assert_eq!(cfg.lookup("secure.io").unwrap(), pw("su", "sp"));
    assert_eq!(
        cfg.lookup("legacy.io:5000").unwrap(),
        pw("lu", "lp:with:colons")
    );
    assert_eq!(cfg.lookup("docker.io").unwrap(), pw("hub", "hp"));
    assert_eq!(
        cfg.lookup_repo("docker.io", "library/alpine").unwrap(),
        pw("hub", "hp")
    );
    assert_eq!(cfg.lookup("fields.io").unwrap(), pw("fu", "fp"));
    assert_eq!(cfg.lookup("empty.io").unwrap(), None);
    assert_eq!(
        cfg.lookup("legacy.io").unwrap(),
        None,
        "the port is part of the host"
    );
    assert_eq!(cfg.lookup("other.io").unwrap(), None);
    assert_eq!(cfg.files(), vec![path.as_path()]);
}

#[test]
fn bare_key_beats_url_key_for_the_same_host() {
    let json = format!(
        r#"{{"auths": {{"https://r.io/": {{"auth": "{}"}}, "r.io": {{"auth": "{}"}}}}}}"#,
        b64("url:u"),
        b64("bare:b")
    );
    let (_d, path) = config(&json);
    let cfg = DockerConfig::from_path(&path).unwrap();
    assert_eq!(cfg.lookup("r.io").unwrap(), pw("bare", "b"));
}

#[test]
fn identity_token_is_marked() {
    let json = format!(
        r#"{{"auths": {{"r.io": {{"auth": "{}", "identitytoken": "refresh-123"}}}}}}"#,
        b64("someone:")
    );
    let (_d, path) = config(&json);
    let c = DockerConfig::from_path(&path)
        .unwrap()
        .lookup("r.io")
        .unwrap()
        .unwrap();
    assert_eq!(c.kind, CredentialKind::IdentityToken);
    assert_eq!(c.username, "<token>");
    assert_eq!(c.secret, "refresh-123");
}

#[test]
fn namespace_keys_most_specific_prefix_wins() {
    let json = format!(
        r#"{{"auths": {{
            "r.io": {{"auth": "{}"}},
            "r.io/team": {{"auth": "{}"}},
            "r.io/team/app": {{"auth": "{}"}},
            "docker.io/library": {{"auth": "{}"}}
        }}}}"#,
        b64("host:h"),
        b64("team:t"),
        b64("app:a"),
        b64("lib:l")
    );
    let (_d, path) = config(&json);
    let cfg = DockerConfig::from_path(&path).unwrap();
    assert_eq!(cfg.lookup_repo("r.io", "team/app").unwrap(), pw("app", "a"));
    assert_eq!(
        cfg.lookup_repo("r.io", "team/app/sub").unwrap(),
        pw("app", "a")
    );
    assert_eq!(
        cfg.lookup_repo("r.io", "team/other").unwrap(),
        pw("team", "t")
    );
    assert_eq!(
        cfg.lookup_repo("r.io", "teamster/x").unwrap(),
        pw("host", "h")
    );
    assert_eq!(cfg.lookup_repo("r.io", "else").unwrap(), pw("host", "h"));
    assert_eq!(cfg.lookup("r.io").unwrap(), pw("host", "h"));
    assert_eq!(
        cfg.lookup_repo("docker.io", "library/busybox").unwrap(),
        pw("lib", "l")
    );
    assert_eq!(cfg.lookup_repo("docker.io", "user/app").unwrap(), None);
    assert_eq!(cfg.lookup("docker.io").unwrap(), None);
}

#[test]
fn cred_helper_returns_credentials_and_is_cached() {
    let (dir, cfg) = with_helpers(
        r#"{"credHelpers": {"ok.example": "ferrytest", "token.example": "ferrytest", "docker.io": "ferrytest"}}"#,
    );
    assert_eq!(
        cfg.lookup("ok.example").unwrap(),
        pw("helperuser", "helper-secret-1")
    );
    assert_eq!(
        cfg.lookup_repo("ok.example", "a/b").unwrap(),
        pw("helperuser", "helper-secret-1")
    );
    let t = cfg.lookup("token.example").unwrap().unwrap();
    assert!(
        t.is_identity_token() && t.secret == "helper-token-1",
        "{t:?}"
    );
    // Docker Hub credentials live under docker's legacy server URL.
    assert_eq!(
        cfg.lookup("docker.io").unwrap(),
        pw("hubuser", "hub-secret-1")
    );
    assert_eq!(
        calls(dir.path()),
        ["ok.example", "token.example", "https://index.docker.io/v1/"]
    );
}

#[test]
fn helper_not_found_falls_through_to_creds_store_then_auths() {
    let json = format!(
        r#"{{"credHelpers": {{"fallback.example": "ferrytest"}},
            "auths": {{"fallback.example": {{"auth": "{}"}}}}}}"#,
        b64("fileuser:filepass")
    );
    let (_dir, cfg) = with_helpers(&json);
    assert_eq!(
        cfg.lookup("fallback.example").unwrap(),
        pw("fileuser", "filepass")
    );
    assert_eq!(cfg.lookup("unknown.example").unwrap(), None);

    let store = r#"{"credsStore": "ferrytest", "credHelpers": {"special.example": "other"}}"#;
    let (dir, cfg) = with_helpers(store);
    assert_eq!(
        cfg.lookup("ok.example").unwrap(),
        pw("helperuser", "helper-secret-1")
    );
    assert_eq!(
        cfg.lookup("special.example").unwrap(),
        pw("otheruser", "other-secret")
    );
    assert_eq!(cfg.lookup("missing.example").unwrap(), None);
    assert_eq!(cfg.lookup("empty.example").unwrap(), None);
    assert_eq!(
        calls(dir.path()),
        ["ok.example", "missing.example", "empty.example"]
    );
}

#[test]
fn helper_failures_name_the_helper_not_the_secret() {
    let (_dir, cfg) =
        with_helpers(r#"{"credsStore": "ferrytest", "credHelpers": {"gone.example": "absent"}}"#);
    let e = cfg.lookup("fail.example").unwrap_err().to_string();
    assert!(
        e.contains("docker-credential-ferrytest") && e.contains("fail.example"),
        "{e}"
    );
    assert!(
        e.contains("keychain is locked"),
        "the helper's diagnostic is shown: {e}"
    );

    let e = cfg.lookup("leaky.example").unwrap_err().to_string();
    assert!(
        e.contains("docker-credential-ferrytest") && !e.contains("leaked-secret-1"),
        "{e}"
    );

    let e = cfg.lookup("garbage.example").unwrap_err().to_string();
    assert!(
        e.contains("not the expected") && !e.contains("helper-secret-2"),
        "{e}"
    );

    let e = cfg.lookup("gone.example").unwrap_err().to_string();
    assert!(
        e.contains("docker-credential-absent") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn helper_names_cannot_escape_the_helper_directory() {
    let (_dir, cfg) = with_helpers(r#"{"credsStore": "../../bin/sh"}"#);
    let e = cfg.lookup("r.io").unwrap_err().to_string();
    assert!(e.contains("invalid helper name"), "{e}");
}

/// Asserts that loading `json` fails with a message naming the file, containing `expect`, and
/// not containing `secret`.
fn assert_malformed(json: &str, expect: &str, secret: &str) {
    let (_d, path) = config(json);
    let e = DockerConfig::from_path(&path).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()),
        "names the file: {e}"
    );
    assert!(e.contains(expect), "expected {expect:?} in: {e}");
    assert!(!e.contains(secret), "leaks the secret: {e}");
}

#[test]
fn malformed_files_name_the_file_and_hide_secrets() {
    assert_malformed(
        "{\n  \"auths\": {\n    \"r.io\": {\"password\": \"s3cr3t-pw\"\n  }\n",
        "line 5",
        "s3cr3t-pw",
    );
    assert_malformed(
        "{\"auths\": {\"r.io\": {\"auth\": \"s3cr3t-pw\"",
        "end of file",
        "s3cr3t-pw",
    );
    let not_b64 = r#"{"auths": {"r.io": {"auth": "s3cr3t-pw!!"}}}"#;
    assert_malformed(not_b64, "not valid base64", "s3cr3t-pw");
    let no_colon = format!(
        r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#,
        b64("s3cr3t-pw")
    );
    assert_malformed(&no_colon, "USER:PASSWORD", "s3cr3t-pw");
    assert_malformed(&no_colon, "\"r.io\"", "s3cr3t-pw");
    let wrong_type = r#"{"auths": {"r.io": "s3cr3t-pw"}}"#;
    assert_malformed(wrong_type, "must be an object", "s3cr3t-pw");
    let num_pw = r#"{"auths": {"r.io": {"username": "u", "password": 987654321}}}"#;
    assert_malformed(num_pw, "`password` must be a string", "987654321");
    assert_malformed(r#"["s3cr3t-pw"]"#, "top level", "s3cr3t-pw");
    assert_malformed(
        r#"{"credHelpers": {"r.io": 5}}"#,
        "credHelpers",
        "s3cr3t-pw",
    );
}

#[test]
fn unreadable_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = DockerConfig::from_path(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains(&dir.path().display().to_string()) && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn empty_file_means_no_credentials() {
    let (_d, path) = config("  \n");
    assert_eq!(
        DockerConfig::from_path(&path)
            .unwrap()
            .lookup("r.io")
            .unwrap(),
        None
    );
}

/// An environment made of the given variables only.
fn env(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: Vec<(String, OsString)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
        .collect();
    move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn write(path: &Path, json: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, json).unwrap();
}

fn auths(entries: &[(&str, &str)]) -> String {
    let body: Vec<String> = entries
        .iter()
        .map(|(host, userpass)| format!(r#""{host}": {{"auth": "{}"}}"#, b64(userpass)))
        .collect();
    format!(r#"{{"auths": {{{}}}}}"#, body.join(","))
}

#[test]
fn environment_precedence() {
    let root = tempfile::tempdir().unwrap();
    let p = |s: &str| root.path().join(s);
    write(
        &p("run/containers/auth.json"),
        &auths(&[("both.io", "run:1")]),
    );
    write(
        &p("xdg/containers/auth.json"),
        &auths(&[("xdg.io", "xdg:2")]),
    );
    write(
        &p("docker/config.json"),
        &auths(&[("both.io", "docker:3"), ("docker.io", "hub:4")]),
    );
    write(
        &p("home/.docker/config.json"),
        &auths(&[("home.io", "home:5")]),
    );
    write(&p("explicit.json"), &auths(&[("explicit.io", "ex:6")]));

    let full = env(&[
        ("XDG_RUNTIME_DIR", &p("run")),
        ("XDG_CONFIG_HOME", &p("xdg")),
        ("DOCKER_CONFIG", &p("docker")),
        ("HOME", &p("home")),
    ]);
    assert_eq!(
        DockerConfig::auth_file_paths(&full),
        [
            p("run/containers/auth.json"),
            p("xdg/containers/auth.json"),
            p("docker/config.json")
        ]
    );
    let cfg = DockerConfig::load_from_env(&full).unwrap();
    assert_eq!(
        cfg.lookup("both.io").unwrap(),
        pw("run", "1"),
        "XDG_RUNTIME_DIR first"
    );
    assert_eq!(cfg.lookup("xdg.io").unwrap(), pw("xdg", "2"));
    assert_eq!(cfg.lookup("docker.io").unwrap(), pw("hub", "4"));
    assert_eq!(
        cfg.lookup("home.io").unwrap(),
        None,
        "DOCKER_CONFIG replaces ~/.docker"
    );

    let home_only = env(&[("HOME", &p("home"))]);
    let cfg = DockerConfig::load_from_env(&home_only).unwrap();
    assert_eq!(cfg.lookup("home.io").unwrap(), pw("home", "5"));
    assert_eq!(cfg.files(), vec![p("home/.docker/config.json").as_path()]);

    let explicit = env(&[
        ("REGISTRY_AUTH_FILE", &p("explicit.json")),
        ("XDG_RUNTIME_DIR", &p("run")),
        ("HOME", &p("home")),
    ]);
    let cfg = DockerConfig::load_from_env(&explicit).unwrap();
    assert_eq!(cfg.lookup("explicit.io").unwrap(), pw("ex", "6"));
    assert_eq!(
        cfg.lookup("both.io").unwrap(),
        None,
        "REGISTRY_AUTH_FILE alone"
    );
    assert!(DockerConfig::load_from_env(env(&[]))
        .unwrap()
        .files()
        .is_empty());
}

#[test]
fn malformed_file_anywhere_in_the_environment_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    write(&root.path().join(".docker/config.json"), "{oops");
    let e = DockerConfig::load_from_env(env(&[("HOME", root.path())])).unwrap_err();
    assert!(e.to_string().contains(".docker/config.json"), "{e}");
}

#[test]
fn chain_first_source_with_credentials_wins() {
    let (_d, path) = config(&auths(&[("r.io", "file:f"), ("r.io/team", "team:t")]));
    let file = DockerConfig::from_path(&path).unwrap();
    let chain = Chain::new().with(file);
    assert_eq!(
        chain.lookup_repo("r.io", "team/x").unwrap(),
        pw("team", "t")
    );
    assert_eq!(chain.lookup("other.io").unwrap(), None);

    let flag: StaticCredentials = "flag:p@ss:word".parse().unwrap();
    let chain = Chain::new()
        .with(flag)
        .with(DockerConfig::from_path(&path).unwrap());
    assert_eq!(chain.len(), 2);
    assert_eq!(
        chain.lookup_repo("r.io", "team/x").unwrap(),
        pw("flag", "p@ss:word")
    );
    assert_eq!(chain.lookup("other.io").unwrap(), pw("flag", "p@ss:word"));
}

#[test]
fn chain_stops_at_an_error() {
    let (_dir, broken) = with_helpers(r#"{"credsStore": "ferrytest"}"#);
    let chain = Chain::new()
        .with(broken)
        .with(StaticCredentials::new(Credential::password("later", "x")));
    assert!(chain.lookup("fail.example").is_err());
    assert_eq!(chain.lookup("missing.example").unwrap(), pw("later", "x"));
}
