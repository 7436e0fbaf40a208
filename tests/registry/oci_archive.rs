//! `oci-archive:` files: round trips through the real registry with every digest kept, skopeo as
//! referee both ways (and gzip'd archives), and a corpus of hostile archives, each refused with
//! the entry named and nothing written outside the spool.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::fixtures::{self, ImageSpec};
use crate::support::registry::Registry;
use ferry::Digest;

/// Runs ferry with its spool under `tmpdir`.
fn ferry_in(tmpdir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("TMPDIR", tmpdir)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// Each entry of a tar: name, raw header, contents.
fn tar_entries(file: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    use std::io::Read;
    let mut a = tar::Archive::new(std::fs::File::open(file).unwrap());
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let header = e.header().as_bytes().to_vec();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        out.push((name, header, body));
    }
    out
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn registry_to_archive_and_back_keeps_every_digest() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("tmp");
    std::fs::create_dir(&spool).unwrap();
    let src = work.path().join("src");
    let index = fixtures::write_layout(&src, "multi", &ImageSpec::oci_index());
    let single = fixtures::write_layout(&src, "one", &ImageSpec::oci().seed(7));
    fixtures::seed_registry(&src, "multi", &reg.addr, "app:multi");
    fixtures::seed_registry(&src, "one", &reg.addr, "app:one");
    let tar = work.path().join("x.tar");
    let archive = |tag: &str| format!("oci-archive:{}:{tag}", tar.display());
    ok(ferry_in(
        &spool,
        &[
            "copy",
            "-q",
            &format!("{}/app:multi", reg.addr),
            &archive("1"),
        ],
    ));
    // A second copy keeps the image the archive already holds.
    ok(ferry_in(
        &spool,
        &[
            "copy",
            "-q",
            &format!("{}/app:one", reg.addr),
            &archive("2"),
        ],
    ));
    assert!(files_under(&spool).is_empty(), "spools are removed");
    for (tag, built, repo) in [("1", &index, "back-multi"), ("2", &single, "back-one")] {
        let dst = format!("{}/{repo}:v", reg.addr);
        ok(ferry_in(&spool, &["copy", "-q", &archive(tag), &dst]));
        let top = fixtures::inspect_digest(&format!("docker://{dst}"));
        assert_eq!(top, built.digest, "{repo}: top digest kept");
        for child in &built.children {
            let r = format!("docker://{}/{repo}@{}", reg.addr, child.digest);
            assert_eq!(fixtures::inspect_digest(&r), child.digest, "{repo} child");
        }
        // skopeo reads ferry's archive too.
        let raw = fixtures::inspect_raw(&archive(tag));
        assert_eq!(
            Digest::of(&raw),
            built.digest,
            "skopeo inspect {}",
            archive(tag)
        );
    }
    // Two images: FILE alone is ambiguous, and says which tags there are (exit 2).
    let plain = format!("oci-archive:{}", tar.display());
    let out = ferry_in(&spool, &["copy", &plain, &format!("{}/x:1", reg.addr)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("tags: 1, 2"), "{}", stderr(&out));
    // `ls` lists both without a tag.
    let listed = ok(ferry_in(&spool, &["ls", &plain]));
    let text = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        text.contains(&index.digest.to_string()) && text.contains(&single.digest.to_string()),
        "{text}"
    );
    // A copy that fails half-way (a blob missing from the source) leaves the archive as it was
    // and no temp file beside it.
    let broken = work.path().join("broken");
    let b = fixtures::write_layout(&broken, "v1", &ImageSpec::oci().seed(9));
    std::fs::remove_file(broken.join("blobs/sha256").join(b.blobs[1].digest.hex())).unwrap();
    let before = std::fs::read(&tar).unwrap();
    let out = ferry_in(
        &spool,
        &[
            "copy",
            "-q",
            &format!("oci:{}:v1", broken.display()),
            &archive("3"),
        ],
    );
    assert!(!out.status.success(), "a missing blob fails the copy");
    assert_eq!(
        std::fs::read(&tar).unwrap(),
        before,
        "the archive is untouched"
    );
    let beside: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        beside
            .iter()
            .all(|n| !n.to_string_lossy().contains(".ferry-")),
        "{beside:?}"
    );
    assert!(files_under(&spool).is_empty(), "spools are removed");
}

#[test]
fn skopeo_archives_are_read_and_ferry_archives_are_read_by_skopeo() {
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("tmp");
    std::fs::create_dir(&spool).unwrap();
    let src = work.path().join("src");
    let built = fixtures::write_layout(&src, "v1", &ImageSpec::oci_index());
    let theirs = work.path().join("skopeo.tar");
    fixtures::skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &format!("oci:{}:v1", src.display()),
        &format!("oci-archive:{}:v1", theirs.display()),
    ]);
    // gzip'd as a whole, as carried across.
    let gz = work.path().join("skopeo.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut std::fs::File::open(&theirs).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap().flush().unwrap();
    for (i, reference) in [
        format!("oci-archive:{}:v1", theirs.display()),
        format!("oci-archive:{}", theirs.display()),
        format!("oci-archive:{}:v1", gz.display()),
    ]
    .iter()
    .enumerate()
    {
        let out = work.path().join(format!("out{i}"));
        let dst = format!("oci:{}:v1", out.display());
        ok(ferry_in(&spool, &["copy", "-q", reference, &dst]));
        assert_eq!(
            fixtures::tagged(&out, "v1").digest,
            built.digest,
            "{reference}"
        );
    }
    let ours = work.path().join("ferry.tar");
    let dst = format!("oci-archive:{}:v1", ours.display());
    ok(ferry_in(
        &spool,
        &["copy", "-q", &format!("oci:{}:v1", src.display()), &dst],
    ));
    assert_eq!(fixtures::inspect_digest(&dst), built.digest);
    // Reproducible: the same images make the same entries (headers and bytes); blobs are in
    // the order they arrived, index.json is last.
    let again = work.path().join("again.tar");
    let dst2 = format!("oci-archive:{}:v1", again.display());
    ok(ferry_in(
        &spool,
        &["copy", "-q", &format!("oci:{}:v1", src.display()), &dst2],
    ));
    let (first, second) = (tar_entries(&ours), tar_entries(&again));
    assert_eq!(first.last().map(|e| e.0.as_str()), Some("index.json"));
    assert_eq!(sorted(first), sorted(second));
    let unpacked = work.path().join("unpacked");
    fixtures::skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        &dst,
        &format!("oci:{}:v1", unpacked.display()),
    ]);
    assert_eq!(fixtures::tagged(&unpacked, "v1").digest, built.digest);
    assert!(files_under(&spool).is_empty(), "spools are removed");
}
