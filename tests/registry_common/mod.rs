//! Helpers shared by the registry tests: clients, in-memory blob sources, small real images.
#![allow(dead_code)]

pub mod scripted;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use ferry::creds::{Credential, CredentialSource};
use ferry::manifest::{self, Descriptor, RawManifest};
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore, RetryPolicy};
use ferry::store::{BlobSource, BlobStream, Store};
use ferry::{Digest, Result};

/// Credentials for one registry name; records every lookup.
pub struct TestCreds {
    pub registry: String,
    pub credential: Credential,
    pub lookups: Mutex<Vec<String>>,
}

impl TestCreds {
    pub fn new(registry: &str, user: &str, secret: &str) -> Arc<TestCreds> {
        Arc::new(TestCreds {
            registry: registry.to_string(),
            credential: if user == ferry::creds::IDENTITY_TOKEN_USERNAME {
                Credential::identity_token(secret)
            } else {
                Credential::password(user, secret)
            },
            lookups: Mutex::new(Vec::new()),
        })
    }
}

impl CredentialSource for TestCreds {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        self.lookups.lock().unwrap().push(registry.to_string());
        Ok((registry == self.registry).then(|| self.credential.clone()))
    }
}

/// Quick retries so failing tests fail fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_total: Duration::from_secs(20),
    }
}

pub fn options(creds: Option<Arc<dyn CredentialSource>>) -> RegistryOptions {
    let mut o = RegistryOptions {
        retry: fast_retry(),
        ..RegistryOptions::default()
    };
    if let Some(c) = creds {
        o.credentials = c;
    }
    o
}

pub fn client(addr: &str, creds: Option<Arc<dyn CredentialSource>>) -> RegistryClient {
    RegistryClient::new(addr, options(creds)).unwrap()
}

pub fn store(client: &RegistryClient, repo: &str) -> RegistryStore {
    RegistryStore::new(client.clone(), repo)
}

/// A blob in memory, served in chunks of `chunk` bytes from any offset.
#[derive(Clone)]
pub struct MemBlob {
    pub bytes: Bytes,
    pub chunk: usize,
    pub opens: Arc<Mutex<Vec<u64>>>,
}

impl MemBlob {
    pub fn new(bytes: impl Into<Bytes>) -> MemBlob {
        MemBlob {
            bytes: bytes.into(),
            chunk: 64 * 1024,
            opens: Arc::default(),
        }
    }

    pub fn descriptor(&self, media_type: &str) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: Digest::of(&self.bytes),
            size: self.bytes.len() as u64,
            platform: None,
        }
    }
}

#[async_trait]
impl BlobSource for MemBlob {
    async fn open(&self, offset: u64) -> Result<BlobStream> {
        self.opens.lock().unwrap().push(offset);
        let rest = self.bytes.slice(offset as usize..);
        let chunks: Vec<Result<Bytes>> = (0..rest.len())
            .step_by(self.chunk.max(1))
            .map(|i| Ok(rest.slice(i..(i + self.chunk).min(rest.len()))))
            .collect();
        Ok(futures::stream::iter(chunks).boxed())
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes_of(seed: u64, len: usize) -> Bytes {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Reads a whole blob stream.
pub async fn read_all(mut s: BlobStream) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Pushes a config and one layer, then an image manifest of `media_type` naming them.
pub async fn push_image(store: &dyn Store, media_type: &str, seed: u64) -> RawManifest {
    let oci = media_type == manifest::OCI_MANIFEST;
    let config = MemBlob::new(format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"seed":{seed}}}"#
    ));
    let layer = MemBlob::new(bytes_of(seed, 100_000 + seed as usize));
    let (cfg_type, layer_type) = if oci {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    } else {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    };
    let (cd, ld) = (config.descriptor(cfg_type), layer.descriptor(layer_type));
    store.put_blob(&cd, &config).await.unwrap();
    store.put_blob(&ld, &layer).await.unwrap();
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type, "config": cd, "layers": [ld],
    });
    let m = RawManifest::new(
        serde_json::to_vec_pretty(&body).unwrap().into(),
        Some(media_type),
    )
    .unwrap();
    store.put_manifest(&m, &[]).await.unwrap();
    m
}

/// An index (or manifest list) of `media_type` over the given child manifests.
pub fn index_of(media_type: &str, children: &[&RawManifest]) -> RawManifest {
    let arch = ["amd64", "arm64", "s390x"];
    let entries: Vec<_> = children
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::json!({
                "mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len(),
                "platform": {"os": "linux", "architecture": arch[i % 3]},
            })
        })
        .collect();
    let body =
        serde_json::json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
    RawManifest::new(serde_json::to_vec(&body).unwrap().into(), Some(media_type)).unwrap()
}

/// Access-log lines of `reg_log` for requests whose line contains all of `needles`.
pub fn log_lines(reg_log: &str, needles: &[&str]) -> Vec<String> {
    reg_log
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Log lines captured from `tracing` on this thread (debug level and up) while the guard lives.
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl Logs {
    pub fn capture() -> Logs {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let b = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(b.clone()))
            .finish();
        Logs {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
