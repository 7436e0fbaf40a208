//! `ls`: a real repository of 250 tags, `Link` paging on the fault server, layouts.

use super::*;

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
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[0][..4],
        ["v1", &a.digest.to_string(), &a.media_type, "linux/amd64"]
    );
    let platforms = "linux/amd64,linux/arm64/v8,linux/arm/v7";
    assert_eq!(
        lines[1][..4],
        ["v2", &b.digest.to_string(), &b.media_type, platforms]
    );
    let j: Value =
        serde_json::from_slice(&ok(&["ls", "--json", "--filter", "2", &layout])).unwrap();
    assert_eq!(j["images"][0]["tag"], "v2", "{j}");
    assert_eq!(j["images"][0]["digest"], b.digest.to_string(), "{j}");
    assert_eq!(j["images"].as_array().unwrap().len(), 1);
    // The size counts the index, its manifests and every blob once.
    let size = b.size
        + b.children.iter().map(|c| c.size).sum::<u64>()
        + b.blobs.iter().map(|c| c.size).sum::<u64>();
    assert_eq!(j["images"][0]["size"], size, "{j}");
    assert_eq!(j["images"][0]["platforms"].as_array().unwrap().len(), 3);
}
