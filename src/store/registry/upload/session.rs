//! One upload session at the registry: opening it (`POST`), sending a piece (`PATCH` or the
//! closing `PUT`), asking where it stands (`GET`), and cancelling it (`DELETE`), also when the
//! upload is dropped half-way. Every answer may move the session's `Location`; the newest one is
//! always used (distribution refuses a stale one).

use bytes::Bytes;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, Response};
use url::Url;

use super::super::auth::Retry;
use super::super::challenge::push_scope;
use super::super::client::{header_str, header_u64, location, retry_after, Req};
use super::super::errors::Ctx;
use super::super::manifests::content_digest;
use super::super::retry::Failure;
use super::super::stats::Kind;
use super::super::RegistryStore;
use super::feed::Piece;
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;

/// `OCI-Chunk-Min-Length`: the smallest non-final chunk the registry takes.
const CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";

/// An open upload session; cancelled (`DELETE`) when dropped before [`Session::committed`].
pub(super) struct Session {
    store: RegistryStore,
    ctx: Ctx,
    /// The newest `Location`.
    pub url: Url,
    open: bool,
}

/// What a `POST` that carried the blob led to.
pub(super) enum Posted {
    /// The registry stored the blob (single-request upload).
    Created,
    /// It opened a session instead (the body was ignored).
    Session(Box<Session>),
}

/// How a piece is sent.
pub(super) enum Send<'a> {
    /// `PATCH`, with `Content-Range: start-end` when `range` is set (chunked), without (streamed).
    Patch { range: Option<(u64, u64)> },
    /// The closing `PUT ?digest=`, carrying the piece (possibly empty), with `Content-Range`
    /// when `range` is set (the last chunk of a chunked upload).
    Put {
        desc: &'a Descriptor,
        range: Option<(u64, u64)>,
    },
}

impl Session {
    /// `POST /v2/<name>/blobs/uploads/` → a session and the registry's minimum chunk length.
    pub async fn start(store: &RegistryStore, ctx: &Ctx) -> Result<(Session, Option<u64>)> {
        let url = store.url("blobs/uploads/");
        let req = Req::new(
            Method::POST,
            url.clone(),
            vec![push_scope(&store.repository)],
            Kind::UploadStart,
        )
        .body(Bytes::new());
        let resp = store.inner().execute(ctx, &req, &[202]).await?;
        let min = header_u64(resp.headers(), CHUNK_MIN_LENGTH).filter(|m| *m > 0);
        let session = Session::at(store, ctx, &url, resp.headers())?;
        Ok((session, min))
    }

    /// `POST ?digest=` with the whole (small, verified) blob: stored at once, or a session.
    pub async fn post_blob(
        store: &RegistryStore,
        ctx: &Ctx,
        desc: &Descriptor,
        body: Bytes,
    ) -> Result<Posted> {
        let mut url = store.url("blobs/uploads/");
        url.query_pairs_mut()
            .append_pair("digest", &desc.digest.to_string());
        let req = Req::new(
            Method::POST,
            url.clone(),
            vec![push_scope(&store.repository)],
            Kind::UploadStart,
        )
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body);
        let resp = store.inner().execute(ctx, &req, &[201, 202]).await?;
        if resp.status() == 201 {
            check_stored(ctx, desc, resp.headers())?;
            return Ok(Posted::Created);
        }
        let session = Session::at(store, ctx, &url, resp.headers())?;
        Ok(Posted::Session(Box::new(session)))
    }

    fn at(store: &RegistryStore, ctx: &Ctx, base: &Url, headers: &HeaderMap) -> Result<Session> {
        let url = location(base, headers).ok_or_else(|| {
            ctx.transport_message("the registry opened an upload session without a Location".into())
        })?;
        Ok(Session {
            store: store.clone(),
            ctx: ctx.clone(),
            url,
            open: true,
        })
    }

    /// Sends `len` bytes of `piece` as `how`. On success the session follows the answer's
    /// `Location`; a closing `PUT` also checks the digest the registry stored.
    pub async fn send(
        &mut self,
        how: Send<'_>,
        piece: Piece,
        len: u64,
    ) -> std::result::Result<Response, Failure> {
        let inner = self.store.inner();
        let (method, url, accept, kind): (_, _, &[u16], _) = match &how {
            Send::Patch { .. } => (
                Method::PATCH,
                self.url.clone(),
                &[201, 202, 204],
                Kind::UploadPatch,
            ),
            Send::Put { desc, .. } => {
                let mut u = self.url.clone();
                u.query_pairs_mut()
                    .append_pair("digest", &desc.digest.to_string());
                (Method::PUT, u, &[201, 204], Kind::Other)
            }
        };
        let mut b = inner
            .http
            .request(method, url.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len);
        if let Send::Patch {
            range: Some((start, end)),
        }
        | Send::Put {
            range: Some((start, end)),
            ..
        } = how
        {
            b = b.header(CONTENT_RANGE, format!("{start}-{end}"));
        }
        let scopes = [push_scope(&self.store.repository)];
        if let Some(auth) = inner
            .auth_for(&url, &scopes)
            .await
            .map_err(Failure::fatal)?
        {
            b = b.header(AUTHORIZATION, auth);
        }
        let body = if len == 0 {
            reqwest::Body::from(Bytes::new())
        } else {
            reqwest::Body::wrap_stream(piece)
        };
        inner.stats.request(kind);
        let resp = b
            .body(body)
            .send()
            .await
            .map_err(|e| self.ctx.transport(e))?;
        let status = resp.status().as_u16();
        if !accept.contains(&status) {
            return Err(self.refused(resp, &scopes).await);
        }
        if let Send::Put { desc, .. } = how {
            check_stored(&self.ctx, desc, resp.headers()).map_err(Failure::fatal)?;
            self.open = false;
        } else if let Some(next) = location(&self.url, resp.headers()) {
            self.url = next;
        }
        Ok(resp)
    }

    /// The failure an unexpected answer means; a 401 that taught how to authenticate again (an
    /// expired token) is worth another attempt.
    async fn refused(&self, resp: Response, scopes: &[String]) -> Failure {
        let inner = self.store.inner();
        if resp.status() == 401 {
            if let Retry::With(_) = inner.auth.on_unauthorized(resp.headers(), scopes, true) {
                return Failure::after(self.ctx.registry_error(401, vec![]), None);
            }
            return Failure::fatal(self.ctx.status_error(resp).await);
        }
        let wait = retry_after(resp.headers());
        Failure::after(self.ctx.status_error(resp).await, wait)
    }

    /// Where the upload stands (`GET <location>` → `Range`): bytes the registry holds, or `None`
    /// when the session is gone.
    pub async fn status(&mut self) -> Result<Option<u64>> {
        let req = Req::new(
            Method::GET,
            self.url.clone(),
            vec![push_scope(&self.store.repository)],
            Kind::Other,
        );
        let ctx = self
            .ctx
            .with_op(Op::UploadBlob, format!("{} (status)", self.ctx.target));
        let resp = self
            .store
            .inner()
            .execute(&ctx, &req, &[200, 204, 404])
            .await?;
        if resp.status() == 404 {
            self.open = false;
            return Ok(None);
        }
        if let Some(next) = location(&self.url, resp.headers()) {
            self.url = next;
        }
        Ok(Some(parse_range(header_str(resp.headers(), "range"))))
    }

    /// The session was committed or is gone: nothing to cancel.
    pub fn close(&mut self) {
        self.open = false;
    }

    /// Cancels the session (`DELETE`); failures are ignored (registries expire sessions anyway).
    pub async fn cancel(mut self) {
        self.open = false;
        cancel(&self.store, &self.ctx, &self.url).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, ctx, url) = (self.store.clone(), self.ctx.clone(), self.url.clone());
            rt.spawn(async move { cancel(&store, &ctx, &url).await });
        }
    }
}

/// `DELETE <session>`, failures logged and ignored.
pub(super) async fn cancel(store: &RegistryStore, ctx: &Ctx, session: &Url) {
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

/// A registry that names the digest it stored must name ours.
pub(super) fn check_stored(ctx: &Ctx, desc: &Descriptor, headers: &HeaderMap) -> Result<()> {
    match content_digest(headers) {
        Some(stored) if stored != desc.digest => Err(Error::DigestMismatch {
            location: ctx.location(),
            expected: desc.digest.clone(),
            expected_size: desc.size,
            actual: stored,
            actual_size: desc.size,
        }),
        _ => Ok(()),
    }
}

/// `Range: 0-<end>` (also `bytes=0-<end>`) → bytes held (`end + 1`). `0-0` and no header mean
/// none: distribution answers `0-0` for an empty session, so a lone first byte would be sent
/// again; nothing else is ambiguous.
pub(super) fn parse_range(v: Option<&str>) -> u64 {
    let Some(v) = v else { return 0 };
    let v = v
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let end = v
        .split_once('-')
        .and_then(|(_, e)| e.split('/').next())
        .and_then(|e| e.trim().parse::<u64>().ok());
    match end {
        Some(0) | None => 0,
        Some(e) => e + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("0-999")), 1000);
        assert_eq!(parse_range(Some("bytes=0-999")), 1000);
        assert_eq!(parse_range(Some("bytes 0-4/5")), 5);
        assert_eq!(parse_range(Some("0-0")), 0);
        assert_eq!(parse_range(Some("junk")), 0);
        assert_eq!(parse_range(None), 0);
    }
}
