//! TLS material for one registry: extra trusted CAs (`--ca-file`, docker's
//! `certs.d/HOST/*.crt`) and the client certificate for mutual TLS (`--*-cert-file` with
//! `--*-key-file`, or `certs.d/HOST/*.cert` with the `.key` of the same name).
//!
//! It also explains TLS failures that a client certificate explains (a missing or refused one),
//! with one diagnostic TLS 1.2 handshake when TLS 1.3 hid the server's verdict.
//!
//! The `certs.d` layout is docker's: `<dir>/<host[:port]>/ca.crt`, `client.cert`,
//! `client.key`, the host named as in the image reference. An explicit client certificate wins
//! over one found there.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A client certificate (PEM, may carry its chain) and its private key (PEM: PKCS#8, RSA or EC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a registry's TLS needs besides the system roots.
#[derive(Debug, Default)]
pub struct TlsMaterial {
    pub roots: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
}

/// Reads the CA file, the `certs.d` entry of `host` (when `certs_dir` has one) and the client
/// certificate. Unusable files are errors naming them; a missing `certs.d` entry is not.
pub fn material(
    host: &str,
    ca_file: Option<&Path>,
    certs_dir: Option<&Path>,
    client: Option<&ClientCert>,
) -> Result<TlsMaterial> {
    let mut out = TlsMaterial::default();
    let mut found_client = None;
    if let Some(dir) = certs_dir.map(|d| d.join(host)).filter(|d| d.is_dir()) {
        let (cas, pair) = scan(&dir)?;
        for ca in cas {
            out.roots.extend(read_roots(&ca)?);
        }
        found_client = pair;
    }
    if let Some(path) = ca_file {
        out.roots.extend(read_roots(path)?);
    }
    if let Some(c) = client.or(found_client.as_ref()) {
        out.identity = Some(read_identity(c)?);
    }
    Ok(out)
}

/// The `*.crt` files of a `certs.d/HOST` directory, and its client pair: `X.cert` with `X.key`
/// (docker's rule: either one without the other is an error).
fn scan(dir: &Path) -> Result<(Vec<PathBuf>, Option<ClientCert>)> {
    let bad = |path: &Path, reason: String| Error::ClientCert {
        path: path.to_path_buf(),
        reason,
    };
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| bad(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    let mut cas = Vec::new();
    let mut pair = None;
    for p in &names {
        match p.extension().and_then(|e| e.to_str()) {
            Some("crt") => cas.push(p.clone()),
            Some("cert") => {
                let key = p.with_extension("key");
                if !key.is_file() {
                    return Err(bad(p, format!("no {} beside it", file_name(&key))));
                }
                if pair.is_none() {
                    pair = Some(ClientCert {
                        cert: p.clone(),
                        key,
                    });
                }
            }
            Some("key") if !p.with_extension("cert").is_file() => {
                let cert = p.with_extension("cert");
                return Err(bad(p, format!("no {} beside it", file_name(&cert))));
            }
            _ => {}
        }
    }
    Ok((cas, pair))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_roots(path: &Path) -> Result<Vec<reqwest::Certificate>> {
    let bad = |reason: String| Error::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(certs)
}

fn read_identity(c: &ClientCert) -> Result<reqwest::Identity> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| Error::ClientCert {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let (cert, key) = (read(&c.cert)?, read(&c.key)?);
    if !String::from_utf8_lossy(&cert).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::ClientCert {
            path: c.cert.clone(),
            reason: "no PEM certificate in it".into(),
        });
    }
    if !String::from_utf8_lossy(&key).contains("PRIVATE KEY-----") {
        return Err(Error::ClientCert {
            path: c.key.clone(),
            reason: "no PEM private key in it".into(),
        });
    }
    let mut pem = cert;
    pem.push(b'\n');
    pem.extend_from_slice(&key);
    reqwest::Identity::from_pem(&pem).map_err(|e| Error::ClientCert {
        path: c.cert.clone(),
        reason: format!(
            "with key {}: {}",
            c.key.display(),
            super::errors::describe(e)
        ),
    })
}

/// A hint for a TLS failure that mutual TLS explains: the registry asked for a client
/// certificate that was not sent, or refused the one that was.
pub fn hint(message: &str, sent_cert: bool) -> Option<&'static str> {
    if !is_refusal(message) {
        return None;
    }
    let m = message.to_ascii_lowercase();
    let asked = m.contains("certificaterequired") || m.contains("certificate required");
    if asked || !sent_cert {
        return Some(
            "the registry requires a TLS client certificate and none was sent (give \
             --src-cert-file/--dest-cert-file with the matching --*-key-file, or put \
             client.cert and client.key in certs.d/HOST/)",
        );
    }
    Some("the registry refused the TLS client certificate that was sent")
}

/// Whether a transport failure is the server refusing the handshake over a certificate (a
/// TLS alert): final, another attempt gets the same answer.
pub fn is_refusal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("fatal alert")
        && [
            "certificaterequired",
            "certificate required",
            "badcertificate",
            "bad certificate",
            "unknownca",
            "unknown ca",
            "unsupportedcertificate",
            "certificateunknown",
        ]
        .iter()
        .any(|s| m.contains(s))
}

/// Whether a transport failure may be a TLS 1.3 refusal seen too late (the server's alert
/// raced with the request and the connection just closed): worth a diagnostic handshake.
pub fn may_be_refusal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["closed", "alert", "connection reset", "broken pipe"]
        .iter()
        .any(|s| m.contains(s))
}

/// The TLS side of a transport's failures.
impl super::Transport {
    /// A final transport failure over HTTPS that may be a TLS refusal seen too late (TLS 1.3
    /// lets the request go before the server's verdict on the client certificate): one
    /// diagnostic handshake over TLS 1.2, where the verdict comes inside the handshake, says
    /// whether the client certificate is the problem, and the error then says so.
    pub(super) async fn explain_tls(&self, mut e: Error) -> Error {
        let Error::Transport { message, .. } = &mut e else {
            return e;
        };
        if self.base().scheme() != "https" || !may_be_refusal(message) {
            return e;
        }
        if hint(message, self.has_client_cert).is_some() {
            return e;
        }
        let Ok(client) = super::http::build_tls12(&self.config, &self.name) else {
            return e;
        };
        let ping = self.url("");
        if let Err(diag) = client.get(ping).send().await {
            let diag = super::errors::describe(diag);
            if let Some(h) = hint(&diag, self.has_client_cert) {
                message.push_str(": ");
                message.push_str(h);
            }
        }
        e
    }

    /// A TLS failure that mutual TLS explains says so.
    pub(super) fn hinted(&self, mut e: Error) -> Error {
        if let Error::Transport { message, .. } = &mut e {
            if let Some(h) = hint(message, self.has_client_cert) {
                message.push_str(": ");
                message.push_str(h);
            }
        }
        e
    }
}

/// Whether a `certs.d/HOST` directory holds a client certificate.
pub(super) fn has_client_pair(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "cert"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_d_pairs_follow_dockers_rules() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("r.example:5000");
        std::fs::create_dir(&host).unwrap();
        std::fs::write(host.join("client.cert"), "x").unwrap();
        let e = scan(&host).unwrap_err();
        assert!(e.to_string().contains("no client.key beside it"), "{e}");
        std::fs::write(host.join("client.key"), "x").unwrap();
        std::fs::write(host.join("ca.crt"), "x").unwrap();
        let (cas, pair) = scan(&host).unwrap();
        assert_eq!(cas, vec![host.join("ca.crt")]);
        assert_eq!(pair.unwrap().key, host.join("client.key"));
        std::fs::write(host.join("other.key"), "x").unwrap();
        let e = scan(&host).unwrap_err();
        assert!(e.to_string().contains("no other.cert beside it"), "{e}");
        // No entry for a host: nothing, not an error.
        let m = material("elsewhere:1", None, Some(dir.path()), None).unwrap();
        assert!(m.roots.is_empty() && m.identity.is_none());
    }

    #[test]
    fn hints_name_the_client_certificate() {
        assert!(hint("received fatal alert: CertificateRequired", true)
            .unwrap()
            .contains("none was sent"));
        assert!(hint("received fatal alert: BadCertificate", false)
            .unwrap()
            .contains("none was sent"));
        assert!(hint("received fatal alert: BadCertificate", true)
            .unwrap()
            .contains("refused"));
        assert_eq!(hint("connection refused", true), None);
        assert_eq!(hint("received fatal alert: HandshakeFailure", true), None);
    }
}
