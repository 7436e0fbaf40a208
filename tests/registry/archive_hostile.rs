//! Hostile archives, generated here: each refused with exit 2, the file and entry named and
//! why, no tag at the destination, and nothing written outside the target or left in the spool.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::fixtures::{self, ImageSpec};
use ferry::Digest;

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

/// A tar entry with a raw (unchecked) name, type and link target.
pub fn raw_entry(
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

/// A tar of the valid layout `layout` (blobs `skip` left out, `swap` blobs replaced by other
/// bytes) with `extra` entries appended.
fn tar_of(
    layout: &Path,
    skip: &[&Digest],
    swap: &[(&Digest, Vec<u8>)],
    extra: &[(tar::Header, Vec<u8>)],
) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for name in ["oci-layout", "index.json"] {
        b.append_path_with_name(layout.join(name), name).unwrap();
    }
    let mut names: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let hex = p.file_name().unwrap().to_string_lossy().to_string();
        if skip.iter().any(|d| d.hex() == hex) {
            continue;
        }
        let name = format!("blobs/sha256/{hex}");
        match swap.iter().find(|(d, _)| d.hex() == hex) {
            Some((_, bytes)) => {
                let (h, data) = raw_entry(name.as_bytes(), tar::EntryType::Regular, b"", bytes);
                b.append(&h, data.as_slice()).unwrap();
            }
            None => b.append_path_with_name(&p, &name).unwrap(),
        }
    }
    for (h, data) in extra {
        b.append(h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn tar_with(layout: &Path, extra: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
    tar_of(layout, &[], &[], extra)
}

/// A one-layer docker-archive: `layer.tar` content, a config naming its diffID, and the given
/// `Layers` path; `extra` entries appended (links, directories).
pub fn docker_tar(
    layers_path: &str,
    layer: Option<&[u8]>,
    extra: &[(tar::Header, Vec<u8>)],
) -> Vec<u8> {
    let content = small_layer(b"hello");
    let diff_id = Digest::of(&content);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "config": {}
    }))
    .unwrap();
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config_name, "RepoTags": ["app:v1"], "Layers": [layers_path]}
    ]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let (h, d) = raw_entry(name.as_bytes(), tar::EntryType::Regular, b"", data);
        b.append(&h, d.as_slice()).unwrap();
    };
    add(&config_name, &config);
    if let Some(l) = layer {
        add(
            &format!("{}.tar", diff_id.hex()),
            if l.is_empty() { &content } else { l },
        );
    }
    add("manifest.json", &manifest);
    for (h, data) in extra {
        b.append(h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// An uncompressed layer tar holding one file.
pub fn small_layer(body: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", body).unwrap();
    b.into_inner().unwrap()
}

/// Whether a destination layout holds no tag (or does not exist).
fn untagged(dir: &Path) -> bool {
    match std::fs::read(dir.join("index.json")) {
        Err(_) => true,
        Ok(b) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            v["manifests"].as_array().unwrap().is_empty()
        }
    }
}

#[test]
fn hostile_archives_are_refused_with_the_entry_named() {
    use tar::EntryType as T;
    let work = tempfile::tempdir().unwrap();
    let spool = work.path().join("tmp");
    std::fs::create_dir(&spool).unwrap();
    let layout = work.path().join("layout");
    let built = fixtures::write_layout(&layout, "v1", &ImageSpec::oci());
    let layer = built.blobs[1].clone();
    let layer_name = format!("blobs/sha256/{}", layer.digest.hex());
    let other_bytes = vec![b'x'; layer.size as usize];
    let big_index = vec![b' '; 5 * 1024 * 1024];
    // A 9 MiB "manifest", correctly named by its digest, that index.json points at.
    let huge = vec![b' '; 9 * 1024 * 1024];
    let huge_digest = Digest::of(&huge);
    let huge_name = format!("blobs/sha256/{}", huge_digest.hex());
    let huge_layout = work.path().join("layout-huge");
    std::fs::create_dir_all(huge_layout.join("blobs/sha256")).unwrap();
    std::fs::copy(layout.join("oci-layout"), huge_layout.join("oci-layout")).unwrap();
    std::fs::write(
        huge_layout.join("blobs/sha256").join(huge_digest.hex()),
        &huge,
    )
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": huge_digest.to_string(), "size": huge.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(
        huge_layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let mut bomb_header = raw_entry(b"blobs/sha256/bomb", T::Regular, b"", b"").0;
    bomb_header.set_size(1 << 40);
    bomb_header.set_cksum();
    let bomb = {
        let mut t = tar_with(&layout, &[]);
        // The header alone, no data and no end blocks: it claims a terabyte.
        t.truncate(t.len() - 1024);
        t.extend_from_slice(bomb_header.as_bytes());
        t
    };
    let mut xz = vec![0xfd, b'7', b'z', b'X', b'Z', 0];
    xz.extend_from_slice(&[0; 100]);
    let cases: Vec<(&str, Vec<u8>, String, &str)> = vec![
        (
            "dotdot",
            tar_with(&layout, &[raw_entry(b"../evil", T::Regular, b"", b"x")]),
            "../evil".into(),
            "'..'",
        ),
        (
            "absolute",
            tar_with(&layout, &[raw_entry(b"/tmp/evil", T::Regular, b"", b"x")]),
            "/tmp/evil".into(),
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
            "blobs/sha256/link".into(),
            "outside the archive",
        ),
        (
            "hardlink",
            tar_with(
                &layout,
                &[raw_entry(b"evil", T::Link, b"../../outside", b"")],
            ),
            "evil".into(),
            "outside the archive",
        ),
        (
            "device",
            tar_with(&layout, &[raw_entry(b"dev", T::Char, b"", b"")]),
            "dev".into(),
            "device file",
        ),
        (
            "fifo",
            tar_with(&layout, &[raw_entry(b"fifo", T::Fifo, b"", b"")]),
            "fifo".into(),
            "FIFO",
        ),
        (
            "non-utf8",
            tar_with(&layout, &[raw_entry(b"bad\xff\xfe", T::Regular, b"", b"x")]),
            String::new(),
            "not UTF-8",
        ),
        (
            "mismatch",
            tar_of(&layout, &[], &[(&layer.digest, other_bytes.clone())], &[]),
            layer_name.clone(),
            "hash to",
        ),
        (
            "duplicate",
            tar_with(
                &layout,
                &[raw_entry(
                    layer_name.as_bytes(),
                    T::Regular,
                    b"",
                    &other_bytes,
                )],
            ),
            layer_name.clone(),
            "twice with different contents",
        ),
        (
            "missing-blob",
            tar_of(&layout, &[&layer.digest], &[], &[]),
            layer_name.clone(),
            "does not hold it",
        ),
        (
            "huge-manifest",
            tar_with(&huge_layout, &[]),
            huge_name.clone(),
            "cap",
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
            "index.json".into(),
            "limit",
        ),
        ("tar-bomb", bomb, "blobs/sha256/bomb".into(), "past the end"),
        (
            "truncated",
            {
                let full = tar_with(&layout, &[]);
                full[..full.len() / 2].to_vec()
            },
            String::new(),
            "truncated",
        ),
        ("xz", xz, String::new(), "xz-compressed"),
    ];
    // A gzip bomb: 256 MiB of zeros in a few hundred KiB.
    let bomb_entry = format!("blobs/sha256/{}", "0".repeat(64));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    {
        let mut b = tar::Builder::new(&mut gz);
        let size = 256u64 << 20;
        let (mut h, _) = raw_entry(bomb_entry.as_bytes(), T::Regular, b"", b"");
        h.set_size(size);
        h.set_cksum();
        b.append(&h, std::io::repeat(0).take(size)).unwrap();
        b.finish().unwrap();
    }
    let mut cases = cases;
    cases.push(("gzip-bomb", gz.finish().unwrap(), bomb_entry, "gzip bomb"));
    // Docker archives: a legacy `<id>/layer.tar` link to a directory, one leaving the archive,
    // a layer the archive lacks, a layer whose bytes are not its diffID.
    let dir_entry = raw_entry(b"somedir/", T::Directory, b"", b"");
    cases.push((
        "docker-link-to-dir",
        docker_tar(
            "abc/layer.tar",
            Some(b""),
            &[
                dir_entry,
                raw_entry(b"abc/layer.tar", T::Symlink, b"../somedir", b""),
            ],
        ),
        "abc/layer.tar".into(),
        "a directory",
    ));
    cases.push((
        "docker-link-outside",
        docker_tar(
            "abc/layer.tar",
            Some(b""),
            &[raw_entry(
                b"abc/layer.tar",
                T::Symlink,
                b"../../etc/passwd",
                b"",
            )],
        ),
        "abc/layer.tar".into(),
        "outside the archive",
    ));
    cases.push((
        "docker-missing-layer",
        docker_tar("nothere.tar", Some(b""), &[]),
        "nothere.tar".into(),
        "does not hold it",
    ));
    let wrong = small_layer(b"HELLO");
    let diff = Digest::of(&small_layer(b"hello"));
    cases.push((
        "docker-wrong-layer",
        docker_tar(&format!("{}.tar", diff.hex()), Some(&wrong), &[]),
        format!("{}.tar", diff.hex()),
        "hash to",
    ));
    for (name, bytes, entry, why) in &cases {
        let file = work.path().join(format!("{name}.tar"));
        std::fs::write(&file, bytes).unwrap();
        let out_dir = work.path().join(format!("out-{name}"));
        let src = if name.starts_with("docker-") {
            format!("docker-archive:{}", file.display())
        } else {
            format!("oci-archive:{}:v1", file.display())
        };
        let out = ferry_in(
            &spool,
            &["copy", &src, &format!("oci:{}:v1", out_dir.display())],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&file.display().to_string()),
            "{name}: names the file: {err}"
        );
        assert!(
            entry.is_empty() || err.contains(&format!("entry {entry:?}")),
            "{name}: names the entry {entry:?}: {err}"
        );
        assert!(err.contains(why), "{name}: says why ({why}): {err}");
        assert!(
            untagged(&out_dir),
            "{name}: no tag written at the destination"
        );
        assert!(
            files_under(&spool).is_empty(),
            "{name}: the spool is removed"
        );
    }
    // Nothing appeared outside: the work dir holds only what the test wrote and the
    // (untagged) destination layouts.
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
            top.starts_with("layout") || top.starts_with("out-") || top.ends_with(".tar"),
            "unexpected file {}",
            p.display()
        );
    }
    assert!(!work.path().parent().unwrap().join("evil").exists());
    assert!(!Path::new("/tmp/evil").exists());
}
