//! `oci-archive:` files: round trips through the real registry with every digest kept, skopeo as
//! referee both ways (and gzip'd archives), and a corpus of hostile archives, each refused with
//! the entry named and nothing written outside the spool.

use std::io::{Read, Write};
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
    // Deterministic: the same images make the same bytes.
    let again = work.path().join("again.tar");
    let dst2 = format!("oci-archive:{}:v1", again.display());
    ok(ferry_in(
        &spool,
        &["copy", "-q", &format!("oci:{}:v1", src.display()), &dst2],
    ));
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(&ours).unwrap()
    );
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

/// A tar entry with a raw (unchecked) name, type and link target.
fn raw_entry(
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
) -> (tar::Header, Vec<u8>) {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        gnu.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    (h, data.to_vec())
}

/// A tar of the valid layout `layout` with `extra` entries appended.
fn tar_with(layout: &Path, extra: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for name in ["oci-layout", "index.json"] {
        b.append_path_with_name(layout.join(name), name).unwrap();
    }
    for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
        b.append_path_with_name(e.path(), name).unwrap();
    }
    for (h, data) in extra {
        b.append(h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_archives_are_refused_with_the_entry_named() {
    use tar::EntryType as T;
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("tmp");
    std::fs::create_dir(&spool).unwrap();
    let layout = work.path().join("layout");
    fixtures::write_layout(&layout, "v1", &ImageSpec::oci());
    let wrong = format!("blobs/sha256/{}", Digest::of(b"something else").hex());
    let big_index = vec![b' '; 5 * 1024 * 1024];
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "dotdot",
            tar_with(&layout, &[raw_entry(b"../evil", T::Regular, b"", b"x")]),
            "../evil",
            "'..'",
        ),
        (
            "absolute",
            tar_with(&layout, &[raw_entry(b"/tmp/evil", T::Regular, b"", b"x")]),
            "/tmp/evil",
            "absolute",
        ),
        (
            "symlink",
            tar_with(
                &layout,
                &[raw_entry(
                    b"blobs/sha256/link",
                    T::Symlink,
                    b"/etc/passwd",
                    b"",
                )],
            ),
            "blobs/sha256/link",
            "outside the archive",
        ),
        (
            "hardlink",
            tar_with(
                &layout,
                &[raw_entry(b"evil", T::Link, b"../../outside", b"")],
            ),
            "evil",
            "outside the archive",
        ),
        (
            "device",
            tar_with(&layout, &[raw_entry(b"dev", T::Char, b"", b"")]),
            "dev",
            "device file",
        ),
        (
            "fifo",
            tar_with(&layout, &[raw_entry(b"fifo", T::Fifo, b"", b"")]),
            "fifo",
            "FIFO",
        ),
        (
            "mismatch",
            tar_with(
                &layout,
                &[raw_entry(wrong.as_bytes(), T::Regular, b"", b"not it")],
            ),
            &wrong,
            "hash to",
        ),
        (
            "big-index",
            {
                let mut b = tar::Builder::new(Vec::new());
                b.append(
                    &raw_entry(b"index.json", T::Regular, b"", &big_index).0,
                    big_index.as_slice(),
                )
                .unwrap();
                b.into_inner().unwrap()
            },
            "index.json",
            "limit",
        ),
        (
            "truncated",
            {
                let full = tar_with(&layout, &[]);
                full[..full.len() / 2].to_vec()
            },
            "",
            "truncated",
        ),
    ];
    // A gzip bomb: 256 MiB of zeros in a few hundred KiB.
    let bomb_entry = format!("blobs/sha256/{}", "0".repeat(64));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    {
        let mut b = tar::Builder::new(&mut gz);
        let size = 256u64 << 20;
        let (h, _) = raw_entry(bomb_entry.as_bytes(), T::Regular, b"", b"");
        let mut h = h;
        h.set_size(size);
        h.set_cksum();
        b.append(&h, std::io::repeat(0).take(size)).unwrap();
        b.finish().unwrap();
    }
    let mut cases = cases;
    cases.push(("gzip-bomb", gz.finish().unwrap(), &bomb_entry, "gzip bomb"));
    for (name, bytes, entry, why) in &cases {
        let file = work.path().join(format!("{name}.tar"));
        std::fs::write(&file, bytes).unwrap();
        let out_dir = work.path().join(format!("out-{name}"));
        let out = ferry_in(
            &spool,
            &[
                "copy",
                &format!("oci-archive:{}:v1", file.display()),
                &format!("oci:{}:v1", out_dir.display()),
            ],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&file.display().to_string()),
            "{name}: names the file: {err}"
        );
        assert!(
            err.contains(&format!("entry {entry:?}")) || entry.is_empty(),
            "{name}: names the entry: {err}"
        );
        assert!(err.contains(why), "{name}: says why ({why}): {err}");
        assert!(
            !out_dir.exists(),
            "{name}: nothing written to the destination"
        );
        assert!(
            files_under(&spool).is_empty(),
            "{name}: the spool is removed"
        );
    }
    // Nothing appeared outside: the work dir holds only what the test wrote.
    for p in files_under(work.path()) {
        let rel = p.strip_prefix(work.path()).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        assert!(
            top == "layout" || top.ends_with(".tar"),
            "unexpected file {}",
            p.display()
        );
    }
    assert!(!work.path().parent().unwrap().join("evil").exists());
}
