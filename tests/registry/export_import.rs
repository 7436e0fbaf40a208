//! `ferry export` and `ferry import` against the real registry: 20 images sharing a base go into
//! one archive with the base stored once, back under a prefix with every digest kept; a second
//! export into the same layout moves no blob byte; the import is all-or-nothing, has a dry run,
//! JSON, `--map`; docker-archives hold many images by RepoTags.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::fixtures::{self, BuiltImage, ImageSpec};
use crate::support::registry::Registry;
use ferry::Digest;
use serde_json::Value;

fn ferry_in(tmpdir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("TMPDIR", tmpdir)
        .output()
        .unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// Whether skopeo finds the image (plain HTTP).
fn exists(reference: &str) -> bool {
    Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

fn blob_entries(file: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    a.entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type().is_file())
        .map(|e| e.path().unwrap().to_string_lossy().to_string())
        .filter(|p| p.starts_with("blobs/sha256/"))
        .collect()
}

/// 20 images sharing a 256 KiB base layer, pushed as team/app{i}:v1.
fn twenty(reg: &Registry, dir: &Path) -> Vec<(String, BuiltImage)> {
    (1..=20)
        .map(|i| {
            let spec = ImageSpec::oci()
                .layers(1, 16 * 1024)
                .shared_base(256 * 1024)
                .seed(100 + i);
            let tag = format!("i{i}");
            let built = fixtures::write_layout(dir, &tag, &spec);
            let repo = format!("team/app{i}:v1");
            fixtures::seed_registry(dir, &tag, &reg.addr, &repo);
            (repo, built)
        })
        .collect()
}

#[test]
fn export_twenty_images_sharing_a_base_and_import_them_under_a_prefix() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let images = twenty(&reg, &work.path().join("src"));
    let list = work.path().join("images.txt");
    let refs: Vec<String> = images
        .iter()
        .map(|(r, _)| format!("{}/{r}", reg.addr))
        .collect();
    std::fs::write(&list, format!("# the release\n{}\n", refs.join("\n"))).unwrap();
    let mirror = work.path().join("mirror.tar");
    ok(ferry_in(
        &tmp,
        &[
            "export",
            "-q",
            "--from-file",
            &list.display().to_string(),
            "--to",
            &format!("oci-archive:{}", mirror.display()),
        ],
    ));
    // Each blob once: the base is shared by 20 images but stored once.
    let unique: HashSet<Digest> = images.iter().flat_map(|(_, b)| b.all_digests()).collect();
    let stored = blob_entries(&mirror);
    assert_eq!(stored.len(), unique.len(), "{} blob entries", stored.len());
    assert_eq!(
        stored.len(),
        1 + 20 * 3,
        "base once, then config, layer, manifest per image"
    );
    // ls lists the 20 by repository path and tag, without extracting.
    let ls = String::from_utf8(ok(ferry_in(&tmp, &["ls", &mirror.display().to_string()])).stdout)
        .unwrap();
    assert!(
        ls.contains("team/app7:v1") && ls.contains("linux/amd64"),
        "{ls}"
    );
    assert_eq!(ls.lines().count(), 20);

    // A dry run writes nothing.
    let dry = ok(ferry_in(
        &tmp,
        &[
            "import",
            "--dry-run",
            &mirror.display().to_string(),
            "--to",
            &format!("{}/dry", reg.addr),
        ],
    ));
    assert!(
        !exists(&format!("{}/dry/team/app1:v1", reg.addr)),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );
    // Import: every image under the prefix, repository paths and digests kept.
    let out = ok(ferry_in(
        &tmp,
        &[
            "import",
            "--json",
            &mirror.display().to_string(),
            "--to",
            &format!("{}/mirror", reg.addr),
        ],
    ));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"].as_array().unwrap().len(), 20);
    for (repo, built) in &images {
        let got = fixtures::inspect_digest(&format!("docker://{}/mirror/{repo}", reg.addr));
        assert_eq!(got, built.digest, "{repo}");
    }
    // --map renames repository paths.
    ok(ferry_in(
        &tmp,
        &[
            "import",
            "-q",
            &mirror.display().to_string(),
            "--to",
            &format!("{}/m2", reg.addr),
            "--map",
            "team=renamed",
        ],
    ));
    assert!(exists(&format!("{}/m2/renamed/app3:v1", reg.addr)));
    // All or nothing: one destination tag already on another digest refuses the whole import.
    let guarded = format!("{}/guarded", reg.addr);
    fixtures::seed_registry(
        &work.path().join("src"),
        "i6",
        &reg.addr,
        "guarded/team/app5:v1",
    );
    let refused = ferry_in(
        &tmp,
        &["import", &mirror.display().to_string(), "--to", &guarded],
    );
    assert_eq!(
        refused.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        !exists(&format!("{guarded}/team/app1:v1")),
        "no tag before all are verified"
    );

    // Export into a layout, twice: the second run moves no blob byte.
    let layout = format!("oci:{}", work.path().join("layout").display());
    let mut args = vec!["export", "--json", "--to", &layout];
    args.extend(refs.iter().map(String::as_str));
    let first: Value = serde_json::from_slice(&ok(ferry_in(&tmp, &args)).stdout).unwrap();
    assert_eq!(
        first["blobs"]["copied"],
        1 + 20 * 2,
        "config and layer per image, base once"
    );
    let second: Value = serde_json::from_slice(&ok(ferry_in(&tmp, &args)).stdout).unwrap();
    assert_eq!(second["blobs"]["bytes_copied"], 0, "{second}");
    assert_eq!(second["blobs"]["copied"], 0);
    assert!(
        std::fs::read_dir(&tmp).unwrap().next().is_none(),
        "spools are removed"
    );
}

#[test]
fn docker_archives_hold_many_images_by_repo_tags() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let src = work.path().join("src");
    let a = fixtures::write_layout(&src, "a", &ImageSpec::oci().shared_base(64 * 1024).seed(1));
    let b = fixtures::write_layout(
        &src,
        "b",
        &ImageSpec::oci_index().shared_base(64 * 1024).seed(2),
    );
    fixtures::seed_registry(&src, "a", &reg.addr, "team/a:1");
    fixtures::seed_registry(&src, "b", &reg.addr, "team/b:2");
    let file = work.path().join("two.tar");
    ok(ferry_in(
        &tmp,
        &[
            "export",
            &format!("{}/team/a:1", reg.addr),
            &format!("{}/team/b:2", reg.addr),
            "--to",
            &format!("docker-archive:{}", file.display()),
        ],
    ));
    // skopeo picks each image by index, and reads the right one.
    for (i, built) in [(0, &a), (1, &b)] {
        let out = work.path().join(format!("sk{i}"));
        fixtures::skopeo(&[
            "copy",
            &format!("docker-archive:{}:@{i}", file.display()),
            &format!("oci:{}:v", out.display()),
        ]);
        let m: Value = serde_json::from_slice(
            &std::fs::read(
                out.join("blobs/sha256")
                    .join(fixtures::tagged(&out, "v").digest.hex()),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(m["layers"].as_array().unwrap().len(), 3, "image {i}");
        let _ = built;
    }
    // A promotion plan's sources export as well.
    let plan = work.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "images:\n  - source: {}/team/a:1\n    tags: [x]\n    destination: {}/elsewhere\n",
            reg.addr, reg.addr
        ),
    )
    .unwrap();
    let from_plan = work.path().join("plan.tar");
    ok(ferry_in(
        &tmp,
        &[
            "export",
            "-q",
            "--plan",
            &plan.display().to_string(),
            "--to",
            &format!("oci-archive:{}", from_plan.display()),
        ],
    ));
    let listed =
        String::from_utf8(ok(ferry_in(&tmp, &["ls", &from_plan.display().to_string()])).stdout)
            .unwrap();
    assert!(
        listed.starts_with(&format!("team/a:1\t{}\t", a.digest)),
        "{listed}"
    );
    // FILE:REF picks one; import pushes both (new digests: the layers are compressed).
    let one = work.path().join("one");
    ok(ferry_in(
        &tmp,
        &[
            "copy",
            &format!("docker-archive:{}:{}/team/b:2", file.display(), reg.addr),
            &format!("oci:{}:v", one.display()),
        ],
    ));
    let out = ok(ferry_in(
        &tmp,
        &[
            "import",
            &file.display().to_string(),
            "--to",
            &format!("{}/dk", reg.addr),
        ],
    ));
    assert!(String::from_utf8_lossy(&out.stderr).contains("digests are new"));
    for repo in ["team/a:1", "team/b:2"] {
        let pulled = work.path().join(repo.replace(['/', ':'], "-"));
        fixtures::skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/dk/{repo}", reg.addr),
            &format!("oci:{}:v", pulled.display()),
        ]);
    }
}
