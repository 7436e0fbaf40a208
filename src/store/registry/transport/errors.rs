//! Registry answers turned into errors: the OCI error envelope, transport failures, redacted URLs.

use futures::StreamExt;
use reqwest::Response;
use url::Url;

use crate::error::{Error, Op, RegistryErrorCode};

/// Error bodies larger than this are not read (the envelope is small; a proxy page may not be).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Characters of a non-envelope error body kept in the error.
const KEPT_BODY: usize = 200;

/// Where a request went and why, for error messages.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub registry: String,
    pub repository: String,
    pub op: Op,
    /// What the request was about: a tag, a digest, `tags`; never a URL with a query.
    pub target: String,
}

impl Ctx {
    /// An error for a response with an unexpected status; reads the `{"errors":[...]}` body.
    pub async fn status_error(&self, resp: Response) -> Error {
        let status = resp.status().as_u16();
        let (codes, body) = read_body(resp).await;
        self.registry_error(status, codes, body)
    }

    /// An error for `status`, with the registry's codes or, when the body was not the OCI
    /// envelope, the start of the body as it came (a proxy's page, a plain-text "denied").
    pub fn registry_error(
        &self,
        status: u16,
        codes: Vec<RegistryErrorCode>,
        body: Option<String>,
    ) -> Error {
        let body = body.map(String::into_boxed_str);
        Error::Registry {
            op: self.op,
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            target: self.target.clone(),
            status,
            codes,
            body,
            attempts: 1,
        }
    }

    /// A connection-level failure; the message never contains the URL (queries may hold secrets).
    pub fn transport(&self, err: reqwest::Error) -> Error {
        let err = err.without_url();
        self.transport_error(describe_ref(&err), Some(Box::new(err)))
    }

    pub fn transport_message(&self, message: String) -> Error {
        self.transport_error(message, None)
    }

    fn transport_error(&self, message: String, cause: Option<Box<reqwest::Error>>) -> Error {
        Error::Transport {
            op: self.op,
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            target: self.target.clone(),
            message,
            attempts: 1,
            cause,
        }
    }

    /// `registry/repository`, for `location` fields.
    pub fn location(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    pub fn with_op(&self, op: Op, target: impl Into<String>) -> Ctx {
        Ctx {
            op,
            target: target.into(),
            ..self.clone()
        }
    }
}

/// A reqwest error and its causes, without the URL.
pub fn describe(err: reqwest::Error) -> String {
    describe_ref(&err.without_url())
}

/// [`describe`] of an error whose URL was already removed.
fn describe_ref(err: &reqwest::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an error body and parses the OCI error envelope;
/// a body that is not the envelope is kept as text, cut at [`KEPT_BODY`] characters.
pub async fn read_body(resp: Response) -> (Vec<RegistryErrorCode>, Option<String>) {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY {
            break;
        }
    }
    let codes = parse_envelope(&body);
    if !codes.is_empty() {
        return (codes, None);
    }
    (codes, excerpt(&body))
}

/// The start of a non-envelope body on one line, or `None` when it has no text.
pub fn excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return None;
    }
    let mut cut: String = line.chars().take(KEPT_BODY).collect();
    if cut.len() < line.len() {
        cut.push('…');
    }
    Some(cut)
}

/// `{"errors":[{"code","message","detail"}]}` → the codes; anything else → none.
pub fn parse_envelope(body: &[u8]) -> Vec<RegistryErrorCode> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<RegistryErrorCode>,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
}

/// A URL fit for logs and messages: scheme, host, port and path; no user info, query or fragment.
pub fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_parsed_and_junk_ignored() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"DENIED"}]}"#;
        let codes = parse_envelope(body);
        assert_eq!(codes.len(), 2);
        assert_eq!(codes[0].code, "MANIFEST_UNKNOWN");
        assert_eq!(codes[1].message, "");
        assert!(parse_envelope(b"<html>502 Bad Gateway</html>").is_empty());
        assert!(parse_envelope(b"").is_empty());
        assert_eq!(
            excerpt(b"<html>\n 502 Bad   Gateway</html>").as_deref(),
            Some("<html> 502 Bad Gateway</html>")
        );
        assert_eq!(excerpt(b" \n"), None);
        assert_eq!(
            excerpt(&[b'x'; 300]).unwrap().chars().count(),
            KEPT_BODY + 1
        );
    }

    #[test]
    fn redaction_drops_secrets() {
        let u =
            Url::parse("https://user:pw@s3.example/bucket/blob?X-Amz-Signature=abc#frag").unwrap();
        assert_eq!(redact(&u), "https://s3.example/bucket/blob");
    }
}
