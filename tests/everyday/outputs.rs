//! What the binary writes besides its output: `--digestfile`, completions, man pages.

use super::*;

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
