//! Registries as a store: a client per registry host (HTTP, auth, retries) and a store per
//! repository implementing [`Store`] over the OCI distribution API.
//!
//! - [`RegistryClient`]: one per registry; cheap to clone; holds the connection pool, the token
//!   cache and the request counters ([`RegistryClient::stats`]).
//! - [`RegistryStore`]: one repository of that registry.
//!
//! Requests are retried inside (see [`RetryPolicy`]); errors that come out are final.

mod auth;
mod blobs;
mod challenge;
mod client;
mod errors;
mod manifests;
mod retry;
mod stats;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::creds::{Anonymous, CredentialSource};
use crate::error::{Error, Op, Result};
use crate::manifest::{Descriptor, RawManifest};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API};
use crate::store::{BlobSource, BlobStream, RepoLocation, Store, Target};

pub use challenge::{parse_challenges, Challenge};
pub use errors::{parse_envelope, redact};
pub use retry::{parse_retry_after, RetryPolicy};
pub use stats::ClientStats;
pub use upload::{
    UploadProfile, UploadReport, UploadStrategy, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_CHUNK_SIZE,
    DEFAULT_MONOLITHIC_MAX,
};

use client::{Inner, Req};
use errors::Ctx;
use stats::Kind;

/// How to reach a registry.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Verify the server's TLS certificate (`false` accepts any certificate).
    pub tls_verify: bool,
    /// `Some(true)`: plain HTTP; `Some(false)`: HTTPS; `None`: plain HTTP for loopback hosts
    /// (`localhost`, `127.0.0.0/8`, `[::1]`), HTTPS otherwise.
    pub plain_http: Option<bool>,
    /// An extra trusted root CA bundle (PEM), besides the system roots.
    pub ca_file: Option<PathBuf>,
    pub credentials: Arc<dyn CredentialSource>,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for bytes of an answer (a stalled transfer fails, then is
    /// retried).
    pub read_timeout: Duration,
    /// How blobs are uploaded (default `Auto`: monolithic up to one chunk, chunked above, with
    /// fallbacks; see the `upload` module doc).
    pub upload_strategy: UploadStrategy,
    /// Bytes per chunk of a chunked upload ([`DEFAULT_CHUNK_SIZE`], 16 MiB), raised to the
    /// registry's `OCI-Chunk-Min-Length`, lowered when the registry refuses a size. Memory does
    /// not grow with it: chunks stream from the source.
    pub chunk_size: u64,
    /// The largest chunk ever sent, whatever the registry announces as its minimum
    /// ([`DEFAULT_MAX_CHUNK_SIZE`], 256 MiB).
    pub max_chunk_size: u64,
    /// With `auto`, blobs up to this size go in one streamed request when the registry takes
    /// them ([`DEFAULT_MONOLITHIC_MAX`], 2 GiB); larger ones are chunked (resumable).
    pub monolithic_max: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            tls_verify: true,
            plain_http: None,
            ca_file: None,
            credentials: Arc::new(Anonymous),
            retry: RetryPolicy::default(),
            user_agent: format!("ferry/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            upload_strategy: UploadStrategy::Auto,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_chunk_size: DEFAULT_MAX_CHUNK_SIZE,
            monolithic_max: DEFAULT_MONOLITHIC_MAX,
        }
    }
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("tls_verify", &self.tls_verify)
            .field("plain_http", &self.plain_http)
            .field("ca_file", &self.ca_file)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("upload_strategy", &self.upload_strategy)
            .field("chunk_size", &self.chunk_size)
            .field("max_chunk_size", &self.max_chunk_size)
            .field("monolithic_max", &self.monolithic_max)
            .finish_non_exhaustive()
    }
}

/// A client for one registry host. Clones share the connection pool, token cache and stats.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
    /// Whether `PUT .../manifests/<digest>?tag=..` works here; learnt once (see manifests.rs).
    tag_query: Arc<manifests::TagQuery>,
}

impl RegistryClient {
    /// A client for `host[:port]` as the user wrote it (`docker.io` talks to
    /// `registry-1.docker.io` but looks up credentials for `docker.io`). Sends nothing yet.
    pub fn new(host: &str, opts: RegistryOptions) -> Result<Self> {
        let api_host = if host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            host
        };
        let plain = opts
            .plain_http
            .unwrap_or_else(|| client::is_loopback(api_host));
        let scheme = if plain { "http" } else { "https" };
        let base = url::Url::parse(&format!("{scheme}://{api_host}/"))
            .ok()
            .filter(|u| u.host_str().is_some() && u.path() == "/")
            .ok_or_else(|| Error::Invalid(format!("{host:?} is not a registry host[:port]")))?;
        let inner = Inner {
            name: host.to_string(),
            base,
            http: client::build_http(&opts)?,
            auth: auth::Authenticator::new(host, opts.credentials.clone()),
            retry: opts.retry,
            stats: Default::default(),
            upload: upload::UploadSettings {
                strategy: opts.upload_strategy,
                chunk_size: opts.chunk_size,
                max_chunk_size: opts.max_chunk_size,
                monolithic_max: opts.monolithic_max,
            },
            upload_profile: std::sync::Mutex::new(UploadProfile::for_host(api_host)),
        };
        Ok(RegistryClient {
            inner: Arc::new(inner),
            tag_query: Default::default(),
        })
    }

    /// Checks that the registry answers the API (`GET /v2/`), authenticating if it asks to.
    pub async fn ping(&self) -> Result<()> {
        let ctx = Ctx {
            registry: self.inner.name.clone(),
            repository: String::new(),
            op: Op::Ping,
            target: "/v2/".into(),
        };
        let req = Req::new(
            reqwest::Method::GET,
            self.inner.url(""),
            vec![],
            Kind::Other,
        );
        self.inner.execute(&ctx, &req, &[200]).await.map(drop)
    }

    /// The registry as named when the client was made (`docker.io`, `localhost:5000`).
    pub fn host(&self) -> &str {
        &self.inner.name
    }

    /// Where API requests go: `host[:port]` (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> String {
        let b = &self.inner.base;
        match b.port() {
            Some(p) => format!("{}:{p}", b.host_str().unwrap_or_default()),
            None => b.host_str().unwrap_or_default().to_string(),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.inner.base.scheme()
    }

    /// Whether the registry applies `?tag=` on a manifest PUT (several tags in one request):
    /// `None` until a multi-tag PUT has found out.
    pub fn multi_tag_put(&self) -> Option<bool> {
        self.tag_query.known()
    }

    /// What this client (and its clones) has sent so far.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// What uploads learned about this registry so far (refused strategies, chunk limits).
    pub fn upload_profile(&self) -> UploadProfile {
        self.inner.upload_profile.lock().unwrap().clone()
    }
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryClient({})", self.inner.base)
    }
}

/// One repository of a registry.
#[derive(Clone, Debug)]
pub struct RegistryStore {
    client: RegistryClient,
    repository: String,
}

impl RegistryStore {
    pub fn new(client: RegistryClient, repository: &str) -> Self {
        RegistryStore {
            client,
            repository: repository.to_string(),
        }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    fn inner(&self) -> &Inner {
        &self.client.inner
    }

    fn ctx(&self, op: Op, target: impl Into<String>) -> Ctx {
        Ctx {
            registry: self.client.inner.name.clone(),
            repository: self.repository.clone(),
            op,
            target: target.into(),
        }
    }

    /// `/v2/<repository>/<path>`.
    fn url(&self, path: &str) -> url::Url {
        self.inner().url(&format!("{}/{path}", self.repository))
    }

    /// Uploads a blob like [`Store::put_blob`], but with `strategy` and `chunk_size` instead of
    /// the client's settings (a forced strategy has no fallback), and says how it went. Meant for
    /// benchmarks and tools that know the registry.
    pub async fn upload_with(
        &self,
        desc: &Descriptor,
        source: &dyn BlobSource,
        strategy: UploadStrategy,
        chunk_size: u64,
    ) -> Result<UploadReport> {
        let settings = upload::UploadSettings {
            strategy,
            chunk_size,
            ..self.inner().upload
        };
        upload::upload(self, desc, source, settings).await
    }
}

#[async_trait]
impl Store for RegistryStore {
    fn location(&self) -> String {
        format!("{}/{}", self.client.host(), self.repository)
    }

    fn repo_location(&self) -> Option<RepoLocation> {
        Some(RepoLocation {
            registry: self.client.api_host(),
            repository: self.repository.clone(),
        })
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        manifests::resolve(self, target).await
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        manifests::get(self, target).await
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        manifests::put(self, manifest, tags).await
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        blobs::has(self, desc).await
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        blobs::open(self, desc, offset).await
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        upload::put(self, desc, source).await
    }

    async fn mount_blob(&self, desc: &Descriptor, from_repository: &str) -> Result<bool> {
        upload::mount(self, desc, from_repository).await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        manifests::list_tags(self).await
    }
}
