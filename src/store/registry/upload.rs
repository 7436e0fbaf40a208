//! Writing blobs: a streamed monolithic upload (`POST` a session, then `PUT <location>?digest=`
//! with the bytes as the body) verified while it streams, and cross-repository mounts.
//!
//! The body is wrapped so that bytes which do not hash to the descriptor never complete the
//! request: the last chunk is held back until the digest is checked, and a mismatch (or a source
//! failure) makes the body fail instead of ending, so the registry commits nothing. A failed
//! attempt cancels its session (`DELETE`) and a retryable failure starts the upload again from
//! byte 0 (a streamed body cannot be replayed).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;
use url::Url;

use super::challenge::{pull_scope, push_scope};
use super::client::{location, Req};
use super::errors::Ctx;
use super::manifests::content_digest;
use super::retry::{self, Failure};
use super::stats::{Counters, Kind};
use super::RegistryStore;
use crate::digest::DigestHasher;
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;
use crate::store::{BlobSource, BlobStream};

/// Uploads a blob, retrying the whole upload on retryable failures. Returns the bytes sent by
/// the attempt that succeeded.
pub(super) async fn put(
    store: &RegistryStore,
    desc: &Descriptor,
    source: &dyn BlobSource,
) -> Result<u64> {
    let ctx = store.ctx(Op::UploadBlob, desc.digest.to_string());
    let inner = store.inner();
    retry::run(&inner.retry, inner.subject(&ctx), || {
        upload_once(store, &ctx, desc, source)
    })
    .await
}

async fn upload_once(
    store: &RegistryStore,
    ctx: &Ctx,
    desc: &Descriptor,
    source: &dyn BlobSource,
) -> std::result::Result<u64, Failure> {
    let session = start(store, ctx).await?;
    let result = send_body(store, ctx, desc, source, &session).await;
    if result.is_err() {
        cancel(store, ctx, &session).await;
    }
    result
}

/// `POST /v2/<name>/blobs/uploads/` → the session's `Location`.
async fn start(store: &RegistryStore, ctx: &Ctx) -> std::result::Result<Url, Failure> {
    let url = store.url("blobs/uploads/");
    let req = Req::new(
        Method::POST,
        url.clone(),
        vec![push_scope(&store.repository)],
        Kind::UploadStart,
    )
    .body(Bytes::new());
    let resp = store.inner().try_once(ctx, &req, &[202]).await?;
    location(&url, resp.headers()).ok_or_else(|| {
        Failure::from(
            ctx.transport_message(
                "the registry opened an upload session without a Location".into(),
            ),
        )
    })
}

/// `PUT <location>&digest=<d>` with the source's bytes streamed as the body.
async fn send_body(
    store: &RegistryStore,
    ctx: &Ctx,
    desc: &Descriptor,
    source: &dyn BlobSource,
    session: &Url,
) -> std::result::Result<u64, Failure> {
    // The source retries on its own; what reaches us from it is final.
    let stream = source.open(0).await.map_err(Failure::fatal)?;
    let failure = Arc::new(Mutex::new(None));
    let body = Verify {
        inner: stream,
        hasher: DigestHasher::new(),
        desc: desc.clone(),
        location: ctx.location(),
        failure: failure.clone(),
        stats: store.client.inner.clone(),
        done: false,
    };
    let request = put_request(store, desc, session).await?;
    store.inner().stats.request(Kind::Other);
    let sent = request.body(reqwest::Body::wrap_stream(body)).send().await;
    if let Some(e) = failure.lock().unwrap().take() {
        return Err(Failure::fatal(e));
    }
    let resp = sent.map_err(|e| ctx.transport(e))?;
    if !matches!(resp.status().as_u16(), 201 | 204) {
        let retry_after = super::client::retry_after(resp.headers());
        return Err(Failure::after(ctx.status_error(resp).await, retry_after));
    }
    match content_digest(resp.headers()) {
        Some(stored) if stored != desc.digest => Err(Failure::fatal(mismatch(
            &ctx.location(),
            desc,
            &stored,
            desc.size,
        ))),
        _ => Ok(desc.size),
    }
}

/// The closing `PUT` of a session, without its body; credentials only for the registry's origin.
async fn put_request(
    store: &RegistryStore,
    desc: &Descriptor,
    session: &Url,
) -> std::result::Result<reqwest::RequestBuilder, Failure> {
    let inner = store.inner();
    let mut url = session.clone();
    url.query_pairs_mut()
        .append_pair("digest", &desc.digest.to_string());
    let mut b = inner
        .http
        .put(url.clone())
        .header(CONTENT_TYPE, "application/octet-stream");
    if desc.size > 0 {
        // Registries behind some proxies refuse chunked bodies; an empty blob goes chunked so that
        // the body is still polled to its end (and verified).
        b = b.header(CONTENT_LENGTH, desc.size);
    }
    let scopes = [push_scope(&store.repository)];
    match inner.auth_for(&url, &scopes).await {
        Ok(Some(auth)) => Ok(b.header(reqwest::header::AUTHORIZATION, auth)),
        Ok(None) => Ok(b),
        Err(e) => Err(Failure::fatal(e)),
    }
}

/// Cancels an upload session; failures are ignored (the registry expires sessions anyway).
async fn cancel(store: &RegistryStore, ctx: &Ctx, session: &Url) {
    let req = Req::new(
        Method::DELETE,
        session.clone(),
        vec![push_scope(&store.repository)],
        Kind::Other,
    );
    let cancel_ctx = ctx.with_op(Op::UploadBlob, format!("{} (cancel)", ctx.target));
    if let Err(e) = store
        .inner()
        .try_once(&cancel_ctx, &req, &[200, 202, 204, 404])
        .await
    {
        tracing::debug!(registry = %ctx.registry, error = %e.error, "cancelling an upload session failed");
    }
}

/// Mounts `desc` from `from` into this repository. 201 → mounted; 202 → the registry opened an
/// upload session instead (cancelled here); 401/403/404 or a refused token → not mounted.
pub(super) async fn mount(store: &RegistryStore, desc: &Descriptor, from: &str) -> Result<bool> {
    if from == store.repository {
        return Ok(false);
    }
    let ctx = store.ctx(Op::MountBlob, desc.digest.to_string());
    let mut url = store.url("blobs/uploads/");
    url.query_pairs_mut()
        .append_pair("mount", &desc.digest.to_string())
        .append_pair("from", from);
    let scopes = vec![push_scope(&store.repository), pull_scope(from)];
    let req = Req::new(Method::POST, url.clone(), scopes, Kind::Mount).body(Bytes::new());
    let accept = [201, 202, 401, 403, 404];
    let resp = match store.inner().execute(&ctx, &req, &accept).await {
        Ok(r) => r,
        Err(e @ Error::Auth { .. }) => {
            tracing::debug!(registry = %ctx.registry, from, error = %e, "mount not authorised; uploading instead");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match resp.status().as_u16() {
        201 => {
            store.inner().stats.add_mounted();
            Ok(true)
        }
        202 => {
            if let Some(session) = location(&url, resp.headers()) {
                cancel(store, &ctx, &session).await;
            }
            Ok(false)
        }
        status => {
            tracing::debug!(registry = %ctx.registry, from, status, "mount refused; uploading instead");
            Ok(false)
        }
    }
}

fn mismatch(location: &str, desc: &Descriptor, actual: &crate::Digest, size: u64) -> Error {
    Error::DigestMismatch {
        location: location.to_string(),
        expected: desc.digest.clone(),
        expected_size: desc.size,
        actual: actual.clone(),
        actual_size: size,
    }
}

/// The upload body: counts and hashes the source's bytes, and fails instead of ending when they
/// do not match the descriptor. Each chunk is checked before it is handed on, so a chunk that
/// passes the descriptor's size, or completes it with the wrong digest, never reaches the
/// registry. A mismatch reports the digest and size of what was seen up to that point.
struct Verify {
    inner: BlobStream,
    hasher: DigestHasher,
    desc: Descriptor,
    location: String,
    /// Why the body failed, for the caller (reqwest only sees an opaque I/O error).
    failure: Arc<Mutex<Option<Error>>>,
    stats: Arc<super::client::Inner>,
    done: bool,
}

impl Verify {
    fn fail(&mut self, e: Error) -> Poll<Option<std::result::Result<Bytes, std::io::Error>>> {
        let msg = e.to_string();
        *self.failure.lock().unwrap() = Some(e);
        self.done = true;
        Poll::Ready(Some(Err(std::io::Error::other(msg))))
    }

    /// The mismatch error, if the bytes seen so far already contradict the descriptor.
    fn check(&self, at_end: bool) -> Option<Error> {
        let seen = self.hasher.len();
        if seen < self.desc.size && !at_end {
            return None;
        }
        let (actual, size) = self.hasher.clone().finish();
        if actual == self.desc.digest && size == self.desc.size {
            return None;
        }
        Some(mismatch(&self.location, &self.desc, &actual, size))
    }

    fn counters(&self) -> &Counters {
        &self.stats.stats
    }
}

impl Stream for Verify {
    type Item = std::result::Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            return match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Err(e))) => this.fail(e),
                Poll::Ready(Some(Ok(b))) if b.is_empty() => continue,
                Poll::Ready(Some(Ok(b))) => {
                    this.hasher.update(&b);
                    if let Some(e) = this.check(false) {
                        return this.fail(e);
                    }
                    this.counters().add_uploaded(b.len() as u64);
                    Poll::Ready(Some(Ok(b)))
                }
                Poll::Ready(None) => match this.check(true) {
                    Some(e) => this.fail(e),
                    None => {
                        this.done = true;
                        Poll::Ready(None)
                    }
                },
            };
        }
    }
}
