//! The transport: the one way requests reach a registry. It owns the HTTP client, the
//! authenticator, the retry engine's policy, the request counters and the error decoding.
//!
//! - [`Transport::attempt`]: one attempt of a replayable request: credentials for the
//!   registry's own origin only, one re-send after a 401 that taught how to authenticate, and
//!   redirects of GET and HEAD followed here (not by reqwest) so that `Authorization` never goes
//!   to another host (blob GETs may be redirected to object storage).
//! - [`Transport::execute`] and [`Transport::fetch`]: the same, retried by the engine
//!   ([`retry::Budget`]); `fetch` reads the body, bounded.
//! - [`Transport::send_stream`]: one attempt with a body that cannot be replayed (an upload
//!   piece streaming from the source); the caller's engine decides what a failure means.
//!
//! Nothing here knows manifests, blobs or uploads: those layers sit above and call in.

pub mod auth;
pub mod challenge;
pub mod errors;
#[cfg(test)]
pub(crate) mod fuzz;
pub mod headers;
pub mod http;
pub mod ratelimit;
pub mod retry;
pub mod stats;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use reqwest::{Method, Response};
use url::Url;

use self::auth::{Authenticator, Retry};
use self::errors::Ctx;
use self::headers::{header_u64, location, retry_after};
use self::retry::{Attempt, Budget, Decision, Failure, RetryPolicy, Subject};
use self::stats::{Counters, Kind};
use crate::creds::CredentialSource;
use crate::error::{Error, Result};
use crate::reference::Registry;

/// Redirect hops followed for one request.
const MAX_REDIRECTS: usize = 10;

/// How to reach one registry host.
#[derive(Clone)]
pub struct TransportConfig {
    pub tls_verify: bool,
    /// `Some(true)`: plain HTTP; `Some(false)`: HTTPS; `None`: HTTPS, except that a loopback
    /// host that does not speak TLS is reached over plain HTTP (see [`http::probe_scheme`]).
    pub plain_http: Option<bool>,
    pub ca_file: Option<PathBuf>,
    /// Docker's `certs.d` directory (`<dir>/<host>/{ca.crt,client.cert,client.key}`).
    pub certs_dir: Option<PathBuf>,
    /// The client certificate for mutual TLS (wins over one in `certs_dir`).
    pub client_cert: Option<tls::ClientCert>,
    pub credentials: Arc<dyn CredentialSource>,
    pub retry: RetryPolicy,
    pub user_agent: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Below this many remaining requests (`RateLimit-Remaining`), manifest GETs are paced.
    pub rate_limit_reserve: u64,
}

/// A request that can be sent again (its body, if any, is in memory).
pub struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Token scopes the request needs (`repository:NAME:pull`...); the first names the
    /// repository whose credential is used.
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
pub struct Fetched {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One registry host: shared by every repository and clone of a client.
pub struct Transport {
    /// The registry as the user named it (`docker.io`): credential lookup and messages.
    name: String,
    /// Where API requests go (`https://registry-1.docker.io`).
    base: Url,
    /// Loopback without an explicit choice: the origin found by trying HTTPS first, once.
    probed: Option<tokio::sync::OnceCell<Url>>,
    http: reqwest::Client,
    /// The configuration, for the diagnostic client of [`Transport::explain_tls`].
    config: TransportConfig,
    /// Whether a TLS client certificate is configured (for the hint on a refused handshake).
    has_client_cert: bool,
    retry: RetryPolicy,
    auth: Authenticator,
    stats: Counters,
    gate: ratelimit::RateGate,
    rate_limit_reserve: u64,
}

impl Transport {
    /// A transport for `registry`: requests to its API host, credentials by its key.
    pub fn new(registry: &Registry, cfg: &TransportConfig) -> Result<Transport> {
        let (name, api_host) = (registry.name(), registry.api_host());
        let plain = cfg.plain_http.unwrap_or(false);
        let scheme = if plain { "http" } else { "https" };
        let probe = cfg.plain_http.is_none() && http::is_loopback(api_host);
        let base = Url::parse(&format!("{scheme}://{api_host}/"))
            .ok()
            .filter(|u| u.host_str().is_some() && u.path() == "/")
            .ok_or_else(|| Error::BadRegistry {
                registry: name.to_string(),
                reason: "not a registry host[:port]".into(),
            })?;
        Ok(Transport {
            name: name.to_string(),
            base,
            probed: probe.then(tokio::sync::OnceCell::new),
            has_client_cert: cfg.client_cert.is_some()
                || cfg
                    .certs_dir
                    .as_ref()
                    .is_some_and(|d| tls::has_client_pair(&d.join(name))),
            http: http::build(cfg, name)?,
            config: cfg.clone(),
            retry: cfg.retry.clone(),
            auth: Authenticator::new(registry.credential_key(), cfg.credentials.clone()),
            stats: Counters::default(),
            gate: ratelimit::RateGate::default(),
            rate_limit_reserve: cfg.rate_limit_reserve,
        })
    }

    /// The registry as the user named it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry's origin: for a loopback host without an explicit choice, HTTPS until the
    /// first request found that it speaks only plain HTTP.
    pub fn base(&self) -> &Url {
        self.probed
            .as_ref()
            .and_then(|p| p.get())
            .unwrap_or(&self.base)
    }

    /// `url` on the origin the probe found, when it names the registry's host and port under
    /// the scheme assumed before the probe (URLs built before the first request).
    async fn on_origin(&self, url: &Url) -> Url {
        let Some(probed) = &self.probed else {
            return url.clone();
        };
        let origin = probed
            .get_or_init(|| {
                let tls12 = || http::build_tls12(&self.config, &self.name);
                http::probe_scheme(&self.http, tls12, &self.name, &self.base)
            })
            .await;
        let mut url = url.clone();
        if url.scheme() != origin.scheme()
            && url.host_str() == origin.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
        {
            let port = url.port_or_known_default();
            let _ = url.set_scheme(origin.scheme());
            // Kept explicit (a loopback registry on :443 stays there over HTTP).
            let _ = url.set_port(port);
        }
        url
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.retry
    }

    pub fn stats(&self) -> &Counters {
        &self.stats
    }

    /// `/v2/<path>` on the registry.
    pub fn url(&self, path: &str) -> Url {
        let mut u = self.base().clone();
        u.set_path(&format!("/v2/{path}"));
        u
    }

    /// Whether `url` is on the registry's own scheme, host and port.
    pub fn same_origin(&self, url: &Url) -> bool {
        let base = self.base();
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    pub fn subject<'a>(&'a self, ctx: &'a Ctx) -> Subject<'a> {
        Subject {
            registry: &self.name,
            op: ctx.op,
            target: &ctx.target,
            stats: Some(&self.stats),
        }
    }

    /// Sends `req` until it is answered with a status in `accept`, the engine gives up, or the
    /// failure is not the request's.
    pub async fn execute(&self, ctx: &Ctx, req: &Req, accept: &[u16]) -> Result<Response> {
        let mut budget = Budget::new(&self.retry);
        loop {
            budget.start_attempt();
            match self.attempt(ctx, req, accept).await {
                Ok(resp) => return Ok(resp),
                Err(f) => self.settle(ctx, &budget, f).await?,
            }
        }
    }

    /// Like [`Transport::execute`] and reads the body (at most `limit` bytes, else
    /// `too_large()`); a body that breaks off is retried like a failed request.
    pub async fn fetch(
        &self,
        ctx: &Ctx,
        req: &Req,
        accept: &[u16],
        limit: usize,
        too_large: &(dyn Fn() -> Error + Sync),
    ) -> Result<Fetched> {
        let mut budget = Budget::new(&self.retry);
        loop {
            budget.start_attempt();
            match self.fetch_once(ctx, req, accept, limit, too_large).await {
                Ok(f) => return Ok(f),
                Err(f) => self.settle(ctx, &budget, f).await?,
            }
        }
    }

    /// Waits when the engine says retry; the final error otherwise.
    async fn settle(&self, ctx: &Ctx, budget: &Budget, f: Failure) -> Result<()> {
        match budget.decide(Attempt::Request, &f) {
            Decision::Retry(delay) => {
                self.subject(ctx)
                    .wait(budget.attempts(), delay, &f.error)
                    .await;
                Ok(())
            }
            _ => Err(self.explain_tls(budget.give_up(f)).await),
        }
    }

    async fn fetch_once(
        &self,
        ctx: &Ctx,
        req: &Req,
        accept: &[u16],
        limit: usize,
        too_large: &(dyn Fn() -> Error + Sync),
    ) -> std::result::Result<Fetched, Failure> {
        let mut resp = self.attempt(ctx, req, accept).await?;
        let length = header_u64(resp.headers(), CONTENT_LENGTH);
        if length.is_some_and(|n| n > limit as u64) {
            return Err(Failure::settled(too_large()));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| ctx.transport(e))? {
            if body.len() + chunk.len() > limit {
                return Err(Failure::settled(too_large()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: body.freeze(),
        })
    }

    /// One attempt: the response if its status is in `accept`, else the failure it means.
    pub async fn attempt(
        &self,
        ctx: &Ctx,
        req: &Req,
        accept: &[u16],
    ) -> std::result::Result<Response, Failure> {
        let (resp, sent_auth) = self.send_following(ctx, req).await?;
        self.judge(ctx, resp, accept, &req.scopes, sent_auth).await
    }

    /// One attempt with a body that cannot be sent again. A 401 that taught how to
    /// authenticate is a failure marked `reauthenticate` (the caller's engine resends).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_stream(
        &self,
        ctx: &Ctx,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: reqwest::Body,
        scopes: &[String],
        kind: Kind,
        accept: &[u16],
    ) -> std::result::Result<Response, Failure> {
        let url = &self.on_origin(url).await;
        let auth = self.auth_for(url, scopes).await?;
        let sent = auth.is_some();
        let mut b = self.http.request(method, url.clone()).headers(headers);
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        self.stats.request(kind);
        let resp = b
            .body(body)
            .send()
            .await
            .map_err(|e| self.hinted(ctx.transport(e)))?;
        if resp.status() == 401 && self.same_origin(url) {
            if let Retry::With(_) = self.auth.on_unauthorized(resp.headers(), scopes, sent) {
                return Err(Failure::reauthenticate(ctx.registry_error(
                    401,
                    vec![],
                    None,
                )));
            }
        }
        self.judge(ctx, resp, accept, scopes, sent).await
    }

    async fn judge(
        &self,
        ctx: &Ctx,
        resp: Response,
        accept: &[u16],
        scopes: &[String],
        sent_auth: bool,
    ) -> std::result::Result<Response, Failure> {
        let status = resp.status().as_u16();
        if accept.contains(&status) {
            return Ok(resp);
        }
        if status == 401 {
            return Err(self.unauthorized(ctx, resp, scopes, sent_auth).await.into());
        }
        let wait = retry_after(resp.headers());
        Err(Failure::after(ctx.status_error(resp).await, wait))
    }

    /// Sends once, re-sends once after a 401 that taught how to authenticate, and follows
    /// redirects of GET and HEAD. Returns the last response and whether it carried credentials.
    async fn send_following(
        &self,
        ctx: &Ctx,
        req: &Req,
    ) -> std::result::Result<(Response, bool), Failure> {
        let mut url = self.on_origin(&req.url).await;
        let mut scopes = req.scopes.clone();
        let mut reauthenticated = false;
        let mut hops = 0;
        loop {
            let auth = self.auth_for(&url, &scopes).await?;
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
                    tracing::debug!(registry = %self.name, op = %ctx.op, to = %errors::redact(&next), "redirect");
                    url = next;
                }
                _ => return Ok((resp, sent)),
            }
        }
    }

    /// The `Authorization` header for `url`: only for the registry's own origin.
    async fn auth_for(
        &self,
        url: &Url,
        scopes: &[String],
    ) -> std::result::Result<Option<HeaderValue>, Failure> {
        if !self.same_origin(url) {
            return Ok(None);
        }
        self.auth.header(&self.http, &self.stats, scopes).await
    }

    async fn send(
        &self,
        ctx: &Ctx,
        req: &Req,
        url: &Url,
        auth: Option<HeaderValue>,
    ) -> std::result::Result<Response, Failure> {
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
        if req.kind == Kind::ManifestGet {
            self.pace(ctx).await;
        }
        self.stats.request(req.kind);
        let resp = b.send().await.map_err(|e| self.hinted(ctx.transport(e)))?;
        if let Some(n) = self.gate.observe(resp.headers()) {
            self.stats.set_rate_limit_remaining(n);
        }
        Ok(resp)
    }

    /// Before a metered request: a pause when the registry said few requests remain.
    async fn pace(&self, ctx: &Ctx) {
        let wait = self.gate.before_metered(self.rate_limit_reserve);
        if wait.is_zero() {
            return;
        }
        self.stats.add_rate_limit_wait();
        tracing::info!(registry = %self.name, op = %ctx.op, wait_ms = wait.as_millis() as u64, "few requests remain (RateLimit-Remaining): pausing");
        tokio::time::sleep(wait).await;
    }

    /// What a final 401 means: refused or missing credentials, or no access to the repository.
    async fn unauthorized(
        &self,
        ctx: &Ctx,
        resp: Response,
        scopes: &[String],
        sent_auth: bool,
    ) -> Error {
        if self.auth.is_basic() {
            let who = self.auth.who(scopes);
            let reason = if sent_auth {
                format!("the registry refused the credentials of {who} (HTTP 401)")
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
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Transport({})", self.base())
    }
}
