//! Writes a deterministic test image (real gzip'd tar layers) into an OCI layout, for the demo
//! and the end-to-end benchmark. Uses the same builder as the tests.
//!
//!   mkimage --out DIR --tag TAG [--kind oci|docker|oci-index|docker-list|artifact]
//!           [--layers N] [--layer-size BYTES] [--seed N] [--shared-base BYTES]

#[path = "../tests/support/fixtures/mod.rs"]
#[allow(dead_code)]
mod fixtures;

use std::path::PathBuf;

use fixtures::{ImageSpec, Kind};

fn main() {
    let mut out: Option<PathBuf> = None;
    let mut tag = "latest".to_string();
    let mut spec = ImageSpec::oci();
    let (mut layers, mut size) = (spec.layers, spec.layer_size);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value())),
            "--tag" => tag = value(),
            "--kind" => {
                spec = ImageSpec {
                    seed: spec.seed,
                    shared_base: spec.shared_base,
                    ..ImageSpec::new(kind(&value()))
                }
            }
            "--layers" => layers = number(&value()),
            "--layer-size" => size = number(&value()),
            "--seed" => spec.seed = number(&value()) as u64,
            "--shared-base" => spec.shared_base = Some(number(&value())),
            other => die(&format!("unknown flag {other}")),
        }
    }
    let out = out.unwrap_or_else(|| die("--out DIR is required"));
    let built = fixtures::write_layout(&out, &tag, &spec.layers(layers, size));
    println!("{} {} {}", built.digest, built.media_type, out.display());
}

fn kind(s: &str) -> Kind {
    match s {
        "oci" => Kind::OciImage,
        "docker" => Kind::DockerImage,
        "oci-index" => Kind::OciIndex,
        "docker-list" => Kind::DockerList,
        "artifact" => Kind::Artifact,
        _ => die(&format!("unknown kind {s}")),
    }
}

fn number(s: &str) -> usize {
    s.parse()
        .unwrap_or_else(|_| die(&format!("{s:?} is not a number")))
}

fn die(msg: &str) -> ! {
    eprintln!("mkimage: {msg}");
    std::process::exit(2)
}
