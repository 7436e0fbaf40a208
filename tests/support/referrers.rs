//! Referrer fixtures: cosign-style signatures (a manifest with `subject`, artifactType
//! `application/vnd.dev.sigstore.bundle.v0.3+json`, a bundle blob), SBOMs, cosign's legacy
//! `.sig` manifests; pushed through ferry's own store API; and `ferro-oci-server` (an OCI 1.1
//! registry with the referrers API) run in-process as a second registry implementation.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use ferry::manifest::{Descriptor, RawManifest, OCI_MANIFEST};
use ferry::referrers::SIGSTORE_BUNDLE;
use ferry::store::{BlobSource, BlobStream, Store};
use ferry::Digest;
use futures::StreamExt;
use serde_json::json;

pub const SPDX: &str = "application/spdx+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// A manifest and the blobs it names, ready to push.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub manifest: RawManifest,
    pub blobs: Vec<(Descriptor, Bytes)>,
}

impl Artifact {
    pub fn digest(&self) -> Digest {
        self.manifest.digest.clone()
    }

    pub fn descriptor(&self) -> Descriptor {
        self.manifest.descriptor()
    }
}

fn blob(media_type: &str, bytes: Vec<u8>) -> (Descriptor, Bytes) {
    let d = Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        platform: None,
    };
    (d, bytes.into())
}

fn artifact(
    artifact_type: Option<&str>,
    config: (Descriptor, Bytes),
    layer: (Descriptor, Bytes),
    subject: Option<&Descriptor>,
    annotations: serde_json::Value,
) -> Artifact {
    let mut doc = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.0,
        "layers": [layer.0],
        "annotations": annotations,
    });
    if let Some(t) = artifact_type {
        doc["artifactType"] = json!(t);
    }
    if let Some(s) = subject {
        doc["subject"] = json!({"mediaType": s.media_type, "digest": s.digest, "size": s.size});
    }
    let bytes = serde_json::to_vec(&doc).unwrap();
    Artifact {
        manifest: RawManifest::new(bytes.into(), Some(OCI_MANIFEST)).unwrap(),
        blobs: vec![config, layer],
    }
}

/// A cosign v3-style signature of `subject`: a sigstore bundle blob, the empty config.
pub fn signature(subject: &Descriptor, seed: u64) -> Artifact {
    let bundle = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "dsseEnvelope": {"payload": format!("c2lnbmVkLXtzZWVkfQ=={seed}"), "signatures": [{"sig": format!("MEUCIQ{seed}")}]}
    });
    artifact(
        Some(SIGSTORE_BUNDLE),
        blob(EMPTY, b"{}".to_vec()),
        blob(SIGSTORE_BUNDLE, serde_json::to_vec(&bundle).unwrap()),
        Some(subject),
        json!({
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
            "org.opencontainers.image.created": format!("2026-12-0{}T00:00:00Z", 1 + seed % 8),
        }),
    )
}

/// An SPDX SBOM of `subject` (artifactType from the config's media type).
pub fn sbom(subject: &Descriptor, seed: u64) -> Artifact {
    let doc = json!({"spdxVersion": "SPDX-2.3", "name": format!("sbom-{seed}"), "packages": []});
    artifact(
        None,
        blob(SPDX, b"{}".to_vec()),
        blob(SPDX, serde_json::to_vec(&doc).unwrap()),
        Some(subject),
        json!({"org.example.sbom.seed": seed.to_string()}),
    )
}

/// A legacy cosign signature manifest (no subject; found by its `sha256-<hex>.sig` tag).
pub fn legacy_signature(seed: u64) -> Artifact {
    let payload = json!({"critical": {"type": "cosign container image signature", "seed": seed}});
    artifact(
        None,
        blob(
            "application/vnd.oci.image.config.v1+json",
            format!("{{\"seed\":{seed}}}").into_bytes(),
        ),
        blob(
            "application/vnd.dev.cosign.simplesigning.v1+json",
            serde_json::to_vec(&payload).unwrap(),
        ),
        None,
        json!({"dev.cosignproject.cosign/signature": format!("MEQCI{seed}")}),
    )
}

struct Mem(Bytes);

#[async_trait]
impl BlobSource for Mem {
    async fn open(&self, offset: u64) -> ferry::Result<BlobStream> {
        let b = self.0.slice(offset as usize..);
        Ok(futures::stream::iter(vec![Ok(b)]).boxed())
    }
}

/// Pushes the artifact's blobs, then its manifest (by digest, or under `tags`).
pub async fn push(store: &dyn Store, a: &Artifact, tags: &[&str]) {
    for (d, b) in &a.blobs {
        if !store.has_blob(d).await.unwrap() {
            store.put_blob(d, &Mem(b.clone())).await.unwrap();
        }
    }
    let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    store.put_manifest(&a.manifest, &tags).await.unwrap();
}

/// Writes the `sha256-<hex>` fallback index of `subject` listing `entries` (as a client
/// without the referrers API would).
pub async fn write_fallback(store: &dyn Store, subject: &Digest, entries: &[&Artifact]) {
    let list: Vec<_> = entries
        .iter()
        .map(|a| ferry::referrers::Referrer::of(&a.manifest))
        .collect();
    let index = ferry::referrers::build_index(&list);
    let tag = ferry::referrers::fallback_tag(subject);
    store.put_manifest(&index, &[tag]).await.unwrap();
}

/// The digests a `sha256-<hex>` fallback index lists, with each entry's artifactType and
/// annotations; `None` when the tag is absent.
pub async fn fallback_entries(
    store: &dyn Store,
    subject: &Digest,
) -> Option<Vec<ferry::referrers::Referrer>> {
    let tag = ferry::referrers::fallback_tag(subject);
    let m = match store.get_manifest(&ferry::store::Target::Tag(tag)).await {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return None,
        Err(e) => panic!("{e}"),
    };
    ferry::referrers::parse_index(&m.bytes)
}

/// `ferro-oci-server` on a loopback port of its own, on its own thread and runtime; its
/// storage in a temp dir. Stopped when the test process ends.
pub struct Ferro {
    pub addr: String,
    _dir: Arc<tempfile::TempDir>,
}

impl Ferro {
    pub fn start() -> Ferro {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let (listen, storage) = (addr.clone(), dir.path().to_string_lossy().into_owned());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cfg = ferro_oci_server::Config::from_raw(Some(listen), Some(storage.into()));
                let _ = ferro_oci_server::serve(&cfg).await;
            });
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "ferro-oci-server did not listen on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ferro { addr, _dir: dir }
    }
}
