//! The everyday commands around a release, through the binary against a real registry, OCI
//! layouts and the fault server: `digest`, `inspect`, `ls`, `delete`, `--digestfile`,
//! `completions` and `man`. skopeo is the referee for bytes and digests.
mod support;

use std::path::Path;
use std::process::{Command, Output};

use ferry::Digest;
use serde_json::{json, Value};
use support::fault_server::{FaultConfig, FaultServer, Kind, Quirks};
use support::fixtures::{self, BuiltImage, ImageSpec};
use support::registry::{which, Registry};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Vec<u8> {
    let out = ferry(args);
    assert!(out.status.success(), "ferry {args:?}: {}", stderr(&out));
    out.stdout
}

fn text(args: &[&str]) -> String {
    String::from_utf8(ok(args)).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn code(args: &[&str]) -> (Option<i32>, String) {
    let out = ferry(args);
    (out.status.code(), stderr(&out))
}

/// Builds `spec` into a fresh layout and pushes it to `reg` as `repo_tag` with skopeo.
fn seed(reg: &Registry, repo_tag: &str, spec: &ImageSpec) -> BuiltImage {
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "t", spec);
    fixtures::seed_registry(dir.path(), "t", &reg.addr, repo_tag);
    built
}

/// A signature-like OCI artifact (empty config, `artifactType`, `subject`) in a layout of its
/// own, written by hand, tagged `sig`.
fn signature_layout(dir: &Path, subject: &BuiltImage) -> Digest {
    let blob = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        let path = dir.join("blobs/sha256").join(d.hex());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        d
    };
    let payload = br#"{"critical":{"type":"cosign container image signature"}}"#;
    let body = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": blob(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                    "digest": blob(payload), "size": payload.len()}],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    let digest = blob(&bytes);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
        "size": bytes.len(), "annotations": {"org.opencontainers.image.ref.name": "sig"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}

#[test]
fn inspect_and_digest_match_skopeo_for_every_media_type() {
    let reg = Registry::start();
    let images = [
        ("oci", seed(&reg, "m/oci:1", &ImageSpec::oci()), "image"),
        (
            "docker",
            seed(&reg, "m/docker:1", &ImageSpec::docker()),
            "image",
        ),
        (
            "index",
            seed(&reg, "m/index:1", &ImageSpec::oci_index()),
            "index",
        ),
        (
            "list",
            seed(&reg, "m/list:1", &ImageSpec::docker_list()),
            "index",
        ),
        (
            "chart",
            seed(&reg, "m/chart:1", &ImageSpec::artifact()),
            "artifact",
        ),
    ];
    let sig_dir = tempfile::tempdir().unwrap();
    let sig = signature_layout(sig_dir.path(), &images[0].1);
    let sig_src = format!("oci:{}:sig", sig_dir.path().display());
    ok(&["copy", "-q", &sig_src, &reg.image("m/sig:1")]);
    let mut all: Vec<(String, Digest, &str)> = images
        .iter()
        .map(|(name, b, kind)| (reg.image(&format!("m/{name}:1")), b.digest.clone(), *kind))
        .collect();
    all.push((reg.image("m/sig:1"), sig.clone(), "artifact"));
    for (r, want, kind) in &all {
        let skopeo = fixtures::inspect_raw(&format!("docker://{r}"));
        assert_eq!(ok(&["inspect", "--raw", r]), skopeo, "{r}: --raw bytes");
        assert_eq!(Digest::of(&skopeo), *want, "{r}");
        assert_eq!(text(&["digest", r]), format!("{want}\n"), "{r}: digest");
        let j: Value = serde_json::from_slice(&ok(&["inspect", "--json", r])).unwrap();
        assert_eq!(j["digest"], want.to_string(), "{r}");
        assert_eq!(j["kind"], *kind, "{r}: {j}");
        assert_eq!(j["size"], skopeo.len(), "{r}");
        let plain = text(&["inspect", r]);
        assert!(plain.contains(&want.to_string()), "{plain}");
        assert!(plain.contains(&format!("kind:        {kind}")), "{plain}");
    }
    // What each kind shows.
    let j = |r: &str| -> Value { serde_json::from_slice(&ok(&["inspect", "--json", r])).unwrap() };
    let oci = j(&all[0].0);
    assert_eq!(oci["config"]["platform"], "linux/amd64", "{oci}");
    assert_eq!(
        oci["layers"].as_array().unwrap().len(),
        images[0].1.blobs.len() - 1
    );
    assert_eq!(oci["reference"], all[0].0);
    let index = j(&all[2].0);
    let platforms: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64", "arm"]);
    assert!(text(&["inspect", &all[3].0]).contains("linux/arm/v7"));
    let chart = j(&all[4].0);
    assert_eq!(chart["artifact_type"], fixtures::HELM_CONFIG, "{chart}");
    assert_eq!(chart["config"]["chart"], "ferry-test 0.1.0", "{chart}");
    let s = j(&all[5].0);
    assert_eq!(
        s["subject"]["digest"],
        images[0].1.digest.to_string(),
        "{s}"
    );
    assert_eq!(
        s["artifact_type"],
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    );
    // Layouts: the same bytes as the blob on disk.
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "v1", &ImageSpec::docker_list());
    let layout = format!("oci:{}:v1", dir.path().display());
    let on_disk = std::fs::read(dir.path().join("blobs/sha256").join(built.digest.hex())).unwrap();
    assert_eq!(ok(&["inspect", "--raw", &layout]), on_disk);
    assert_eq!(text(&["digest", &layout]), format!("{}\n", built.digest));
}

#[test]
fn digest_and_inspect_pick_a_platform() {
    let reg = Registry::start();
    let index = seed(&reg, "p/app:1", &ImageSpec::oci_index());
    let list = seed(&reg, "p/legacy:1", &ImageSpec::docker_list());
    let single = seed(&reg, "p/one:1", &ImageSpec::oci());
    let (app, legacy, one) = (
        reg.image("p/app:1"),
        reg.image("p/legacy:1"),
        reg.image("p/one:1"),
    );
    let arm64 = text(&["digest", "--platform", "linux/arm64", &app]);
    assert_eq!(arm64.trim(), index.children[1].digest.to_string());
    let v7 = text(&["digest", "--platform", "linux/arm/v7", &legacy]);
    assert_eq!(v7.trim(), list.children[2].digest.to_string());
    // The child's bytes and config are what skopeo sees for that platform.
    let child = format!(
        "docker://{}@{}",
        reg.image("p/app"),
        index.children[1].digest
    );
    let raw = ok(&["inspect", "--raw", "--platform", "linux/arm64/v8", &app]);
    assert_eq!(raw, fixtures::inspect_raw(&child));
    let config = ok(&["inspect", "--config", "--platform", "linux/arm64", &app]);
    let args = ["inspect", "--config", "--raw", "--tls-verify=false"];
    assert_eq!(config, fixtures::skopeo(&[&args[..], &[&child]].concat()));
    // An index has no config of its own; a single image is its own platform.
    let (c, err) = code(&["inspect", "--config", &app]);
    assert_eq!(c, Some(2), "{err}");
    let own = text(&["digest", "--platform", "linux/amd64", &one]);
    assert_eq!(own.trim(), single.digest.to_string());
    let (c, err) = code(&["digest", "--platform", "linux/s390x", &one]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("linux/amd64"), "{err}");
    let (c, err) = code(&["digest", "--platform", "windows/amd64", &app]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("linux/arm64/v8"), "{err}");
    // Absent: exit 4, for tags, digests and repositories.
    assert_eq!(code(&["digest", &reg.image("p/app:nope")]).0, Some(4));
    assert_eq!(code(&["inspect", &reg.image("p/nothing:1")]).0, Some(4));
    let absent = format!("{}@{}", reg.image("p/app"), Digest::of(b"absent"));
    assert_eq!(code(&["digest", &absent]).0, Some(4));
}

#[test]
fn ls_lists_250_tags_sorted_and_filtered() {
    let reg = Registry::start();
    seed(&reg, "many/app:t000", &ImageSpec::oci().layers(1, 1024));
    let tags: Vec<String> = (1..250).rev().map(|i| format!("t{i:03}")).collect();
    let mut args = vec!["tag".to_string(), "-q".into(), reg.image("many/app:t000")];
    args.extend(tags.iter().cloned());
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let repo = reg.image("many/app");
    let listed: Vec<String> = text(&["ls", &repo]).lines().map(str::to_string).collect();
    let want: Vec<String> = (0..250).map(|i| format!("t{i:03}")).collect();
    assert_eq!(listed, want);
    let skopeo = fixtures::skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{repo}"),
    ]);
    let skopeo: Value = serde_json::from_slice(&skopeo).unwrap();
    let mut theirs: Vec<String> = serde_json::from_value(skopeo["Tags"].clone()).unwrap();
    theirs.sort();
    assert_eq!(listed, theirs);
    let filtered = text(&["ls", "--filter", "^t1[0-9]{2}$", &repo]);
    assert_eq!(filtered.lines().count(), 100);
    assert!(
        filtered.starts_with("t100\n") && filtered.ends_with("t199\n"),
        "{filtered}"
    );
    let j: Value = serde_json::from_slice(&ok(&["ls", "--json", "--filter", "7$", &repo])).unwrap();
    assert_eq!(j["tags"].as_array().unwrap().len(), 25, "{j}");
    assert_eq!(j["location"], repo);
    // A reference with a tag is not a repository; a bad regex is a usage error.
    assert_eq!(code(&["ls", &reg.image("many/app:t000")]).0, Some(2));
    assert_eq!(code(&["ls", "--filter", "(", &repo]).0, Some(2));
    // An unknown repository has no tags.
    assert_eq!(text(&["ls", &reg.image("many/none")]), "");
}

#[test]
fn ls_follows_every_link_page() {
    let srv = FaultServer::start(FaultConfig::new().quirks(Quirks {
        tags_page_size: Some(7),
        ..Quirks::default()
    }));
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    for i in (0..250).rev() {
        srv.put_manifest(
            "r/app",
            &format!("v{i:03}"),
            m,
            "application/vnd.oci.image.index.v1+json",
        );
    }
    let listed = text(&["ls", &format!("{}/r/app", srv.host())]);
    let want: String = (0..250).map(|i| format!("v{i:03}\n")).collect();
    assert_eq!(listed, want);
    assert_eq!(srv.count(Kind::TagsList), 250_u64.div_ceil(7));
}

#[test]
fn ls_on_a_layout_lists_its_images() {
    let dir = tempfile::tempdir().unwrap();
    let a = fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci());
    let b = fixtures::write_layout(dir.path(), "v2", &ImageSpec::oci_index().seed(2));
    let layout = format!("oci:{}", dir.path().display());
    let out = text(&["ls", &layout]);
    let want = format!(
        "v1\t{}\t{}\nv2\t{}\t{}\n",
        a.digest, a.media_type, b.digest, b.media_type
    );
    assert_eq!(out, want);
    let j: Value =
        serde_json::from_slice(&ok(&["ls", "--json", "--filter", "2", &layout])).unwrap();
    assert_eq!(j["images"][0]["tag"], "v2", "{j}");
    assert_eq!(j["images"][0]["digest"], b.digest.to_string(), "{j}");
    assert_eq!(j["images"].as_array().unwrap().len(), 1);
}

#[test]
fn delete_tags_and_manifests() {
    let reg = Registry::start();
    let shared = seed(&reg, "d/app:release", &ImageSpec::oci());
    ok(&["tag", "-q", &reg.image("d/app:release"), "branch"]);
    let solo = seed(&reg, "d/app:solo", &ImageSpec::oci().seed(7));
    let img = |t: &str| reg.image(&format!("d/app{t}"));
    // A dry run says what shares the manifest and deletes nothing.
    let dry = text(&["delete", "--dry-run", &img(":branch")]);
    assert!(
        dry.contains("would delete tag") && dry.contains("also tagged release"),
        "{dry}"
    );
    let j: Value =
        serde_json::from_slice(&ok(&["delete", "--dry-run", "--json", &img(":branch")])).unwrap();
    assert_eq!(j["plan"]["other_tags"], json!(["release"]), "{j}");
    assert_eq!(j["dry_run"], true);
    assert_eq!(
        text(&["digest", &img(":branch")]).trim(),
        shared.digest.to_string()
    );
    // distribution deletes manifests only: the branch tag would take the release with it.
    let (c, err) = code(&["delete", &img(":branch")]);
    assert_eq!(c, Some(7), "{err}");
    assert!(
        err.contains("release") && err.contains("nothing deleted"),
        "{err}"
    );
    assert_eq!(
        text(&["digest", &img(":release")]).trim(),
        shared.digest.to_string()
    );
    // A tag alone on its manifest: the manifest goes, and both names are absent after.
    let out = text(&["delete", &img(":solo")]);
    assert!(out.contains("deleted manifest"), "{out}");
    assert_eq!(code(&["digest", &img(":solo")]).0, Some(4));
    assert_eq!(
        code(&["digest", &format!("{}@{}", img(""), solo.digest)]).0,
        Some(4)
    );
    // By digest: the manifest and every tag on it. A tag@digest guard refuses another digest.
    let wrong = format!("{}:branch@{}", img(""), solo.digest);
    assert_eq!(code(&["delete", &wrong]).0, Some(6));
    let by_digest = format!("{}@{}", img(""), shared.digest);
    let dry = text(&["delete", "--dry-run", &by_digest]);
    assert!(dry.contains("also tagged branch, release"), "{dry}");
    ok(&["delete", "-q", &by_digest]);
    for t in [":release", ":branch"] {
        let (c, err) = code(&["digest", &img(t)]);
        assert_eq!(c, Some(4), "{t}: {err}");
    }
    assert_eq!(text(&["ls", &img("")]), "");
    // Absent things and no implicit latest.
    assert_eq!(code(&["delete", &img(":gone")]).0, Some(4));
    assert_eq!(code(&["delete", &by_digest]).0, Some(4));
    assert_eq!(code(&["delete", &img("")]).0, Some(2));
}

#[test]
fn delete_in_a_layout_removes_the_tag_alone() {
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "v1", &ImageSpec::oci());
    let layout = format!("oci:{}", dir.path().display());
    ok(&["tag", "-q", &format!("{layout}:v1"), "v1.0"]);
    let out = text(&["delete", &format!("{layout}:v1")]);
    assert!(out.contains("deleted tag"), "{out}");
    assert_eq!(
        text(&["ls", &layout]),
        format!("v1.0\t{}\t{}\n", built.digest, built.media_type)
    );
    assert_eq!(code(&["digest", &format!("{layout}:v1")]).0, Some(4));
    ok(&["delete", "-q", &format!("{layout}@{}", built.digest)]);
    assert_eq!(text(&["ls", &layout]), "");
}

#[test]
fn delete_where_the_registry_refuses_is_a_clear_failure() {
    let srv = FaultServer::start(FaultConfig::new());
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let d = srv.put_manifest("r/app", "1", m, "application/vnd.oci.image.index.v1+json");
    let (c, err) = code(&["delete", &format!("{}/r/app@{d}", srv.host())]);
    assert_eq!(c, Some(1), "{err}");
    assert!(
        err.contains("does not allow deleting") && err.contains("405"),
        "{err}"
    );
    let (c, err) = code(&["delete", &format!("{}/r/app:1", srv.host())]);
    assert_eq!(c, Some(1), "{err}");
    assert!(err.contains("not supported"), "{err}");
    assert_eq!(srv.tag("r/app", "1"), Some(d));
}

/// Files in `dir` other than `keep` (left-over temp files of an atomic write).
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn digestfile_on_copy_and_promote() {
    use std::os::unix::fs::MetadataExt;
    let reg = Registry::start();
    let src = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(src.path(), "v1", &ImageSpec::oci_index());
    let layout = format!("oci:{}:v1", src.path().display());
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("digest");
    std::fs::write(
        &file,
        "old content, longer than a digest ....................................",
    )
    .unwrap();
    let before = std::fs::metadata(&file).unwrap().ino();
    let f = file.to_str().unwrap();
    ok(&[
        "copy",
        "-q",
        "--digestfile",
        f,
        &layout,
        &reg.image("app:ci"),
    ]);
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written, built.digest.to_string());
    assert_eq!(
        Digest::of(&fixtures::inspect_raw(&format!(
            "docker://{}",
            reg.image("app:ci")
        ))),
        built.digest
    );
    // Replaced by a rename (a new file), not rewritten in place; no temp file left behind.
    assert_ne!(std::fs::metadata(&file).unwrap().ino(), before);
    assert_eq!(others(out.path(), &["digest"]), Vec::<String>::new());
    // A subset of platforms: the file holds the new digest the destination got.
    let sub = out.path().join("sub");
    ok(&[
        "copy",
        "-q",
        "--platform",
        "linux/amd64",
        "--digestfile",
        sub.to_str().unwrap(),
        &layout,
        &reg.image("app:amd64"),
    ]);
    assert_eq!(
        std::fs::read_to_string(&sub).unwrap(),
        built.children[0].digest.to_string()
    );
    // Promote: written once tagged; a dry run writes nothing; a plan has no single digest.
    let p = out.path().join("promoted");
    let pf = p.to_str().unwrap();
    ok(&[
        "promote",
        "-q",
        "--digestfile",
        pf,
        &reg.image("app:ci"),
        &reg.image("rel/app:1.0"),
    ]);
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        built.digest.to_string()
    );
    let dry = out.path().join("dry");
    ok(&[
        "promote",
        "-q",
        "--dry-run",
        "--digestfile",
        dry.to_str().unwrap(),
        &reg.image("app:ci"),
        &reg.image("rel/app:1.1"),
    ]);
    assert!(!dry.exists());
    let plan = out.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "images:\n  - source: {}\n    destination: {}/rel/x\n    tags: [\"1\"]\n",
            reg.image("app:ci"),
            reg.addr
        ),
    )
    .unwrap();
    let (c, err) = code(&[
        "promote",
        "--plan",
        plan.to_str().unwrap(),
        "--digestfile",
        pf,
    ]);
    assert_eq!(c, Some(2), "{err}");
    // A failed copy leaves the file as it was.
    let (c, _) = code(&[
        "copy",
        "--digestfile",
        pf,
        &reg.image("app:missing"),
        &reg.image("app:x"),
    ]);
    assert_eq!(c, Some(4));
    assert_eq!(
        std::fs::read_to_string(&p).unwrap(),
        built.digest.to_string()
    );
    assert_eq!(
        others(out.path(), &["digest", "sub", "promoted", "plan.yaml"]),
        Vec::<String>::new()
    );
}

#[test]
fn completions_for_each_shell() {
    let subcommands = [
        "copy", "promote", "tag", "chart", "digest", "inspect", "ls", "delete",
    ];
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker, checker) in [
        ("bash", "complete -F _ferry", "bash"),
        ("zsh", "#compdef ferry", "zsh"),
        ("fish", "complete -c ferry", "fish"),
    ] {
        let script = text(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in subcommands {
            assert!(script.contains(sub), "{shell} completes no {sub}");
        }
        assert!(
            script.contains("digestfile") && script.contains("dry-run"),
            "{shell}"
        );
        // The shell itself parses the script, where it is installed.
        if which(checker).is_some() {
            let path = dir.path().join(shell);
            std::fs::write(&path, &script).unwrap();
            let out = Command::new(checker).arg("-n").arg(&path).output().unwrap();
            assert!(out.status.success(), "{shell} -n: {}", stderr(&out));
        }
    }
    assert_eq!(code(&["completions", "tcsh"]).0, Some(2));
}

#[test]
fn man_page_renders() {
    let page = text(&["man"]);
    assert!(page.contains(".TH ferry 1"), "{page}");
    for section in [".SH NAME", ".SH SYNOPSIS", ".SH SUBCOMMANDS"] {
        assert!(page.contains(section), "no {section}");
    }
    let dir = tempfile::tempdir().unwrap();
    ok(&["man", "--dir", dir.path().to_str().unwrap()]);
    for name in [
        "ferry",
        "ferry-digest",
        "ferry-inspect",
        "ferry-ls",
        "ferry-delete",
        "ferry-copy",
    ] {
        let path = dir.path().join(format!("{name}.1"));
        let roff = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(roff.contains(".SH NAME"), "{name}.1");
        if which("man").is_none() {
            continue;
        }
        let out = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && shown.contains("NAME"),
            "man -l {name}.1: {shown}{}",
            stderr(&out)
        );
        if name == "ferry-digest" {
            assert!(
                shown.contains("--platform") && shown.contains("Examples"),
                "{shown}"
            );
        }
    }
}
