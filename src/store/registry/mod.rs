//! Registries as a store: a client per registry host and a store per repository implementing
//! [`Store`] over the OCI distribution API.
//!
//! Layers, imports pointing down only (a test below checks it):
//!
//! ```text
//! mod.rs (RegistryClient, RegistryStore: the facade, delegating)
//!   manifests/ (and referrers)   deletes.rs   blobs.rs   upload/ (strategies, sessions, feeds, mounts)
//!     repo.rs (one repository on a transport: URLs, scopes, error context)
//!       transport/ (HTTP client, auth, the retry engine, statistics, error decoding)
//! ```
//!
//! - [`RegistryClient`]: one per registry; cheap to clone; holds the transport (connection
//!   pool, token cache, request counters: [`RegistryClient::stats`]) and what uploads learned.
//! - [`RegistryStore`]: one repository of that registry.
//!
//! Requests are retried inside (see [`RetryPolicy`]); errors that come out are final.

mod blobs;
mod catalog;
mod deletes;
mod manifests;
mod repo;
mod transport;

/// The corpus and settings of the property tests, for the crate's other fuzz module.
#[cfg(test)]
pub(crate) use transport::fuzz as fuzz_support;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::creds::{Anonymous, CredentialSource};
use crate::digest::Digest;
use crate::error::{Op, Result};
use crate::manifest::{Descriptor, RawManifest};
use crate::referrers::Referrer;
use crate::store::{BlobSource, BlobStream, Linked, RepoLocation, Store, Target};

pub use catalog::CATALOG_PAGE;
pub use transport::challenge::{parse_challenges, Challenge};
pub use transport::errors::{parse_envelope, redact};
pub use transport::headers::parse_retry_after;
pub use transport::retry::{is_retryable, RetryPolicy};
pub use transport::stats::ClientStats;
pub use transport::tls::ClientCert;
pub use upload::{
    UploadProfile, UploadReport, UploadStrategy, Verify, DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CHUNK_SIZE, DEFAULT_MONOLITHIC_MAX,
};

use repo::Repo;
use transport::stats::Kind;
use transport::{Req, Transport, TransportConfig};
use upload::Uploads;

/// How to reach a registry.
#[derive(Clone)]
pub struct RegistryOptions {
    /// Verify the server's TLS certificate (`false` accepts any certificate).
    pub tls_verify: bool,
    /// `Some(true)`: plain HTTP; `Some(false)`: HTTPS; `None`: HTTPS, but a loopback host
    /// (`localhost`, `127.0.0.0/8`, `[::1]`) is tried over HTTPS first and reached over plain
    /// HTTP when it does not speak TLS (as docker treats insecure registries).
    pub plain_http: Option<bool>,
    /// An extra trusted root CA bundle (PEM), besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Docker's `certs.d` directory: `<dir>/<host[:port]>/` may hold CA files (`*.crt`) and a
    /// client certificate (`client.cert` with `client.key`). `None`: not looked at.
    pub certs_dir: Option<PathBuf>,
    /// The TLS client certificate for mutual TLS; wins over one found in `certs_dir`.
    pub client_cert: Option<ClientCert>,
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
    /// Whether ferry hashes what it uploads or leaves that to the registry's check at commit
    /// (default `Auto`: the registry's; see [`Verify`]).
    pub verify: Verify,
    /// When the registry says fewer requests than this remain (`RateLimit-Remaining`, Docker
    /// Hub), manifest GETs are paced (see [`DEFAULT_RATE_LIMIT_RESERVE`]); 0 never paces.
    pub rate_limit_reserve: u64,
    /// A directory for the upload journal: chunked uploads record their session there, so a
    /// rerun after the process died resumes them (see `upload::journal`). `None`: no journal.
    pub upload_journal: Option<PathBuf>,
}

/// Requests kept in hand before pacing manifest GETs.
pub const DEFAULT_RATE_LIMIT_RESERVE: u64 = 10;

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            tls_verify: true,
            plain_http: None,
            ca_file: None,
            certs_dir: None,
            client_cert: None,
            credentials: Arc::new(Anonymous),
            retry: RetryPolicy::default(),
            user_agent: format!("ferry/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            upload_strategy: UploadStrategy::Auto,
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_chunk_size: DEFAULT_MAX_CHUNK_SIZE,
            monolithic_max: DEFAULT_MONOLITHIC_MAX,
            verify: Verify::Auto,
            rate_limit_reserve: DEFAULT_RATE_LIMIT_RESERVE,
            upload_journal: None,
        }
    }
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("tls_verify", &self.tls_verify)
            .field("plain_http", &self.plain_http)
            .field("ca_file", &self.ca_file)
            .field("certs_dir", &self.certs_dir)
            .field("client_cert", &self.client_cert)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("upload_strategy", &self.upload_strategy)
            .field("chunk_size", &self.chunk_size)
            .field("max_chunk_size", &self.max_chunk_size)
            .field("monolithic_max", &self.monolithic_max)
            .field("verify", &self.verify)
            .field("rate_limit_reserve", &self.rate_limit_reserve)
            .field("upload_journal", &self.upload_journal)
            .finish_non_exhaustive()
    }
}

/// A client for one registry host. Clones share the transport and what uploads learned.
#[derive(Clone)]
pub struct RegistryClient {
    transport: Arc<Transport>,
    uploads: Arc<Uploads>,
    /// Whether `PUT .../manifests/<digest>?tag=..` works here; learnt once (see manifests/).
    tag_query: Arc<manifests::TagQuery>,
    /// Whether the registry serves the referrers API and indexes subjects; learnt as it goes.
    referrers: Arc<manifests::referrers::Capability>,
}

impl RegistryClient {
    /// A client for `host[:port]` as the user wrote it (`docker.io` talks to
    /// `registry-1.docker.io` but looks up credentials for `docker.io`). Sends nothing yet.
    pub fn new(host: &str, opts: RegistryOptions) -> Result<Self> {
        let registry = crate::reference::Registry::new(host);
        let api_host = registry.api_host();
        let cfg = TransportConfig {
            tls_verify: opts.tls_verify,
            plain_http: opts.plain_http,
            ca_file: opts.ca_file.clone(),
            certs_dir: opts.certs_dir.clone(),
            client_cert: opts.client_cert.clone(),
            credentials: opts.credentials.clone(),
            retry: opts.retry.clone(),
            user_agent: opts.user_agent.clone(),
            connect_timeout: opts.connect_timeout,
            read_timeout: opts.read_timeout,
            rate_limit_reserve: opts.rate_limit_reserve,
        };
        let settings = upload::UploadSettings {
            strategy: opts.upload_strategy,
            chunk_size: opts.chunk_size,
            max_chunk_size: opts.max_chunk_size,
            monolithic_max: opts.monolithic_max,
            verify: opts.verify,
        };
        Ok(RegistryClient {
            transport: Arc::new(Transport::new(&registry, &cfg)?),
            uploads: Arc::new(Uploads {
                journal: opts
                    .upload_journal
                    .clone()
                    .map(upload::journal::Journal::new),
                ..Uploads::new(settings, api_host)
            }),
            tag_query: Default::default(),
            referrers: Default::default(),
        })
    }

    /// Checks that the registry answers the API (`GET /v2/`), authenticating if it asks to.
    pub async fn ping(&self) -> Result<()> {
        let ctx = transport::errors::Ctx {
            registry: self.transport.name().to_string(),
            repository: String::new(),
            op: Op::Ping,
            target: "/v2/".into(),
        };
        let req = Req::new(
            reqwest::Method::GET,
            self.transport.url(""),
            vec![],
            Kind::Other,
        );
        self.transport.execute(&ctx, &req, &[200]).await.map(drop)
    }

    /// The registry as named when the client was made (`docker.io`, `localhost:5000`).
    pub fn host(&self) -> &str {
        self.transport.name()
    }

    /// Where API requests go: `host[:port]` (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> String {
        let b = self.transport.base();
        match b.port() {
            Some(p) => format!("{}:{p}", b.host_str().unwrap_or_default()),
            None => b.host_str().unwrap_or_default().to_string(),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.transport.base().scheme()
    }

    /// Whether the registry applies `?tag=` on a manifest PUT (several tags in one request):
    /// `None` until a multi-tag PUT has found out.
    pub fn multi_tag_put(&self) -> Option<bool> {
        self.tag_query.known()
    }

    /// Whether the registry serves the OCI 1.1 referrers API: `None` until a listing found out
    /// (`Some(false)`: referrers are read from, and written to, `sha256-<hex>` fallback tags).
    pub fn referrers_api(&self) -> Option<bool> {
        self.referrers.api()
    }

    /// Every repository the registry's catalog lists (`/v2/_catalog`, every page), `page`
    /// names per request ([`CATALOG_PAGE`] is a good size).
    pub async fn catalog(&self, page: usize) -> Result<Vec<String>> {
        catalog::list(&self.transport, page).await
    }

    /// What this client (and its clones) has sent so far.
    pub fn stats(&self) -> ClientStats {
        self.transport.stats().snapshot()
    }

    /// What uploads learned about this registry so far (refused strategies, chunk limits).
    pub fn upload_profile(&self) -> UploadProfile {
        self.uploads.profile.lock().unwrap().clone()
    }
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryClient({})", self.transport.base())
    }
}

/// One repository of a registry.
#[derive(Clone, Debug)]
pub struct RegistryStore {
    client: RegistryClient,
    repo: Repo,
}

impl RegistryStore {
    pub fn new(client: RegistryClient, repository: &str) -> Self {
        let repo = Repo::new(client.transport.clone(), repository);
        RegistryStore { client, repo }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    pub fn repository(&self) -> &str {
        self.repo.name()
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
        let uploads = &self.client.uploads;
        let settings = upload::UploadSettings {
            strategy,
            chunk_size,
            ..uploads.settings
        };
        upload::upload(&self.repo, uploads, desc, source, settings).await
    }
}

#[async_trait]
impl Store for RegistryStore {
    fn location(&self) -> String {
        format!("{}/{}", self.client.host(), self.repo.name())
    }

    fn repo_location(&self) -> Option<RepoLocation> {
        Some(RepoLocation {
            registry: self.client.api_host(),
            repository: self.repo.name().to_string(),
        })
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        manifests::resolve(&self.repo, target).await
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        manifests::get(&self.repo, target).await
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        let (query, referrers) = (&self.client.tag_query, &self.client.referrers);
        manifests::put(&self.repo, query, referrers, manifest, tags).await
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        blobs::has(&self.repo, desc).await
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        blobs::open(&self.repo, desc, offset).await
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        upload::put(&self.repo, &self.client.uploads, desc, source).await
    }

    async fn mount_blob(&self, desc: &Descriptor, from_repository: &str) -> Result<bool> {
        upload::mount(&self.repo, desc, from_repository).await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        manifests::list_tags(&self.repo).await
    }

    async fn find_referrers(
        &self,
        subject: &Digest,
        types: &[String],
        listed: Option<&std::collections::HashSet<String>>,
    ) -> Result<Vec<Referrer>> {
        let (repo, cap) = (&self.repo, &self.client.referrers);
        manifests::referrers::list(repo, cap, subject, types, listed).await
    }

    async fn link_referrers(&self, subject: &Digest, referrers: &[Referrer]) -> Result<Linked> {
        manifests::referrers::link(&self.repo, &self.client.referrers, subject, referrers).await
    }

    async fn delete_tag(&self, tag: &str) -> Result<()> {
        deletes::delete(&self.repo, &Target::Tag(tag.to_string())).await
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        deletes::delete(&self.repo, &Target::Digest(digest.clone())).await
    }
}

#[cfg(test)]
mod layering;
