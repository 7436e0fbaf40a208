//! HTTP plumbing of the ChartMuseum client: the reqwest client with its TLS settings (CA file,
//! client certificate), status and body checks, and error descriptions without secrets.

use std::path::PathBuf;

use bytes::Bytes;
use reqwest::Response;
use url::Url;

use super::error::{excerpt, ChartError};
use super::museum::MuseumOptions;

pub(crate) async fn expect_ok(
    op: &'static str,
    url: &Url,
    resp: Response,
) -> Result<Bytes, ChartError> {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| ChartError::Transport {
        op,
        url: url.to_string(),
        message: describe(&e),
    })?;
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(server_error(op, url, status, &body))
    }
}

pub(crate) fn server_error(op: &'static str, url: &Url, status: u16, body: &[u8]) -> ChartError {
    ChartError::Server {
        op,
        url: url.to_string(),
        status,
        body: excerpt(body),
    }
}

/// ChartMuseum's error bodies are `{"error":"..."}`.
pub(crate) fn error_field(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    doc.get("error")?.as_str().map(str::to_string)
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn build_http(options: &MuseumOptions) -> Result<reqwest::Client, ChartError> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(options.timeout)
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(!options.tls_verify);
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).map_err(|e| ChartError::Settings(format!("{what} {}: {e}", p.display())))
    };
    if let Some(path) = &options.ca_file {
        let pem = read(path, "CA file")?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| ChartError::Settings(format!("CA file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ChartError::Settings(format!(
                "CA file {}: no PEM certificate in it",
                path.display()
            )));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some((cert, key)) = &options.client_cert {
        let mut pem = read(cert, "client certificate")?;
        pem.push(b'\n');
        pem.extend(read(key, "client key")?);
        let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
            ChartError::Settings(format!(
                "client certificate {} / key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        b = b.identity(id);
    }
    b.build()
        .map_err(|e| ChartError::Settings(format!("HTTP client: {e}")))
}

/// The error and its causes on one line (reqwest's top-level message hides the reason).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
