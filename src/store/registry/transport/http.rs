//! The reqwest client built from a transport's configuration, which hosts are loopback, and
//! the HTTPS-first probe of a loopback registry.

use url::Url;

use super::TransportConfig;
use crate::error::{Error, Result};

/// The platform's trusted roots (`SSL_CERT_FILE`/`SSL_CERT_DIR`, else the system store), read
/// once per process: every client used to read them again (a `ferry copy` builds one per
/// registry, and where `SSL_CERT_DIR` is set that is hundreds of files each time). As
/// reqwest does, certificates rustls cannot parse are skipped.
fn native_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "reading the platform's trusted roots");
        }
        let mut check = rustls::RootCertStore::empty();
        found
            .certs
            .into_iter()
            .filter(|c| check.add(c.clone()).is_ok())
            .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
            .collect()
    })
}

/// Builds the reqwest client for `host` (as the user named it: the `certs.d` entry): no
/// automatic redirects, TLS settings and material from the configuration.
pub fn build(cfg: &TransportConfig, host: &str) -> Result<reqwest::Client> {
    with_material(reqwest::Client::builder(), cfg, host)
}

/// [`build`], limited to TLS 1.2 (where a refused client certificate fails the handshake
/// itself): for diagnosing a failure only.
pub fn build_tls12(cfg: &TransportConfig, host: &str) -> Result<reqwest::Client> {
    let b = reqwest::Client::builder().max_tls_version(reqwest::tls::Version::TLS_1_2);
    with_material(b, cfg, host)
}

fn with_material(
    b: reqwest::ClientBuilder,
    cfg: &TransportConfig,
    host: &str,
) -> Result<reqwest::Client> {
    let mut b = b
        .tls_built_in_native_certs(false)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(cfg.user_agent.clone())
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.read_timeout)
        .danger_accept_invalid_certs(!cfg.tls_verify);
    let material = super::tls::material(
        host,
        cfg.ca_file.as_deref(),
        cfg.certs_dir.as_deref(),
        cfg.client_cert.as_ref(),
    )?;
    for c in native_roots() {
        b = b.add_root_certificate(c.clone());
    }
    for c in material.roots {
        b = b.add_root_certificate(c);
    }
    if let Some(id) = material.identity {
        b = b.identity(id);
    }
    b.build().map_err(|e| Error::HttpClient {
        reason: super::errors::describe(e),
    })
}

/// The origin to use for a loopback registry without an explicit `--*-tls`/`--*-plain-http`
/// choice, as docker does for insecure registries: HTTPS when it answers there (any HTTP
/// status) or refuses over a certificate (the real request then reports it), plain HTTP when
/// the HTTPS attempt failed otherwise (the registry does not speak TLS). `https` is the origin
/// with the `https` scheme; `tls12` builds the diagnostic client, used when the failure may be
/// a TLS 1.3 refusal that raced with the request (the connection just closed).
pub async fn probe_scheme(
    client: &reqwest::Client,
    tls12: impl FnOnce() -> Result<reqwest::Client>,
    registry: &str,
    https: &Url,
) -> Url {
    let mut ping = https.clone();
    ping.set_path("/v2/");
    let mut err = match client.get(ping.clone()).send().await {
        Ok(_) => return https.clone(),
        Err(e) => super::errors::describe(e),
    };
    if super::tls::may_be_refusal(&err) && !err.to_lowercase().contains("certificate") {
        if let Ok(diag) = tls12() {
            err = match diag.get(ping).send().await {
                Ok(_) => return https.clone(),
                Err(e) => super::errors::describe(e),
            };
        }
    }
    if err.to_lowercase().contains("certificate") {
        tracing::debug!(registry, error = %err, "loopback registry speaks TLS; keeping HTTPS");
        return https.clone();
    }
    tracing::debug!(registry, error = %err, "loopback registry: HTTPS failed, using plain HTTP");
    let mut plain = https.clone();
    let port = plain.port_or_known_default();
    let _ = plain.set_scheme("http");
    let _ = plain.set_port(port);
    plain
}

/// Whether `host[:port]` names this machine (HTTPS tried first, then plain HTTP, like docker).
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.0.0.2",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry.example",
            "10.0.0.1:5000",
            "[2001:db8::1]:443",
            "localhost.example",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
