//! `ferry chart package` and `ferry chart push`: the archive layout against Helm's packager
//! (checked with the `tar` crate and GNU tar), every refusal, the ChartMuseum API through a test
//! server that follows ChartMuseum's documented behaviour, and Helm's OCI format on the real
//! docker-registry, read back with `ferry copy`.

#[path = "support/chartmuseum.rs"]
#[allow(dead_code)]
mod chartmuseum;
#[path = "support/registry.rs"]
#[allow(dead_code)]
mod registry;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chartmuseum::{ChartMuseum, MuseumConfig};
use ferry::chart::{package_dir, Chart, ChartError, PackageOptions};
use registry::Registry;
use serde_json::Value;

// ---------------------------------------------------------------- helpers

fn ferry(args: &[&str], env: &[(&str, &str)]) -> Output {
    let no_auth = std::env::temp_dir().join("ferry-chart-tests-no-auth.json");
    std::fs::write(&no_auth, "{}").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .env("REGISTRY_AUTH_FILE", &no_auth)
        .env(
            "DOCKER_CONFIG",
            std::env::temp_dir().join("ferry-chart-tests-no-docker"),
        )
        .env_remove("HELM_REPO_USERNAME")
        .env_remove("HELM_REPO_PASSWORD")
        .env_remove("HELM_REPO_ACCESS_TOKEN")
        .env_remove("HELM_REPO_CONTEXT_PATH")
        .env_remove("FERRY_CHART_CREDS")
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", out(o), err(o)))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A minimal valid chart directory `dir/<name>`.
fn chart_dir(dir: &Path, name: &str, version: &str) -> PathBuf {
    let root = dir.join(name);
    write(
        &root.join("Chart.yaml"),
        &format!(
            "apiVersion: v2\nname: {name}\nversion: {version}\ndescription: The {name} chart\n"
        ),
    );
    write(&root.join("values.yaml"), "replicas: 1\n");
    write(
        &root.join("templates/deployment.yaml"),
        "kind: Deployment\n",
    );
    root
}

/// A chart with every kind of file Helm's packager orders, ignore rules and subcharts.
fn rich_chart(dir: &Path) -> PathBuf {
    let sub = chart_dir(&dir.join("src"), "sub", "0.3.0");
    let sub_tgz = package_dir(&sub, &PackageOptions::default()).unwrap();
    let root = chart_dir(dir, "rich", "1.0.0");
    write(
        &root.join("Chart.lock"),
        "dependencies: []\ndigest: sha256:00\ngenerated: \"2026-01-01T00:00:00Z\"\n",
    );
    write(&root.join("values.schema.json"), "{\"type\": \"object\"}\n");
    write(&root.join("templates/_helpers.tpl"), "{{/* helpers */}}\n");
    write(
        &root.join("templates/.hidden.yaml"),
        "dropped by Helm's default rule\n",
    );
    write(&root.join("README.md"), "# rich\n");
    write(
        &root.join(".helmignore"),
        "# comment\n*.tmp\nci/\n/secret.txt\n!keep.tmp\n",
    );
    write(&root.join("scratch.tmp"), "ignored\n");
    write(&root.join("keep.tmp"), "kept by negation\n");
    write(&root.join("ci/values.yaml"), "ignored directory\n");
    write(&root.join("secret.txt"), "ignored at the top\n");
    write(
        &root.join("docs/secret.txt"),
        "kept: the rule is anchored\n",
    );
    std::fs::create_dir_all(root.join("charts")).unwrap();
    std::fs::write(root.join("charts/sub-0.3.0.tgz"), &sub_tgz.archive).unwrap();
    write(
        &root.join("charts/local/Chart.yaml"),
        "apiVersion: v2\nname: local\nversion: 0.1.0\n",
    );
    write(
        &root.join("charts/local/templates/cm.yaml"),
        "kind: ConfigMap\n",
    );
    root
}

const RICH_ENTRIES: &[&str] = &[
    "rich/Chart.yaml",
    "rich/Chart.lock",
    "rich/values.yaml",
    "rich/values.schema.json",
    "rich/templates/_helpers.tpl",
    "rich/templates/deployment.yaml",
    "rich/.helmignore",
    "rich/README.md",
    "rich/docs/secret.txt",
    "rich/keep.tmp",
    "rich/charts/local/Chart.yaml",
    "rich/charts/local/templates/cm.yaml",
    "rich/charts/sub-0.3.0.tgz",
];

/// (path, mode, uid, gid, mtime, is regular file) of every entry, in archive order.
fn entries(tgz: &[u8]) -> Vec<(String, u32, u64, u64, u64, bool)> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                h.entry_type().is_file(),
            )
        })
        .collect()
}

fn file_in(tgz: &[u8], path: &str) -> Option<Vec<u8>> {
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == path {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return Some(v);
        }
    }
    None
}

fn sha256(bytes: &[u8]) -> String {
    ferry::Digest::of(bytes).to_string()
}

/// Deterministic incompressible bytes.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

// ---------------------------------------------------------------- packaging

#[test]
fn archive_layout_follows_helms_packager() {
    let dir = tempfile::tempdir().unwrap();
    let chart = package_dir(&rich_chart(dir.path()), &PackageOptions::default()).unwrap();
    assert_eq!(chart.file_name(), "rich-1.0.0.tgz");
    assert_eq!(chart.digest.to_string(), sha256(&chart.archive));
    let got = entries(&chart.archive);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, RICH_ENTRIES);
    for (path, mode, uid, gid, mtime, regular) in &got {
        assert_eq!(
            (*mode, *uid, *gid, *mtime, *regular),
            (0o644, 0, 0, 0, true),
            "{path}"
        );
    }
    // The subchart archive is kept byte for byte, the rest as written.
    let sub = file_in(&chart.archive, "rich/charts/sub-0.3.0.tgz").unwrap();
    assert_eq!(entries(&sub)[0].0, "sub/Chart.yaml");
    assert_eq!(
        file_in(&chart.archive, "rich/README.md").unwrap(),
        b"# rich\n"
    );
    // The archive reads back as a valid chart.
    let back = Chart::from_archive(chart.archive.clone(), "back").unwrap();
    assert_eq!(
        (back.meta.name.as_str(), back.meta.version.as_str()),
        ("rich", "1.0.0")
    );
}

#[test]
fn gnu_tar_lists_the_same_entries_owners_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let chart = package_dir(&rich_chart(dir.path()), &PackageOptions::default()).unwrap();
    let file = dir.path().join("rich-1.0.0.tgz");
    std::fs::write(&file, &chart.archive).unwrap();
    let o = Command::new("tar")
        .arg("tzvf")
        .arg(&file)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let listing = out(&o);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), RICH_ENTRIES.len(), "{listing}");
    for (line, want) in lines.iter().zip(RICH_ENTRIES) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], "-rw-r--r--", "{line}");
        assert_eq!(cols[1], "0/0", "{line}");
        assert_eq!(cols[3], "1970-01-01", "{line}");
        assert_eq!(*cols.last().unwrap(), *want, "{line}");
    }
    // GNU tar extracts it cleanly, with every file under the chart's name.
    let x = dir.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    let o = Command::new("tar")
        .arg("xzf")
        .arg(&file)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        std::fs::read(x.join("rich/keep.tmp")).unwrap(),
        b"kept by negation\n"
    );
    assert_eq!(std::fs::read_dir(&x).unwrap().count(), 1);
}

#[test]
fn same_input_gives_the_same_bytes_whatever_the_file_times_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = rich_chart(dir.path());
    let first = package_dir(&root, &PackageOptions::default()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    write(&root.join("README.md"), "# rich\n"); // new mtime, same bytes
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("values.yaml"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let second = package_dir(&root, &PackageOptions::default()).unwrap();
    assert_eq!(first.archive, second.archive);
    // The CLI writes the same bytes too, and SOURCE_DATE_EPOCH sets the entries' mtime.
    let o = ferry(
        &[
            "chart",
            "package",
            root.to_str().unwrap(),
            "-o",
            dir.path().join("a").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        std::fs::read(dir.path().join("a/rich-1.0.0.tgz")).unwrap(),
        first.archive
    );
    let o = ferry(
        &[
            "chart",
            "package",
            root.to_str().unwrap(),
            "-o",
            dir.path().join("b.tgz").to_str().unwrap(),
        ],
        &[("SOURCE_DATE_EPOCH", "1767225600")],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let dated = std::fs::read(dir.path().join("b.tgz")).unwrap();
    assert!(entries(&dated).iter().all(|e| e.4 == 1_767_225_600));
    assert_ne!(dated, first.archive.to_vec());
}

#[test]
fn version_and_app_version_rewrite_the_packaged_chart_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "api", "0.0.0-dev");
    let original = std::fs::read_to_string(root.join("Chart.yaml")).unwrap();
    let o = ferry(
        &[
            "chart",
            "package",
            root.to_str().unwrap(),
            "-o",
            dir.path().to_str().unwrap(),
            "--version",
            "1.4.2+g3f2a",
            "--app-version",
            "1.4.2",
            "--json",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let doc = json(&o);
    assert_eq!(doc["chart"], "api");
    assert_eq!(doc["version"], "1.4.2+g3f2a");
    let file = dir.path().join("api-1.4.2+g3f2a.tgz");
    assert_eq!(doc["file"], file.to_str().unwrap());
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(doc["digest"], sha256(&bytes));
    assert_eq!(doc["size"], bytes.len());
    let yaml = String::from_utf8(file_in(&bytes, "api/Chart.yaml").unwrap()).unwrap();
    assert_eq!(
        yaml,
        "apiVersion: v2\nname: api\nversion: \"1.4.2+g3f2a\"\ndescription: The api chart\nappVersion: \"1.4.2\"\n"
    );
    // The directory itself is untouched.
    assert_eq!(
        std::fs::read_to_string(root.join("Chart.yaml")).unwrap(),
        original
    );
    // A bad --version is refused like a bad Chart.yaml version.
    let o = ferry(
        &[
            "chart",
            "package",
            root.to_str().unwrap(),
            "--version",
            "one",
        ],
        &[],
    );
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(
        err(&o).contains("\"one\" is not a semantic version"),
        "{}",
        err(&o)
    );
}

/// Changes a valid chart directory into an invalid one.
type Setup = Box<dyn FnOnce(&Path)>;

fn refusal(setup: impl FnOnce(&Path)) -> ChartError {
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "bad", "1.0.0");
    setup(&root);
    package_dir(&root, &PackageOptions::default()).unwrap_err()
}

#[test]
fn symbolic_links_inside_are_followed_outside_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "links", "1.0.0");
    write(&dir.path().join("outside.txt"), "secret\n");
    std::os::unix::fs::symlink("values.yaml", root.join("defaults.yaml")).unwrap();
    std::os::unix::fs::symlink("templates", root.join("more")).unwrap();
    let chart = package_dir(&root, &PackageOptions::default()).unwrap();
    assert_eq!(
        file_in(&chart.archive, "links/defaults.yaml").unwrap(),
        b"replicas: 1\n"
    );
    assert_eq!(
        file_in(&chart.archive, "links/more/deployment.yaml").unwrap(),
        b"kind: Deployment\n"
    );

    std::os::unix::fs::symlink("../outside.txt", root.join("leak.txt")).unwrap();
    let e = package_dir(&root, &PackageOptions::default()).unwrap_err();
    assert!(matches!(e, ChartError::Symlink { .. }), "{e}");
    assert!(
        e.to_string().contains("leak.txt points outside the chart"),
        "{e}"
    );
    // An ignored link is not followed at all.
    write(&root.join(".helmignore"), "leak.txt\n");
    package_dir(&root, &PackageOptions::default()).unwrap();

    std::os::unix::fs::symlink(".", root.join("templates/loop")).unwrap();
    let e = package_dir(&root, &PackageOptions::default()).unwrap_err();
    assert!(e.to_string().contains("loop"), "{e}");
}

#[test]
fn helm_size_limits_are_refused_naming_the_file() {
    let e = refusal(|root| {
        let f = std::fs::File::create(root.join("big.bin")).unwrap();
        f.set_len(5 * 1024 * 1024 + 1).unwrap();
    });
    assert!(
        matches!(e, ChartError::FileTooLarge { ref file, .. } if file == "big.bin"),
        "{e}"
    );
    assert!(e.to_string().contains("big.bin is 5242881 bytes"), "{e}");
    // Exactly 5 MiB is allowed; 21 such files exceed 100 MiB.
    let e = refusal(|root| {
        for i in 0..21 {
            let f = std::fs::File::create(root.join(format!("part-{i:02}.bin"))).unwrap();
            f.set_len(5 * 1024 * 1024).unwrap();
        }
    });
    assert!(
        matches!(e, ChartError::ChartTooLarge { ref file, .. } if file == "part-19.bin"),
        "{e}"
    );
}

#[test]
fn chart_yaml_and_subchart_problems_are_refused() {
    let cases: Vec<(&str, Setup)> = vec![
        (
            "Chart.yaml file is missing",
            Box::new(|r| std::fs::remove_file(r.join("Chart.yaml")).unwrap()),
        ),
        (
            "name is required",
            Box::new(|r| write(&r.join("Chart.yaml"), "apiVersion: v2\nversion: 1.0.0\n")),
        ),
        (
            "path separator",
            Box::new(|r| {
                write(
                    &r.join("Chart.yaml"),
                    "apiVersion: v2\nname: a/b\nversion: 1.0.0\n",
                )
            }),
        ),
        (
            "version is required",
            Box::new(|r| write(&r.join("Chart.yaml"), "apiVersion: v2\nname: a\n")),
        ),
        (
            "not a semantic version",
            Box::new(|r| {
                write(
                    &r.join("Chart.yaml"),
                    "apiVersion: v2\nname: a\nversion: 1.0.0.0\n",
                )
            }),
        ),
        (
            "application or library",
            Box::new(|r| {
                write(
                    &r.join("Chart.yaml"),
                    "apiVersion: v2\nname: a\nversion: 1.0.0\ntype: plugin\n",
                )
            }),
        ),
        (
            "apiVersion \"v3\"",
            Box::new(|r| {
                write(
                    &r.join("Chart.yaml"),
                    "apiVersion: v3\nname: a\nversion: 1.0.0\n",
                )
            }),
        ),
        (
            "Invalid JSON in values.schema.json",
            Box::new(|r| write(&r.join("values.schema.json"), "{nope")),
        ),
        (
            "subchart charts/broken",
            Box::new(|r| {
                write(
                    &r.join("charts/broken/Chart.yaml"),
                    "apiVersion: v2\nname: broken\n",
                )
            }),
        ),
        (
            "subchart charts/junk.tgz",
            Box::new(|r| write(&r.join("charts/junk.tgz"), "not gzip")),
        ),
        (
            "not a regular file",
            Box::new(|r| {
                let o = Command::new("mkfifo").arg(r.join("pipe")).output().unwrap();
                assert!(o.status.success());
            }),
        ),
    ];
    for (want, setup) in cases {
        let e = refusal(setup);
        assert!(e.to_string().contains(want), "want {want:?}, got: {e}");
    }
    // Subcharts named _x or .x are not charts (Helm skips them), v1 charts load.
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "ok", "1.0.0");
    write(&root.join("charts/_notes/README"), "not a chart\n");
    write(&root.join("Chart.yaml"), "name: ok\nversion: v1.2\n");
    let c = package_dir(&root, &PackageOptions::default()).unwrap();
    assert_eq!(
        (c.meta.api_version.as_str(), c.file_name().as_str()),
        ("v1", "ok-v1.2.tgz")
    );
}

#[test]
fn archives_that_helms_loader_refuses_are_refused() {
    let build = |entries: &[(&str, &[u8])]| {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Written raw so that ../ and absolute names reach the archive.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        bytes::Bytes::from(b.into_inner().unwrap().finish().unwrap())
    };
    let ok = b"apiVersion: v2\nname: a\nversion: 1.0.0\n";
    type Entries<'a> = &'a [(&'a str, &'a [u8])];
    let cases: &[(Entries, &str)] = &[
        (&[("Chart.yaml", ok)], "chart yaml not in base directory"),
        (
            &[("a/Chart.yaml", ok), ("README", b"x")],
            "outside the base directory",
        ),
        (
            &[("a/Chart.yaml", ok), ("a/../../etc/x", b"x")],
            "parent directory",
        ),
        (&[("a/values.yaml", b"x")], "Chart.yaml file is missing"),
    ];
    for (entries, want) in cases {
        let e = Chart::from_archive(build(entries), "t.tgz").unwrap_err();
        assert!(e.to_string().contains(want), "want {want:?}, got: {e}");
    }
    assert!(Chart::from_archive(build(&[("a/Chart.yaml", ok)]), "t").is_ok());
    let e = Chart::from_archive(bytes::Bytes::from_static(b"plain text"), "t.tgz").unwrap_err();
    assert!(e.to_string().contains("t.tgz"), "{e}");
}

#[test]
fn cli_package_errors_exit_2_and_name_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "api", "1.0.0");
    write(
        &root.join("Chart.yaml"),
        "apiVersion: v2\nname: api\nversion: 1.0.0\ntype: app\n",
    );
    let o = ferry(&["chart", "package", root.to_str().unwrap()], &[]);
    assert_eq!(code(&o), 2, "{}", err(&o));
    assert!(
        err(&o).contains(root.to_str().unwrap()) && err(&o).contains("type \"app\""),
        "{}",
        err(&o)
    );
    let o = ferry(
        &[
            "chart",
            "package",
            dir.path().join("missing").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(err(&o).contains("missing"), "{}", err(&o));
}

// ---------------------------------------------------------------- the ChartMuseum test server

async fn call(
    method: &str,
    url: &str,
    body: Option<(&str, Vec<u8>)>,
    auth: Option<&str>,
) -> (u16, String) {
    let mut r = reqwest::Client::new().request(method.parse().unwrap(), url);
    if let Some((ct, b)) = body {
        r = r.header("content-type", ct).body(b);
    }
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn tgz_of(name: &str, version: &str, extra: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), name, version);
    write(&root.join("NOTES.txt"), extra);
    package_dir(&root, &PackageOptions::default())
        .unwrap()
        .archive
        .to_vec()
}

fn multipart_body(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for (name, data) in parts {
        body.extend(
            format!(
                "--XYZ\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(*data);
        body.extend(b"\r\n");
    }
    body.extend(b"--XYZ--\r\n");
    ("multipart/form-data; boundary=XYZ".into(), body)
}

const PROV: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v2\nname: demo\nversion: 1.0.0\n\n...\n-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n";

#[tokio::test]
async fn test_server_follows_chartmuseums_upload_rules() {
    let cm = ChartMuseum::start(MuseumConfig::default());
    let api = cm.url("/api/charts");
    let v1 = tgz_of("demo", "1.0.0", "one");
    let v1b = tgz_of("demo", "1.0.0", "other bytes");
    let raw = "application/x-www-form-urlencoded"; // what curl --data-binary sends: still raw
    assert_eq!(
        call("POST", &api, Some((raw, v1.clone())), None).await,
        (201, r#"{"saved":true}"#.into())
    );
    assert_eq!(cm.stored("", "demo-1.0.0.tgz").unwrap(), v1);
    assert_eq!(
        call("POST", &api, Some((raw, v1b.clone())), None).await,
        (409, r#"{"error":"file already exists"}"#.into())
    );
    let (ct, body) = multipart_body(&[("chart", &v1b)]);
    assert_eq!(
        call("POST", &api, Some((&ct, body.clone())), None).await,
        (409, r#"{"error":"chart already exists"}"#.into())
    );
    // ?force is tested for presence only.
    let forced = cm.url("/api/charts?force=false");
    assert_eq!(call("POST", &forced, Some((&ct, body)), None).await.0, 201);
    assert_eq!(cm.stored("", "demo-1.0.0.tgz").unwrap(), v1b);
    let (ct, body) = multipart_body(&[("other", b"x")]);
    let (status, text) = call("POST", &api, Some((&ct, body)), None).await;
    assert_eq!(
        (status, text.as_str()),
        (
            400,
            r#"{"error":"no package or provenance file found in form fields chart and prov"}"#
        )
    );
    assert_eq!(
        call("POST", &api, Some((raw, b"junk".to_vec())), None)
            .await
            .0,
        400
    );
    let (ct, body) = multipart_body(&[("prov", PROV.as_bytes())]);
    assert_eq!(call("POST", &api, Some((&ct, body)), None).await.0, 201);
    assert!(cm.stored("", "demo-1.0.0.tgz.prov").is_some());
    // The prov route answers 500 to an invalid provenance file (ChartMuseum's quirk).
    assert_eq!(
        call(
            "POST",
            &cm.url("/api/prov"),
            Some((raw, b"nope".to_vec())),
            None
        )
        .await
        .0,
        500
    );
    // Version lookups, index.yaml with digest and serverInfo, unmatched routes.
    let (status, text) = call("GET", &cm.url("/api/charts/demo/1.0.0"), None, None).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        format!("sha256:{}", doc["digest"].as_str().unwrap()),
        sha256(&v1b)
    );
    let (status, text) = call("GET", &cm.url("/api/charts/demo/2.0.0"), None, None).await;
    assert_eq!(
        (status, text.as_str()),
        (404, r#"{"error":"no chart version found for demo-2.0.0"}"#)
    );
    assert_eq!(
        call("GET", &cm.url("/api/charts/nope"), None, None).await,
        (404, r#"{"error":"chart not found"}"#.into())
    );
    assert_eq!(
        call("GET", &cm.url("/nothing/here"), None, None).await,
        (404, r#"{"error":"not found"}"#.into())
    );
    let (status, index) = call("GET", &cm.url("/index.yaml"), None, None).await;
    assert_eq!(status, 200);
    assert!(
        index.contains(&format!("digest: {}", &sha256(&v1b)[7..])),
        "{index}"
    );
    assert!(index.contains("serverInfo: {}"), "{index}");
    assert_eq!(call("GET", &cm.url("/health"), None, None).await.0, 200);
    assert_eq!(
        call("DELETE", &cm.url("/api/charts/demo/1.0.0"), None, None).await,
        (200, r#"{"deleted":true}"#.into())
    );
    assert!(
        cm.stored("", "demo-1.0.0.tgz").is_none() && cm.stored("", "demo-1.0.0.tgz.prov").is_none()
    );
}

#[tokio::test]
async fn test_server_depth_context_auth_disabled_api_and_body_limit() {
    let cfg = MuseumConfig {
        depth: 2,
        context_path: "/museum".into(),
        basic_auth: Some(("ci".into(), "s3cret".into())),
        max_upload_size: 4096,
        ..MuseumConfig::default()
    };
    let cm = ChartMuseum::start(cfg);
    let good = format!("Basic {}", base64_of("ci:s3cret"));
    let small = tgz_of("demo", "1.0.0", "x");
    let ct = "application/gzip";
    assert_eq!(
        call(
            "POST",
            &cm.url("/museum/api/org/team/charts"),
            Some((ct, small.clone())),
            Some(&good)
        )
        .await
        .0,
        201
    );
    assert!(cm.stored("org/team", "demo-1.0.0.tgz").is_some());
    // Outside the context path, or at the wrong depth: no route.
    assert_eq!(
        call(
            "POST",
            &cm.url("/api/org/team/charts"),
            Some((ct, small.clone())),
            Some(&good)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call("GET", &cm.url("/museum/org/index.yaml"), None, Some(&good))
            .await
            .0,
        404
    );
    let (status, index) = call(
        "GET",
        &cm.url("/museum/org/team/index.yaml"),
        None,
        Some(&good),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        index.contains("serverInfo:\n  contextPath: /museum"),
        "{index}"
    );
    // Every denial is 401 (wrong password, no header, pull and push alike).
    for auth in [None, Some("Basic Y2k6bm8="), Some("Bearer s3cret")] {
        assert_eq!(
            call("GET", &cm.url("/museum/org/team/index.yaml"), None, auth).await,
            (401, r#"{"error":"unauthorized"}"#.into())
        );
    }
    let big = noise(5000, 7);
    assert_eq!(
        call(
            "POST",
            &cm.url("/museum/api/org/team/charts"),
            Some((ct, big)),
            Some(&good)
        )
        .await,
        (413, r#"{"error":"request too large"}"#.into())
    );

    let off = ChartMuseum::start(MuseumConfig {
        disable_api: true,
        ..MuseumConfig::default()
    });
    assert_eq!(
        call("GET", &off.url("/api/charts/demo/1.0.0"), None, None).await,
        (404, r#"{"error":"not found"}"#.into())
    );
    assert_eq!(
        call("POST", &off.url("/api/charts"), Some((ct, small)), None)
            .await
            .0,
        404
    );
    assert_eq!(
        call("GET", &off.url("/index.yaml"), None, None).await.0,
        200
    );

    let bearer = ChartMuseum::start(MuseumConfig {
        bearer_token: Some("tok".into()),
        anonymous_get: true,
        ..MuseumConfig::default()
    });
    assert_eq!(
        call("GET", &bearer.url("/index.yaml"), None, None).await.0,
        200
    );
    assert_eq!(
        call("GET", &bearer.url("/api/charts"), None, None).await.0,
        200
    );
    let (status, _) = call(
        "POST",
        &bearer.url("/api/charts"),
        Some((ct, b"x".to_vec())),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ---------------------------------------------------------------- ferry chart push → ChartMuseum

/// A packaged chart file `dir/<name>-<version>.tgz`; `extra` changes its bytes.
fn tgz_file(dir: &Path, name: &str, version: &str, extra: &str) -> PathBuf {
    let file = dir.join(format!("{name}-{version}.tgz"));
    std::fs::write(&file, tgz_of(name, version, extra)).unwrap();
    file
}

#[test]
fn museum_push_is_created_then_unchanged_refused_and_forced() {
    let cm = ChartMuseum::start(MuseumConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let v1 = tgz_file(dir.path(), "demo", "1.0.0", "first");
    let url = cm.url("");
    let o = ferry(
        &["chart", "push", v1.to_str().unwrap(), &url, "--json"],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let doc = json(&o);
    let first = std::fs::read(&v1).unwrap();
    assert_eq!(doc["result"], "created");
    assert_eq!(doc["digest"], sha256(&first));
    assert_eq!(doc["destination"], cm.url("/api/charts"));
    assert_eq!(
        cm.stored("", "demo-1.0.0.tgz").unwrap(),
        first,
        "the archive is uploaded byte for byte"
    );
    let posts = cm.seen_with("POST");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].content_type.as_deref(), Some("application/gzip"));
    assert_eq!(posts[0].query, None);

    // Same bytes again: unchanged, nothing sent.
    let o = ferry(&["chart", "push", v1.to_str().unwrap(), &url], &[]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).starts_with("unchanged demo 1.0.0"), "{}", out(&o));
    assert_eq!(cm.seen_with("POST").len(), 1);

    // Other bytes under the same version: refused, exit 7, nothing sent.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let v1b = tgz_file(&other, "demo", "1.0.0", "second");
    let second = std::fs::read(&v1b).unwrap();
    let o = ferry(
        &["chart", "push", v1b.to_str().unwrap(), &url, "--json"],
        &[],
    );
    assert_eq!(code(&o), 7, "{}", err(&o));
    let doc = json(&o);
    assert_eq!(
        (doc["result"].as_str(), doc["previous"].as_str()),
        (Some("refused"), Some(sha256(&first).as_str()))
    );
    assert!(
        err(&o).contains("already exists") && err(&o).contains("--force"),
        "{}",
        err(&o)
    );
    assert_eq!(cm.stored("", "demo-1.0.0.tgz").unwrap(), first);
    assert_eq!(cm.seen_with("POST").len(), 1);

    // A dry run says what --force would do and sends nothing.
    let o = ferry(
        &[
            "chart",
            "push",
            v1b.to_str().unwrap(),
            &url,
            "--force",
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).starts_with("would replace demo 1.0.0"),
        "{}",
        out(&o)
    );
    assert_eq!(cm.seen_with("POST").len(), 1);

    let o = ferry(
        &[
            "chart",
            "push",
            v1b.to_str().unwrap(),
            &url,
            "--force",
            "--json",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(json(&o)["result"], "replaced");
    assert_eq!(cm.stored("", "demo-1.0.0.tgz").unwrap(), second);
    let posts = cm.seen_with("POST");
    assert_eq!((posts.len(), posts[1].query.as_deref()), (2, Some("force")));
}

#[test]
fn museum_push_packages_a_directory_and_finds_the_multitenant_api_under_the_context_path() {
    let cm = ChartMuseum::start(MuseumConfig {
        depth: 2,
        context_path: "/museum".into(),
        ..MuseumConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "api", "0.0.0");
    let url = cm.url("/museum/org/team");
    let o = ferry(
        &[
            "chart",
            "push",
            root.to_str().unwrap(),
            &url,
            "--version",
            "1.4.2",
            "--app-version",
            "1.4.2",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let stored = cm
        .stored("org/team", "api-1.4.2.tgz")
        .expect("stored under the tenant's repository");
    let expected = package_dir(
        &root,
        &PackageOptions {
            version: Some("1.4.2".into()),
            app_version: Some("1.4.2".into()),
            mtime: 0,
        },
    )
    .unwrap();
    assert_eq!(stored, expected.archive.to_vec());
    let seen = cm.seen();
    assert_eq!(
        seen[0].path, "/museum/org/team/index.yaml",
        "the context path comes from index.yaml"
    );
    assert!(
        seen.iter()
            .any(|s| s.method == "POST" && s.path == "/museum/api/org/team/charts"),
        "{seen:?}"
    );
    // Packaging is deterministic, so a second run from the directory is a no-op.
    let o = ferry(
        &[
            "chart",
            "push",
            root.to_str().unwrap(),
            &url,
            "--version",
            "1.4.2",
            "--app-version",
            "1.4.2",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).starts_with("unchanged api 1.4.2"), "{}", out(&o));
    // --context-path overrides index.yaml (so no GET of it).
    let before = cm.seen().len();
    let o = ferry(
        &[
            "chart",
            "push",
            root.to_str().unwrap(),
            &url,
            "--version",
            "1.4.2",
            "--app-version",
            "1.4.2",
            "--context-path",
            "/museum",
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(cm.seen()[before..]
        .iter()
        .all(|s| !s.path.ends_with("index.yaml")));
}

#[test]
fn museum_push_sends_the_provenance_file_as_multipart() {
    let cm = ChartMuseum::start(MuseumConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let tgz = tgz_file(dir.path(), "demo", "1.0.0", "x");
    std::fs::write(dir.path().join("demo-1.0.0.tgz.prov"), PROV).unwrap();
    let o = ferry(&["chart", "push", tgz.to_str().unwrap(), &cm.url("")], &[]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        cm.stored("", "demo-1.0.0.tgz").unwrap(),
        std::fs::read(&tgz).unwrap()
    );
    assert_eq!(
        cm.stored("", "demo-1.0.0.tgz.prov").unwrap(),
        PROV.as_bytes()
    );
    let post = &cm.seen_with("POST")[0];
    assert!(
        post.content_type
            .as_deref()
            .unwrap()
            .starts_with("multipart/form-data; boundary="),
        "{post:?}"
    );
    // --prov names another file; a chart directory gets no automatic provenance.
    let other = dir.path().join("signed.prov");
    std::fs::write(&other, PROV.replace("...", "again")).unwrap();
    let o = ferry(
        &[
            "chart",
            "push",
            tgz.to_str().unwrap(),
            &cm.url(""),
            "--prov",
            other.to_str().unwrap(),
            "--force",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        String::from_utf8(cm.stored("", "demo-1.0.0.tgz.prov").unwrap())
            .unwrap()
            .contains("again")
    );
    // The same chart and provenance again: unchanged; the chart with the other provenance file
    // (the one beside the archive) is a change, refused without --force.
    let posts = cm.seen_with("POST").len();
    let o = ferry(
        &[
            "chart",
            "push",
            tgz.to_str().unwrap(),
            &cm.url(""),
            "--prov",
            other.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).starts_with("unchanged"), "{}", out(&o));
    let o = ferry(&["chart", "push", tgz.to_str().unwrap(), &cm.url("")], &[]);
    assert_eq!(code(&o), 7, "{}", err(&o));
    assert_eq!(cm.seen_with("POST").len(), posts);
}

#[test]
fn museum_auth_basic_from_flag_or_env_bearer_from_env_and_401_exits_3() {
    let cm = ChartMuseum::start(MuseumConfig {
        basic_auth: Some(("ci".into(), "s3cret".into())),
        ..MuseumConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let tgz = tgz_file(dir.path(), "demo", "1.0.0", "x");
    let (chart, url) = (tgz.to_str().unwrap(), cm.url(""));
    let o = ferry(&["chart", "push", chart, &url], &[]);
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(
        err(&o).contains("HTTP 401") && err(&o).contains("unauthorized"),
        "{}",
        err(&o)
    );
    let o = ferry(
        &["chart", "push", chart, &url, "--creds", "ci:wrong-pass"],
        &[],
    );
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(
        !err(&o).contains("wrong-pass") && !out(&o).contains("wrong-pass"),
        "{}",
        err(&o)
    );
    let o = ferry(
        &["chart", "push", chart, &url, "--dry-run"],
        &[
            ("HELM_REPO_USERNAME", "ci"),
            ("HELM_REPO_PASSWORD", "s3cret"),
        ],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(out(&o).starts_with("would create"), "{}", out(&o));
    let o = ferry(
        &["chart", "push", chart, &url, "--creds", "ci:s3cret"],
        &[("HELM_REPO_ACCESS_TOKEN", "ignored")],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(cm.seen_with("POST")[0]
        .authorization
        .as_deref()
        .unwrap()
        .starts_with("Basic "));

    let bearer = ChartMuseum::start(MuseumConfig {
        bearer_token: Some("tok-123".into()),
        ..MuseumConfig::default()
    });
    let o = ferry(
        &["chart", "push", chart, &bearer.url("")],
        &[("HELM_REPO_ACCESS_TOKEN", "tok-123")],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(
        bearer.seen_with("POST")[0].authorization.as_deref(),
        Some("Bearer tok-123")
    );
    let o = ferry(
        &["chart", "push", chart, &bearer.url(""), "--force"],
        &[("HELM_REPO_ACCESS_TOKEN", "tok-999")],
    );
    assert_eq!(code(&o), 3, "{}", err(&o));
    assert!(!err(&o).contains("tok-999"), "{}", err(&o));
}

#[test]
fn museum_refusals_disabled_api_and_body_limit_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = tgz_file(dir.path(), "demo", "1.0.0", "x");
    let chart = tgz.to_str().unwrap();

    let off = ChartMuseum::start(MuseumConfig {
        disable_api: true,
        ..MuseumConfig::default()
    });
    let o = ferry(&["chart", "push", chart, &off.url("")], &[]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains("API is disabled") && err(&o).contains("DISABLE_API"),
        "{}",
        err(&o)
    );
    assert!(off.seen_with("POST").is_empty());

    // The server refuses overwrites even with ?force: the 409 is a refusal (exit 7).
    let locked = ChartMuseum::start(MuseumConfig {
        disable_force_overwrite: true,
        ..MuseumConfig::default()
    });
    locked.put("", "demo-1.0.0.tgz", tgz_of("demo", "1.0.0", "older"));
    let o = ferry(
        &["chart", "push", chart, &locked.url(""), "--force", "--json"],
        &[],
    );
    assert_eq!(code(&o), 7, "{}", err(&o));
    assert_eq!(json(&o)["result"], "refused");
    assert_eq!(locked.seen_with("POST")[0].status, 409);

    // ChartMuseum's default 20 MiB body limit: a chart of incompressible files over it gets 413.
    let cm = ChartMuseum::start(MuseumConfig::default());
    let root = chart_dir(dir.path(), "huge", "1.0.0");
    for i in 0..5 {
        std::fs::write(root.join(format!("blob-{i}.bin")), noise(4_500_000, i + 1)).unwrap();
    }
    let o = ferry(&["chart", "push", root.to_str().unwrap(), &cm.url("")], &[]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains("HTTP 413") && err(&o).contains("request too large"),
        "{}",
        err(&o)
    );

    // Not a ChartMuseum repository URL: the index.yaml GET says where it looked.
    let o = ferry(&["chart", "push", chart, &cm.url("/no/such/repo")], &[]);
    assert_eq!(code(&o), 1, "{}", err(&o));
    assert!(
        err(&o).contains("/no/such/repo/index.yaml: HTTP 404"),
        "{}",
        err(&o)
    );
    let o = ferry(&["chart", "push", chart, "http://charts.example.com"], &[]);
    assert_eq!(code(&o), 2, "{}", err(&o));
}

// ---------------------------------------------------------------- ferry chart push → OCI

async fn get_json(url: &str, accept: &str) -> (Value, Vec<u8>, Option<String>) {
    let resp = reqwest::Client::new()
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "GET {url}");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.bytes().await.unwrap().to_vec();
    (
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        bytes,
        ct,
    )
}

fn manifest_puts(reg: &Registry) -> usize {
    reg.log()
        .lines()
        .filter(|l| l.contains("\"PUT /v2/") && l.contains("/manifests/"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn oci_push_writes_helms_format_and_reads_back_with_ferry_copy() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "demo", "0.0.0");
    write(
        &root.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 1.2.3+build.7\nappVersion: \"2.0\"\ndescription: A démo\nhome: https://example.com/demo\nsources:\n  - https://git.example.com/demo\n  - https://mirror.example.com/demo\nmaintainers:\n  - name: Ann\n    email: ann@example.com\n  - name: Bob\nkeywords: [web]\nannotations:\n  org.opencontainers.image.title: cannot-override\n  team: payments\n",
    );
    let chart = package_dir(&root, &PackageOptions::default()).unwrap();
    let tgz = dir.path().join("demo-1.2.3+build.7.tgz");
    std::fs::write(&tgz, &chart.archive).unwrap();
    std::fs::write(dir.path().join("demo-1.2.3+build.7.tgz.prov"), PROV).unwrap();
    let dest = format!("oci://{}/charts", reg.addr);
    let o = ferry(
        &["chart", "push", tgz.to_str().unwrap(), &dest, "--json"],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let report = json(&o);
    assert_eq!(report["result"], "created");
    assert_eq!(
        report["destination"],
        format!("{}/charts/demo:1.2.3_build.7", reg.addr)
    );
    assert_eq!(report["digest"], sha256(&chart.archive));

    // The manifest, field by field.
    let url = format!("http://{}/v2/charts/demo/manifests/1.2.3_build.7", reg.addr);
    let (m, bytes, ct) = get_json(&url, "application/vnd.oci.image.manifest.v1+json").await;
    assert_eq!(
        ct.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(report["manifest"], sha256(&bytes));
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["annotations", "config", "layers", "schemaVersion"],
        "no mediaType, artifactType or subject"
    );
    assert!(std::str::from_utf8(&bytes)
        .unwrap()
        .starts_with("{\"schemaVersion\":2,\"config\":{"));
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.helm.config.v1+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let digests: Vec<&str> = layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let mut sorted = digests.clone();
    sorted.sort();
    assert_eq!(digests, sorted, "layers are sorted by digest, as Helm does");
    let content = layers
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.cncf.helm.chart.content.v1.tar+gzip")
        .unwrap();
    let prov = layers
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.cncf.helm.chart.provenance.v1.prov")
        .unwrap();
    assert_eq!(
        (
            content["digest"].as_str().unwrap(),
            content["size"].as_u64().unwrap()
        ),
        (sha256(&chart.archive).as_str(), chart.archive.len() as u64)
    );
    assert_eq!(prov["digest"].as_str().unwrap(), sha256(PROV.as_bytes()));
    for d in [&m["config"], content, prov] {
        let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["digest", "mediaType", "size"],
            "plain descriptors: {d}"
        );
    }
    let a = &m["annotations"];
    let oci = |k: &str| {
        a[format!("org.opencontainers.image.{k}")]
            .as_str()
            .map(String::from)
    };
    assert_eq!(oci("title").as_deref(), Some("demo"));
    assert_eq!(oci("version").as_deref(), Some("1.2.3+build.7"));
    assert_eq!(oci("description").as_deref(), Some("A d\\u00e9mo"));
    assert_eq!(oci("url").as_deref(), Some("https://example.com/demo"));
    assert_eq!(
        oci("source").as_deref(),
        Some("https://git.example.com/demo")
    );
    assert_eq!(
        oci("authors").as_deref(),
        Some("Ann (ann@example.com), Bob")
    );
    assert_eq!(a["team"], "payments");
    let mtime = std::fs::metadata(&tgz).unwrap().modified().unwrap();
    assert_eq!(
        oci("created"),
        Some(ferry::chart::oci::rfc3339(mtime)),
        "created is the archive's mtime"
    );
    assert_eq!(a.as_object().unwrap().len(), 8);

    // The config blob is Chart.yaml as Helm's JSON.
    let cfg_url = format!(
        "http://{}/v2/charts/demo/blobs/{}",
        reg.addr,
        m["config"]["digest"].as_str().unwrap()
    );
    let (_, config, _) = get_json(&cfg_url, "*/*").await;
    assert_eq!(
        String::from_utf8(config).unwrap(),
        r#"{"name":"demo","home":"https://example.com/demo","sources":["https://git.example.com/demo","https://mirror.example.com/demo"],"version":"1.2.3+build.7","description":"A démo","keywords":["web"],"maintainers":[{"name":"Ann","email":"ann@example.com"},{"name":"Bob"}],"apiVersion":"v2","appVersion":"2.0","annotations":{"org.opencontainers.image.title":"cannot-override","team":"payments"}}"#
    );

    // ferry copy reads it back into an OCI layout: the same manifest and chart bytes.
    let layout = dir.path().join("layout");
    let src = format!("{}/charts/demo:1.2.3_build.7", reg.addr);
    let o = tokio::task::spawn_blocking(move || {
        let dst = format!("oci:{}:demo", layout.display());
        (ferry(&["copy", &src, &dst], &[]), layout)
    })
    .await
    .unwrap();
    let (o, layout) = o;
    assert_eq!(code(&o), 0, "{}", err(&o));
    let blob = |d: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    assert_eq!(blob(&sha256(&chart.archive)), chart.archive.to_vec());
    assert_eq!(blob(&sha256(&bytes)), bytes);
    assert_eq!(blob(&sha256(PROV.as_bytes())), PROV.as_bytes());
}

#[test]
fn oci_push_is_unchanged_refused_or_forced_like_a_tag() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = chart_dir(dir.path(), "api", "1.0.0");
    let dest = format!("oci://{}/team/charts", reg.addr);
    let o = ferry(&["chart", "push", root.to_str().unwrap(), &dest], &[]);
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert!(
        out(&o).starts_with(&format!(
            "created api 1.0.0 → {}/team/charts/api:1.0.0",
            reg.addr
        )),
        "{}",
        out(&o)
    );
    let puts = manifest_puts(&reg);
    assert_eq!(puts, 1);

    // The same chart (packaged again: same bytes) is unchanged; nothing is written.
    let o = ferry(
        &["chart", "push", root.to_str().unwrap(), &dest, "--json"],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    assert_eq!(json(&o)["result"], "unchanged");
    assert_eq!(manifest_puts(&reg), puts);

    // Other bytes under the same version: refused (exit 7), the tag stays.
    write(&root.join("templates/extra.yaml"), "kind: Service\n");
    let o = ferry(
        &["chart", "push", root.to_str().unwrap(), &dest, "--json"],
        &[],
    );
    assert_eq!(code(&o), 7, "{}", err(&o));
    let refused = json(&o);
    assert_eq!(refused["result"], "refused");
    assert!(err(&o).contains("already exists"), "{}", err(&o));
    assert_eq!(manifest_puts(&reg), puts);
    let o = ferry(
        &[
            "chart",
            "push",
            root.to_str().unwrap(),
            &dest,
            "--dry-run",
            "--force",
            "--json",
        ],
        &[],
    );
    assert_eq!(
        (code(&o), json(&o)["result"].as_str()),
        (0, Some("replaced"))
    );
    assert_eq!(manifest_puts(&reg), puts);

    // --force moves the tag to the new chart.
    let o = ferry(
        &[
            "chart",
            "push",
            root.to_str().unwrap(),
            &dest,
            "--force",
            "--json",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", err(&o));
    let replaced = json(&o);
    assert_eq!(replaced["result"], "replaced");
    assert_eq!(replaced["previous"], refused["previous"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://{}/v2/team/charts/api/manifests/1.0.0", reg.addr);
    let (m, bytes, _) = rt.block_on(get_json(&url, "application/vnd.oci.image.manifest.v1+json"));
    assert_eq!(replaced["manifest"], sha256(&bytes));
    assert_eq!(m["layers"][0]["digest"], replaced["digest"]);
    assert_ne!(replaced["digest"], refused["previous"]);

    // A destination that is not a valid repository name is bad input (exit 2).
    let o = ferry(
        &[
            "chart",
            "push",
            root.to_str().unwrap(),
            &format!("oci://{}/UPPER", reg.addr),
        ],
        &[],
    );
    assert_eq!(code(&o), 2, "{}", err(&o));
}
