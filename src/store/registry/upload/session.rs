//! One upload session at the registry: opening it (`POST`), sending a piece (`PATCH` or the
//! closing `PUT`), asking where it stands (`GET`), and cancelling it (`DELETE`), also when the
//! upload is dropped half-way. Every answer may move the session's `Location`; the newest one is
//! always used (distribution refuses a stale one). Requests go through the transport; what a
//! failure means is the upload engine's decision.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{Method, Response};
use url::Url;

use super::super::repo::Repo;
use super::super::transport::errors::Ctx;
use super::super::transport::headers::{
    content_digest, header_str, header_u64, location, parse_range,
};
use super::super::transport::retry::Failure;
use super::super::transport::stats::Kind;
use super::super::transport::Req;
use super::feed::Piece;
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;

/// `OCI-Chunk-Min-Length`: the smallest non-final chunk the registry takes.
const CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";

/// An open upload session; cancelled (`DELETE`) when dropped before it was committed.
pub struct Session {
    repo: Repo,
    ctx: Ctx,
    /// The newest `Location`.
    pub url: Url,
    open: bool,
}

/// What a `POST` that carried the blob led to.
pub enum Posted {
    /// The registry stored the blob (single-request upload).
    Created,
    /// It opened a session instead (the body was ignored).
    Session(Box<Session>),
}

/// How a piece is sent.
pub enum Send<'a> {
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
    /// Like every replayable request, it is retried by the transport.
    pub async fn start(repo: &Repo, ctx: &Ctx) -> Result<(Session, Option<u64>)> {
        let url = repo.url("blobs/uploads/");
        let req =
            Req::new(Method::POST, url.clone(), repo.push(), Kind::UploadStart).body(Bytes::new());
        let resp = repo.transport().execute(ctx, &req, &[202]).await?;
        let min = header_u64(resp.headers(), CHUNK_MIN_LENGTH).filter(|m| *m > 0);
        let session = Session::at(repo, ctx, &url, resp.headers())?;
        Ok((session, min))
    }

    /// `POST ?digest=` with the whole (small, verified) blob: stored at once, or a session.
    pub async fn post_blob(
        repo: &Repo,
        ctx: &Ctx,
        desc: &Descriptor,
        body: Bytes,
    ) -> Result<Posted> {
        let mut url = repo.url("blobs/uploads/");
        url.query_pairs_mut()
            .append_pair("digest", &desc.digest.to_string());
        let req = Req::new(Method::POST, url.clone(), repo.push(), Kind::UploadStart)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let resp = repo.transport().execute(ctx, &req, &[201, 202]).await?;
        if resp.status() == 201 {
            check_stored(ctx, desc, resp.headers())?;
            return Ok(Posted::Created);
        }
        let session = Session::at(repo, ctx, &url, resp.headers())?;
        Ok(Posted::Session(Box::new(session)))
    }

    /// A session opened by an earlier process (its `Location` from the upload journal).
    pub fn resume(repo: &Repo, ctx: &Ctx, url: Url) -> Session {
        Session {
            repo: repo.clone(),
            ctx: ctx.clone(),
            url,
            open: true,
        }
    }

    fn at(repo: &Repo, ctx: &Ctx, base: &Url, headers: &HeaderMap) -> Result<Session> {
        let url = location(base, headers).ok_or_else(|| Error::BadAnswer {
            op: ctx.op,
            registry: ctx.registry.clone(),
            repository: ctx.repository.clone(),
            target: ctx.target.clone(),
            reason: "the registry opened an upload session without a Location".into(),
        })?;
        Ok(Session {
            repo: repo.clone(),
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
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
        if let Send::Patch {
            range: Some((start, end)),
        }
        | Send::Put {
            range: Some((start, end)),
            ..
        } = how
        {
            if let Ok(v) = HeaderValue::from_str(&format!("{start}-{end}")) {
                headers.insert(CONTENT_RANGE, v);
            }
        }
        let body = if len == 0 {
            reqwest::Body::from(Bytes::new())
        } else {
            reqwest::Body::wrap_stream(piece)
        };
        let scopes = self.repo.push();
        let resp = self
            .repo
            .transport()
            .send_stream(
                &self.ctx, method, &url, headers, body, &scopes, kind, accept,
            )
            .await?;
        if let Send::Put { desc, .. } = how {
            check_stored(&self.ctx, desc, resp.headers()).map_err(Failure::settled)?;
            self.open = false;
        } else if let Some(next) = location(&self.url, resp.headers()) {
            self.url = next;
        }
        Ok(resp)
    }

    /// Where the upload stands (`GET <location>` → `Range`): bytes the registry holds, or `None`
    /// when the session is gone. Retried by the transport like any replayable request.
    pub async fn status(&mut self) -> Result<Option<u64>> {
        let req = Req::new(Method::GET, self.url.clone(), self.repo.push(), Kind::Other);
        let ctx = self
            .ctx
            .with_op(Op::UploadBlob, format!("{} (status)", self.ctx.target));
        let resp = self
            .repo
            .transport()
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
        cancel(&self.repo, &self.ctx, &self.url).await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        // Tracked: an interrupted run waits for this DELETE before the process exits.
        let (repo, ctx, url) = (self.repo.clone(), self.ctx.clone(), self.url.clone());
        crate::cancel::spawn_cleanup(async move { cancel(&repo, &ctx, &url).await });
    }
}

/// `DELETE <session>`, failures logged and ignored.
pub(super) async fn cancel(repo: &Repo, ctx: &Ctx, session: &Url) {
    let req = Req::new(Method::DELETE, session.clone(), repo.push(), Kind::Other);
    let cancel_ctx = ctx.with_op(Op::UploadBlob, format!("{} (cancel)", ctx.target));
    if let Err(e) = repo
        .transport()
        .attempt(&cancel_ctx, &req, &[200, 202, 204, 404])
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
