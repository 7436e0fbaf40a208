//! Writes a deterministic test image (real gzip'd tar layers) into an OCI layout, for the demo
//! and the end-to-end benchmark. Uses the same builder as the tests.
//!
//!   mkimage --out DIR --tag TAG [--kind oci|docker|oci-index|docker-list|artifact]
//!           [--layers N] [--layer-size BYTES] [--seed N] [--shared-base BYTES]
//!           [--referrers N]
//!
//! `--referrers N` adds N referrers (OCI 1.1 `subject`) to every platform manifest (to the
//! manifest itself for a single-platform image): by turns a sigstore bundle signature, an SPDX
//! SBOM and an in-toto attestation, listed as untagged `index.json` entries.

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
    let mut referrers = 0usize;
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
            "--referrers" => referrers = number(&value()),
            other => die(&format!("unknown flag {other}")),
        }
    }
    let out = out.unwrap_or_else(|| die("--out DIR is required"));
    let seed = spec.seed;
    let built = fixtures::write_layout(&out, &tag, &spec.layers(layers, size));
    if referrers > 0 {
        let subjects = match built.children.is_empty() {
            true => vec![built.descriptor()],
            false => built.children.clone(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(add_referrers(&out, &subjects, referrers, seed));
    }
    println!("{} {} {}", built.digest, built.media_type, out.display());
}

struct Mem(bytes::Bytes);

#[async_trait::async_trait]
impl ferry::store::BlobSource for Mem {
    async fn open(&self, offset: u64) -> ferry::Result<ferry::store::BlobStream> {
        use futures::StreamExt;
        let b = self.0.slice(offset as usize..);
        Ok(futures::stream::iter(vec![Ok(b)]).boxed())
    }
}

/// `n` referrers of each subject, written into the layout at `dir`.
async fn add_referrers(
    dir: &std::path::Path,
    subjects: &[ferry::manifest::Descriptor],
    n: usize,
    seed: u64,
) {
    use ferry::store::Store;
    let kinds = [
        ("application/vnd.dev.sigstore.bundle.v0.3+json", 4 * 1024),
        ("application/spdx+json", 256 * 1024),
        ("application/vnd.in-toto+json", 16 * 1024),
    ];
    let layout = ferry::store::layout::LayoutStore::create(dir).unwrap();
    let put = |bytes: Vec<u8>, media_type: &str| {
        let d = ferry::manifest::Descriptor {
            media_type: media_type.into(),
            digest: ferry::Digest::of(&bytes),
            size: bytes.len() as u64,
            platform: None,
        };
        (d, bytes::Bytes::from(bytes))
    };
    let empty = put(b"{}".to_vec(), "application/vnd.oci.empty.v1+json");
    layout
        .put_blob(&empty.0, &Mem(empty.1.clone()))
        .await
        .unwrap();
    for (s, subject) in subjects.iter().enumerate() {
        for i in 0..n {
            let (artifact_type, size) = kinds[i % kinds.len()];
            let mut body = format!(
                "{{\"subject\":\"{}\",\"n\":{i},\"seed\":{seed},\"pad\":\"",
                subject.digest
            )
            .into_bytes();
            body.extend(std::iter::repeat_n(b'a' + (s + i) as u8 % 26, size));
            body.extend_from_slice(b"\"}");
            let layer = put(body, artifact_type);
            layout
                .put_blob(&layer.0, &Mem(layer.1.clone()))
                .await
                .unwrap();
            let doc = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": ferry::manifest::OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": empty.0,
                "layers": [layer.0],
                "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
                "annotations": {"org.opencontainers.image.created": "2026-12-01T00:00:00Z"},
            });
            let bytes = serde_json::to_vec(&doc).unwrap();
            let m = ferry::manifest::RawManifest::new(
                bytes.into(),
                Some(ferry::manifest::OCI_MANIFEST),
            )
            .unwrap();
            layout.put_manifest(&m, &[]).await.unwrap();
        }
    }
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
