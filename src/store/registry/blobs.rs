//! Reading blobs: HEAD for presence, GET streamed from an offset (`Range`), resumed from where it
//! broke off when the connection drops mid-body (`Range: bytes=N-`; a server that ignores it
//! answers 200 and its first N bytes are skipped, so no byte is yielded twice). Resumes go
//! through the retry engine: one budget per read, counted from the last byte received, with
//! `Retry-After` honoured when a re-open is answered with one.

use futures::stream::{self, BoxStream};
use futures::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::Method;

use super::repo::Repo;
use super::transport::errors::Ctx;
use super::transport::headers::{header_str, header_u64};
use super::transport::retry::{Attempt, Budget, Decision, Failure};
use super::transport::stats::Kind;
use super::transport::Req;
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;
use crate::store::BlobStream;

fn blob_req(repo: &Repo, method: Method, desc: &Descriptor, kind: Kind) -> Req {
    let url = repo.url(&format!("blobs/{}", desc.digest));
    Req::new(method, url, repo.pull(), kind)
}

/// HEAD the blob: 200 → present, 404 → absent.
pub async fn has(repo: &Repo, desc: &Descriptor) -> Result<bool> {
    let ctx = repo.ctx(Op::HeadBlob, desc.digest.to_string());
    let req = blob_req(repo, Method::HEAD, desc, Kind::BlobHead);
    let resp = repo.transport().execute(&ctx, &req, &[200, 404]).await?;
    if resp.status() == 404 {
        return Ok(false);
    }
    let size = header_u64(resp.headers(), reqwest::header::CONTENT_LENGTH);
    if size.is_some_and(|s| s != desc.size) {
        tracing::warn!(registry = %ctx.registry, repository = %ctx.repository, digest = %desc.digest,
            expected = desc.size, actual = ?size, "blob present with a size other than its descriptor's");
    }
    Ok(true)
}

/// The blob's bytes from `offset`; a body that breaks off is resumed with a `Range` request.
/// Bytes are not verified here.
pub async fn open(repo: &Repo, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
    let ctx = repo.ctx(Op::GetBlob, desc.digest.to_string());
    let first = if offset > 0 && offset >= desc.size {
        stream::empty().boxed()
    } else {
        let resp = repo
            .transport()
            .execute(&ctx, &get_req(repo, desc, offset), &[200, 206, 404])
            .await?;
        body_from(repo, &ctx, desc, resp, offset)?
    };
    let state = Resume {
        repo: repo.clone(),
        ctx,
        desc: desc.clone(),
        pos: offset,
        inner: Some(first),
        budget: Budget::new(repo.transport().policy()),
        stalled_at: offset,
    };
    Ok(stream::unfold(state, Resume::next).boxed())
}

fn get_req(repo: &Repo, desc: &Descriptor, offset: u64) -> Req {
    let req = blob_req(repo, Method::GET, desc, Kind::BlobGet);
    if offset > 0 {
        return req.header(RANGE, &format!("bytes={offset}-"));
    }
    req
}

/// The body of a GET from `offset` as a stream that starts exactly at `offset`, whatever the
/// server did with the `Range` (a 200 gets its first `offset` bytes skipped).
fn body_from(
    repo: &Repo,
    ctx: &Ctx,
    desc: &Descriptor,
    resp: reqwest::Response,
    offset: u64,
) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
    let skip = match resp.status().as_u16() {
        404 => {
            return Err(Error::NotFound {
                what: format!("blob {}", desc.digest),
                location: ctx.location(),
            })
        }
        206 => {
            check_range_start(ctx, header_str(resp.headers(), CONTENT_RANGE), offset)?;
            0
        }
        _ => offset,
    };
    let transport = repo.shared_transport();
    let ctx = ctx.clone();
    let body = resp.bytes_stream().map(move |r| {
        r.inspect(|b| transport.stats().add_downloaded(b.len() as u64))
            .map_err(|e| ctx.transport(e))
    });
    Ok(skip_bytes(body.boxed(), skip))
}

/// A 206 must start where we asked (`bytes START-END/TOTAL`).
fn check_range_start(ctx: &Ctx, content_range: Option<&str>, offset: u64) -> Result<()> {
    match super::transport::headers::content_range_start(content_range) {
        Some(s) if s != offset => Err(ctx.transport_message(format!(
            "asked for bytes from {offset}, the registry sent a range starting at {s}"
        ))),
        _ => Ok(()),
    }
}

/// Drops the first `n` bytes of a stream.
fn skip_bytes(
    s: BoxStream<'static, Result<bytes::Bytes>>,
    n: u64,
) -> BoxStream<'static, Result<bytes::Bytes>> {
    if n == 0 {
        return s;
    }
    let mut left = n;
    s.filter_map(move |r| {
        let out = match r {
            Ok(mut b) if left > 0 => {
                let cut = left.min(b.len() as u64);
                left -= cut;
                let rest = b.split_off(cut as usize);
                (!rest.is_empty()).then_some(Ok(rest))
            }
            other => Some(other),
        };
        futures::future::ready(out)
    })
    .boxed()
}

/// The state of a resumable blob read.
struct Resume {
    repo: Repo,
    ctx: Ctx,
    desc: Descriptor,
    /// Offset of the next byte to yield.
    pos: u64,
    inner: Option<BoxStream<'static, Result<bytes::Bytes>>>,
    /// Counted from the last progress: a long read that breaks off now and then goes on.
    budget: Budget,
    /// `pos` at the last failure: bytes since then are progress (checked when the next failure
    /// comes, not per chunk).
    stalled_at: u64,
}

impl Resume {
    async fn next(mut self) -> Option<(Result<bytes::Bytes>, Self)> {
        loop {
            let inner = self.inner.as_mut()?;
            let err = match inner.next().await {
                Some(Ok(b)) => {
                    self.pos += b.len() as u64;
                    return Some((Ok(b), self));
                }
                // A clean end before the descriptor's size is a truncation: resume it too.
                None if self.pos >= self.desc.size => return None,
                None => self.ctx.transport_message(format!(
                    "the body ended at byte {} of {}",
                    self.pos, self.desc.size
                )),
                Some(Err(e)) => e,
            };
            self.inner = None;
            match self.resume(Failure::from(err)).await {
                Ok(s) => self.inner = Some(s),
                Err(e) => return Some((Err(e), self)),
            }
        }
    }

    /// Re-opens at `pos` after a failure, for as long as the engine says retry.
    async fn resume(&mut self, mut failure: Failure) -> Result<BlobStream> {
        if self.pos > self.stalled_at {
            self.budget.progress();
        }
        self.stalled_at = self.pos;
        loop {
            self.budget.start_attempt();
            let Decision::Retry(delay) = self.budget.decide(Attempt::Request, &failure) else {
                return Err(self.budget.give_up(failure));
            };
            tracing::warn!(registry = %self.ctx.registry, op = %Op::GetBlob, digest = %self.desc.digest,
                offset = self.pos, attempt = self.budget.attempts(), reason = %failure.error,
                "resuming blob read");
            let transport = self.repo.transport();
            transport.stats().add_retry();
            tokio::time::sleep(delay).await;
            let req = get_req(&self.repo, &self.desc, self.pos);
            failure = match transport.attempt(&self.ctx, &req, &[200, 206, 404]).await {
                Ok(resp) => return body_from(&self.repo, &self.ctx, &self.desc, resp, self.pos),
                Err(f) => f,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn skipping_across_chunks() {
        let chunks: Vec<Result<Bytes>> = vec![Ok("abc".into()), Ok("de".into()), Ok("fgh".into())];
        let s = skip_bytes(stream::iter(chunks).boxed(), 4);
        let out: Vec<Bytes> = s.map(|r| r.unwrap()).collect().await;
        assert_eq!(out, vec![Bytes::from("e"), Bytes::from("fgh")]);
    }

    #[test]
    fn range_start_checked() {
        let ctx = Ctx {
            registry: "r".into(),
            repository: "a".into(),
            op: Op::GetBlob,
            target: "d".into(),
        };
        assert!(check_range_start(&ctx, Some("bytes 10-99/100"), 10).is_ok());
        assert!(check_range_start(&ctx, Some("bytes 0-99/100"), 10).is_err());
        assert!(check_range_start(&ctx, None, 10).is_ok());
    }
}
