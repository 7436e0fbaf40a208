//! The reqwest client built from a transport's configuration, and which hosts are loopback.

use super::TransportConfig;
use crate::error::{Error, Result};

/// Builds the reqwest client: no automatic redirects, TLS settings from the configuration.
pub fn build(cfg: &TransportConfig) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(cfg.user_agent.clone())
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.read_timeout)
        .danger_accept_invalid_certs(!cfg.tls_verify);
    if let Some(path) = &cfg.ca_file {
        let bad = |reason: String| Error::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| Error::HttpClient {
        reason: super::errors::describe(e),
    })
}

/// Whether `host[:port]` names this machine (plain HTTP by default, like docker).
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
