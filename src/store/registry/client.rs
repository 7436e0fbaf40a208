//! The HTTP side of a registry client: one attempt of a request (auth, redirects), retried
//! requests, capped body reads, and the reqwest client built from the options.
//!
//! Redirects are followed here, not by reqwest, so that `Authorization` only ever goes to the
//! registry's own origin (blob GETs may be redirected to object storage on another host).

use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, LOCATION, RETRY_AFTER};
use reqwest::{Method, Response};
use url::Url;

use super::auth::{Authenticator, Retry};
use super::errors::Ctx;
use super::retry::{self, parse_retry_after, Failure, RetryPolicy, Subject};
use super::stats::{Counters, Kind};
use super::RegistryOptions;
use crate::error::{Error, Result};

/// Redirect hops followed for one request.
const MAX_REDIRECTS: usize = 10;

/// A request that can be sent again (its body, if any, is in memory).
pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Token scopes the request needs (`repository:NAME:pull`...).
    pub scopes: Vec<String>,
    pub kind: Kind,
}

impl Req {
    pub fn new(method: Method, url: Url, scopes: Vec<String>, kind: Kind) -> Self {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            scopes,
            kind,
        }
    }

    pub fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

/// A response read to the end (bounded).
pub(crate) struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Everything a client shares between its clones.
pub(crate) struct Inner {
    /// The registry as the user named it (`docker.io`): credential lookup and messages.
    pub name: String,
    /// Where API requests go (`https://registry-1.docker.io`).
    pub base: Url,
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub auth: Authenticator,
    pub stats: Counters,
    /// Upload settings from the options.
    pub upload: super::upload::UploadSettings,
    /// What uploads taught us about this registry.
    pub upload_profile: std::sync::Mutex<super::upload::UploadProfile>,
}

impl Inner {
    /// Sends `req`, retrying retryable failures; returns the response when its status is in
    /// `accept`, an error otherwise.
    pub async fn execute(&self, ctx: &Ctx, req: &Req, accept: &[u16]) -> Result<Response> {
        retry::run(&self.retry, self.subject(ctx), || {
            self.try_once(ctx, req, accept)
        })
        .await
    }

    /// Like [`Inner::execute`] and reads the body (at most `limit` bytes, else `too_large()`);
    /// a body that breaks off is retried like a failed request.
    pub async fn fetch(
        &self,
        ctx: &Ctx,
        req: &Req,
        accept: &[u16],
        limit: usize,
        too_large: &(dyn Fn() -> Error + Sync),
    ) -> Result<Fetched> {
        retry::run(&self.retry, self.subject(ctx), || async move {
            let mut resp = self.try_once(ctx, req, accept).await?;
            let length = header_u64(resp.headers(), reqwest::header::CONTENT_LENGTH);
            if length.is_some_and(|n| n > limit as u64) {
                return Err(Failure::fatal(too_large()));
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| ctx.transport(e))? {
                if body.len() + chunk.len() > limit {
                    return Err(Failure::fatal(too_large()));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body: body.freeze(),
            })
        })
        .await
    }

    pub fn subject<'a>(&'a self, ctx: &'a Ctx) -> Subject<'a> {
        Subject {
            registry: &self.name,
            op: ctx.op,
            target: &ctx.target,
            stats: Some(&self.stats),
        }
    }

    /// One attempt: the response if its status is in `accept`, else the error it means.
    pub async fn try_once(
        &self,
        ctx: &Ctx,
        req: &Req,
        accept: &[u16],
    ) -> std::result::Result<Response, Failure> {
        let (resp, sent_auth) = self.attempt(ctx, req).await?;
        let status = resp.status().as_u16();
        if accept.contains(&status) {
            return Ok(resp);
        }
        if status == 401 {
            return Err(self.unauthorized(ctx, resp, sent_auth).await.into());
        }
        let retry_after = retry_after(resp.headers());
        Err(Failure::after(ctx.status_error(resp).await, retry_after))
    }

    /// Sends once, re-sends once after a 401 that taught how to authenticate, and follows
    /// redirects of GET and HEAD. Returns the last response and whether it carried credentials.
    /// A failed token fetch is final here: it already went through its own retries.
    async fn attempt(
        &self,
        ctx: &Ctx,
        req: &Req,
    ) -> std::result::Result<(Response, bool), Failure> {
        let mut url = req.url.clone();
        let mut scopes = req.scopes.clone();
        let mut reauthenticated = false;
        let mut hops = 0;
        loop {
            let auth = self.auth_for(&url, &scopes).await.map_err(Failure::fatal)?;
            let sent = auth.is_some();
            let resp = self.send(ctx, req, &url, auth).await?;
            let status = resp.status();
            if status == 401 && !reauthenticated && self.same_origin(&url) {
                reauthenticated = true;
                if let Retry::With(s) = self.auth.on_unauthorized(resp.headers(), &scopes, sent) {
                    scopes = s;
                    continue;
                }
            }
            let follow = status.is_redirection()
                && (req.method == Method::GET || req.method == Method::HEAD);
            match location(&url, resp.headers()) {
                Some(next) if follow && hops < MAX_REDIRECTS => {
                    hops += 1;
                    tracing::debug!(registry = %self.name, op = %ctx.op, to = %super::errors::redact(&next), "redirect");
                    url = next;
                }
                _ => return Ok((resp, sent)),
            }
        }
    }

    /// The `Authorization` header for `url`: only for the registry's own origin.
    pub async fn auth_for(&self, url: &Url, scopes: &[String]) -> Result<Option<HeaderValue>> {
        if !self.same_origin(url) {
            return Ok(None);
        }
        self.auth
            .header(&self.http, &self.retry, &self.stats, scopes)
            .await
    }

    async fn send(
        &self,
        ctx: &Ctx,
        req: &Req,
        url: &Url,
        auth: Option<HeaderValue>,
    ) -> Result<Response> {
        let mut b = self
            .http
            .request(req.method.clone(), url.clone())
            .headers(req.headers.clone());
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        if let Some(body) = &req.body {
            b = b.body(body.clone());
        }
        self.stats.request(req.kind);
        b.send().await.map_err(|e| ctx.transport(e))
    }

    /// What a final 401 means: refused or missing credentials, or no access to the repository.
    async fn unauthorized(&self, ctx: &Ctx, resp: Response, sent_auth: bool) -> Error {
        if self.auth.is_basic() {
            let reason = if sent_auth {
                format!(
                    "the registry refused the credentials of {} (HTTP 401)",
                    self.auth.who()
                )
            } else {
                format!(
                    "the registry requires a login and no credentials were found for {}",
                    self.name
                )
            };
            return self.auth.auth_error(reason);
        }
        ctx.status_error(resp).await
    }

    /// Whether `url` is on the registry's own scheme, host and port.
    pub fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// `/v2/<path>` on the registry.
    pub fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        u.set_path(&format!("/v2/{path}"));
        u
    }
}

/// The `Location` of a response, resolved against the request URL (absolute or relative).
pub(crate) fn location(base: &Url, headers: &HeaderMap) -> Option<Url> {
    let v = headers.get(LOCATION)?.to_str().ok()?;
    base.join(v).ok()
}

/// The server's `Retry-After`, if it sent one we can read.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
}

pub(crate) fn header_str(
    headers: &HeaderMap,
    name: impl reqwest::header::AsHeaderName,
) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn header_u64(
    headers: &HeaderMap,
    name: impl reqwest::header::AsHeaderName,
) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}

/// Builds the reqwest client: no automatic redirects, TLS settings from the options.
pub(crate) fn build_http(opts: &RegistryOptions) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(opts.user_agent.clone())
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .danger_accept_invalid_certs(!opts.tls_verify);
    if let Some(path) = &opts.ca_file {
        let bad = |reason: String| Error::Invalid(format!("CA file {}: {reason}", path.display()));
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| Error::Invalid(format!("HTTP client: {}", super::errors::describe(e))))
}

/// Whether `host[:port]` names this machine (plain HTTP by default, like docker).
pub(crate) fn is_loopback(host: &str) -> bool {
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

    #[test]
    fn locations_resolve_relative_and_absolute() {
        let base = Url::parse("http://r:5000/v2/a/blobs/uploads/").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            LOCATION,
            HeaderValue::from_static("/v2/a/blobs/uploads/u1?_state=x%3D"),
        );
        assert_eq!(
            location(&base, &h).unwrap().as_str(),
            "http://r:5000/v2/a/blobs/uploads/u1?_state=x%3D"
        );
        h.insert(
            LOCATION,
            HeaderValue::from_static("https://s3.example/b?sig=1"),
        );
        assert_eq!(
            location(&base, &h).unwrap().as_str(),
            "https://s3.example/b?sig=1"
        );
    }
}
