//! Turns references and transport flags into stores: registry clients per side, OCI layouts.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use ferry::creds::{Chain, CredentialSource, DockerConfig, StaticCredentials};
use ferry::reference::ImageRef;
use ferry::store::layout::LayoutStore;
use ferry::store::registry::{
    RegistryClient, RegistryOptions, RegistryStore, RetryPolicy, UploadStrategy,
};
use ferry::store::{Store, Target};
use ferry::{Error, Result};

/// Flags that decide how to reach registries, per side.
#[derive(Args, Clone, Debug)]
pub struct TransportArgs {
    /// Source credentials as USER:PASSWORD (else docker config.json / REGISTRY_AUTH_FILE).
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "FERRY_SRC_CREDS",
        hide_env_values = true
    )]
    pub src_creds: Option<String>,
    /// Destination credentials as USER:PASSWORD (else docker config.json / REGISTRY_AUTH_FILE).
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "FERRY_DEST_CREDS",
        hide_env_values = true
    )]
    pub dest_creds: Option<String>,
    /// Credentials file in docker config.json format, instead of the default lookup.
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
    /// Verify the source registry's TLS certificate (--src-tls-verify=false to skip).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub src_tls_verify: bool,
    /// Verify the destination registry's TLS certificate (--dest-tls-verify=false to skip).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub dest_tls_verify: bool,
    /// Talk plain HTTP to the source registry (automatic for localhost and 127.0.0.1).
    #[arg(long)]
    pub src_plain_http: bool,
    /// Talk plain HTTP to the destination registry (automatic for localhost and 127.0.0.1).
    #[arg(long)]
    pub dest_plain_http: bool,
    /// Extra CA certificate (PEM) trusted for both sides.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Attempts per request for retryable failures (408, 429, 5xx, dropped connections).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// Longest time to keep retrying one request, Retry-After waits included.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub retry_max_time: u64,
    /// How blobs are uploaded: auto (per blob and registry, with fallback), monolithic,
    /// chunked (resumable) or streamed.
    #[arg(long, value_name = "STRATEGY", default_value = "auto")]
    pub upload_strategy: UploadStrategy,
    /// Chunk size for chunked uploads, e.g. 16MiB, 5M, 1048576 (raised to a registry's
    /// announced minimum).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "16MiB")]
    pub chunk_size: u64,
}

/// Parses `1048576`, `16M`, `16MiB`, `1G`, `512K` (binary units).
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 16MiB)"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (K, M, G)")),
    };
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is not a usable size"))
}

/// Which end of a copy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl TransportArgs {
    pub fn options(&self, side: Side) -> Result<RegistryOptions> {
        let (creds, tls_verify, plain) = match side {
            Side::Source => (&self.src_creds, self.src_tls_verify, self.src_plain_http),
            Side::Destination => (&self.dest_creds, self.dest_tls_verify, self.dest_plain_http),
        };
        let config = match &self.authfile {
            Some(p) => DockerConfig::from_path(p)?,
            None => DockerConfig::load()?,
        };
        let credentials: Arc<dyn CredentialSource> = match creds {
            Some(c) => {
                let flag = if side == Side::Source {
                    "--src-creds"
                } else {
                    "--dest-creds"
                };
                let given = StaticCredentials::parse(c).map_err(|e| match e {
                    Error::Credentials { reason } => Error::Credentials {
                        reason: format!("{flag}: {reason}"),
                    },
                    other => other,
                })?;
                Arc::new(Chain::new().with(given).with(config))
            }
            None => Arc::new(config),
        };
        Ok(RegistryOptions {
            tls_verify,
            plain_http: if plain { Some(true) } else { None },
            ca_file: self.ca_file.clone(),
            credentials,
            retry: RetryPolicy {
                max_attempts: self.retries.max(1),
                max_total: std::time::Duration::from_secs(self.retry_max_time),
                ..RetryPolicy::default()
            },
            upload_strategy: self.upload_strategy,
            chunk_size: self.chunk_size,
            ..RegistryOptions::default()
        })
    }

    /// Opens the store behind a reference and the manifest target it names.
    pub fn open(&self, r: &ImageRef, side: Side) -> Result<(Arc<dyn Store>, Target)> {
        match r {
            ImageRef::Registry(rr) => {
                let client = RegistryClient::new(&rr.registry, self.options(side)?)?;
                let target = target_of(rr.digest.as_ref(), rr.tag.as_deref());
                Ok((Arc::new(RegistryStore::new(client, &rr.repository)), target))
            }
            ImageRef::Layout(l) => {
                let store = match side {
                    Side::Source => LayoutStore::open(&l.path)?,
                    Side::Destination => LayoutStore::create(&l.path)?,
                };
                Ok((
                    Arc::new(store),
                    target_of(l.digest.as_ref(), l.tag.as_deref()),
                ))
            }
        }
    }
}

/// The digest wins over the tag; neither means `latest`.
fn target_of(digest: Option<&ferry::Digest>, tag: Option<&str>) -> Target {
    match (digest, tag) {
        (Some(d), _) => Target::Digest(d.clone()),
        (None, Some(t)) => Target::Tag(t.to_string()),
        (None, None) => Target::Tag("latest".into()),
    }
}

/// Parses a reference given on the command line.
pub fn parse_ref(s: &str) -> Result<ImageRef> {
    s.parse::<ImageRef>().map_err(Error::from)
}
