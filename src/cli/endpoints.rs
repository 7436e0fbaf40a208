//! The flags that decide how to reach registries, per side (flags only: `settings.rs`
//! resolves them).

use std::path::PathBuf;

use clap::Args;

use ferry::store::registry::{UploadStrategy, Verify};

/// Where docker keeps per-registry certificates.
const DEFAULT_CERTS_DIR: &str = "/etc/docker/certs.d";

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
    /// Talk plain HTTP to the source registry (localhost and 127.0.0.1: HTTPS is tried first, then plain HTTP).
    #[arg(long, conflicts_with = "src_tls")]
    pub src_plain_http: bool,
    /// Talk plain HTTP to the destination registry (localhost and 127.0.0.1: HTTPS is tried first, then plain HTTP).
    #[arg(long, conflicts_with = "dest_tls")]
    pub dest_plain_http: bool,
    /// Talk HTTPS to the source registry, also on localhost and 127.0.0.1 (no plain HTTP fallback).
    #[arg(long)]
    pub src_tls: bool,
    /// Talk HTTPS to the destination registry, also on localhost and 127.0.0.1 (no plain HTTP fallback).
    #[arg(long)]
    pub dest_tls: bool,
    /// Extra CA certificate (PEM) trusted for both sides.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate (PEM) for a source registry that requires mutual TLS.
    #[arg(long, value_name = "PATH", requires = "src_key_file")]
    pub src_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --src-cert-file.
    #[arg(long, value_name = "PATH", requires = "src_cert_file")]
    pub src_key_file: Option<PathBuf>,
    /// TLS client certificate (PEM) for a destination registry that requires mutual TLS.
    #[arg(long, value_name = "PATH", requires = "dest_key_file")]
    pub dest_cert_file: Option<PathBuf>,
    /// Private key (PEM) of --dest-cert-file.
    #[arg(long, value_name = "PATH", requires = "dest_cert_file")]
    pub dest_key_file: Option<PathBuf>,
    /// Docker's certs.d directory: HOST[:PORT]/ca.crt, client.cert and client.key are used for
    /// that registry.
    #[arg(long, value_name = "DIR", env = "FERRY_CERTS_DIR", default_value = DEFAULT_CERTS_DIR)]
    pub certs_dir: PathBuf,
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
    /// Who checks uploaded bytes against their digest: auto (the destination registry, which
    /// verifies every blob when the upload is committed and refuses a mismatch; ferry counts
    /// the bytes and checks the digest the registry answers with) or always (ferry hashes them
    /// too, and stops a wrong source before its last byte is sent). Layouts and archives are
    /// always hashed by ferry.
    #[arg(
        long,
        value_name = "MODE",
        default_value = "auto",
        env = "FERRY_VERIFY"
    )]
    pub verify: Verify,
    /// Do not read or update the blob-location cache (which registry repositories hold which
    /// blobs, remembered between runs so a later run mounts instead of uploading; in
    /// $FERRY_CACHE_DIR, else $XDG_CACHE_HOME/ferry, else ~/.cache/ferry).
    #[arg(
        long,
        env = "FERRY_NO_CACHE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_cache: bool,
    /// Chunk size for chunked uploads, e.g. 16MiB, 5M, 1048576 (raised to a registry's
    /// announced minimum).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "16MiB")]
    pub chunk_size: u64,
    /// Pace manifest GETs when a registry says fewer requests than this remain
    /// (RateLimit-Remaining, as Docker Hub sends); 0: never.
    #[arg(long, value_name = "N", default_value_t = ferry::store::registry::DEFAULT_RATE_LIMIT_RESERVE)]
    pub rate_limit_reserve: u64,
    /// Blobs larger than this are uploaded in chunks recorded in the upload journal
    /// ($XDG_CACHE_HOME/ferry/uploads), so a rerun after a killed copy resumes them; smaller
    /// ones go in one request (faster when nothing goes wrong).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "512MiB")]
    pub resumable_above: u64,
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

/// Flags to reach the one registry of `digest`, `inspect`, `ls` and `delete`.
#[derive(Args, Clone, Debug)]
pub struct AccessArgs {
    /// Credentials as USER:PASSWORD (else docker config.json / REGISTRY_AUTH_FILE).
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "FERRY_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<String>,
    /// Credentials file in docker config.json format, instead of the default lookup.
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
    /// Verify the registry's TLS certificate (--tls-verify=false to skip).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
    /// Talk plain HTTP to the registry (localhost and 127.0.0.1: HTTPS is tried first, then plain HTTP).
    #[arg(long, conflicts_with = "tls")]
    pub plain_http: bool,
    /// Talk HTTPS to the registry, also on localhost and 127.0.0.1 (no plain HTTP fallback).
    #[arg(long)]
    pub tls: bool,
    /// Extra CA certificate (PEM) to trust.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate (PEM) for a registry that requires mutual TLS.
    #[arg(long, value_name = "PATH", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of --cert-file.
    #[arg(long, value_name = "PATH", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Docker's certs.d directory: HOST[:PORT]/ca.crt, client.cert and client.key are used for
    /// that registry.
    #[arg(long, value_name = "DIR", env = "FERRY_CERTS_DIR", default_value = DEFAULT_CERTS_DIR)]
    pub certs_dir: PathBuf,
    /// Attempts per request for retryable failures (408, 429, 5xx, dropped connections).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub retries: u32,
    /// Longest time to keep retrying one request, Retry-After waits included.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub retry_max_time: u64,
}

impl AccessArgs {
    /// The same settings on both sides, for the settings tier.
    pub fn transport(&self) -> TransportArgs {
        TransportArgs {
            src_creds: self.creds.clone(),
            dest_creds: self.creds.clone(),
            authfile: self.authfile.clone(),
            src_tls_verify: self.tls_verify,
            dest_tls_verify: self.tls_verify,
            src_plain_http: self.plain_http,
            dest_plain_http: self.plain_http,
            src_tls: self.tls,
            dest_tls: self.tls,
            ca_file: self.ca_file.clone(),
            src_cert_file: self.cert_file.clone(),
            src_key_file: self.key_file.clone(),
            dest_cert_file: self.cert_file.clone(),
            dest_key_file: self.key_file.clone(),
            certs_dir: self.certs_dir.clone(),
            retries: self.retries,
            retry_max_time: self.retry_max_time,
            upload_strategy: UploadStrategy::Auto,
            verify: Verify::Auto,
            no_cache: true,
            chunk_size: ferry::store::registry::DEFAULT_CHUNK_SIZE,
            rate_limit_reserve: ferry::store::registry::DEFAULT_RATE_LIMIT_RESERVE,
            resumable_above: 512 << 20,
        }
    }
}
