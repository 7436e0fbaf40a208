//! `delete`: tags, manifests, the guard that keeps shared manifests, refusing registries.

use super::*;

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
    // tag, digest, media type, then platforms and size.
    let listed = text(&["ls", &layout]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.starts_with(&format!(
            "v1.0\t{}\t{}\tlinux/amd64\t",
            built.digest, built.media_type
        )),
        "{listed}"
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
