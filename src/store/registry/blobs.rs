//! Reading blobs: HEAD for presence, GET streamed from an offset (`Range`), resumed from where it
//! broke off when the connection drops mid-body (`Range: bytes=N-`; a server that ignores it
//! answers 200 and its first N bytes are skipped, so no byte is yielded twice). Resumes are
//! bounded per stall: the count restarts once the read made progress.

use futures::stream::{self, BoxStream};
use futures::StreamExt;
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::Method;

use super::challenge::pull_scope;
use super::client::{header_str, header_u64, Req};
use super::errors::Ctx;
use super::stats::Kind;
use super::RegistryStore;
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;
use crate::store::BlobStream;

fn blob_req(store: &RegistryStore, method: Method, desc: &Descriptor, kind: Kind) -> Req {
    let url = store.url(&format!("blobs/{}", desc.digest));
    Req::new(method, url, vec![pull_scope(&store.repository)], kind)
}

/// HEAD the blob: 200 → present, 404 → absent.
pub(super) async fn has(store: &RegistryStore, desc: &Descriptor) -> Result<bool> {
    let ctx = store.ctx(Op::HeadBlob, desc.digest.to_string());
    let req = blob_req(store, Method::HEAD, desc, Kind::BlobHead);
    let resp = store.inner().execute(&ctx, &req, &[200, 404]).await?;
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

/// The blob's bytes from `offset`; a body that breaks off is resumed with a `Range` request
/// (up to the retry policy's attempts). Bytes are not verified here.
pub(super) async fn open(
    store: &RegistryStore,
    desc: &Descriptor,
    offset: u64,
) -> Result<BlobStream> {
    let first = open_at(store, desc, offset).await?;
    let state = Resume {
        store: store.clone(),
        desc: desc.clone(),
        pos: offset,
        inner: Some(first),
        resumes: 0,
        resumed_at: offset,
    };
    Ok(stream::unfold(state, Resume::next).boxed())
}

/// One GET from `offset`: a stream that starts exactly at `offset`, whatever the server did with
/// the `Range` (a 200 gets its first `offset` bytes skipped).
async fn open_at(
    store: &RegistryStore,
    desc: &Descriptor,
    offset: u64,
) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
    if offset > 0 && offset >= desc.size {
        return Ok(stream::empty().boxed());
    }
    let ctx = store.ctx(Op::GetBlob, desc.digest.to_string());
    let mut req = blob_req(store, Method::GET, desc, Kind::BlobGet);
    if offset > 0 {
        req = req.header(RANGE, &format!("bytes={offset}-"));
    }
    let resp = store.inner().execute(&ctx, &req, &[200, 206, 404]).await?;
    let skip = match resp.status().as_u16() {
        404 => {
            return Err(Error::NotFound {
                what: format!("blob {}", desc.digest),
                location: ctx.location(),
            })
        }
        206 => {
            check_range_start(&ctx, header_str(resp.headers(), CONTENT_RANGE), offset)?;
            0
        }
        _ => offset,
    };
    let stats = store.client.inner.clone();
    let body = resp.bytes_stream().map(move |r| {
        r.inspect(|b| stats.stats.add_downloaded(b.len() as u64))
            .map_err(|e| ctx.transport(e))
    });
    Ok(skip_bytes(body.boxed(), skip))
}

/// A 206 must start where we asked (`bytes START-END/TOTAL`).
fn check_range_start(ctx: &Ctx, content_range: Option<&str>, offset: u64) -> Result<()> {
    let start = content_range
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match start {
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
    store: RegistryStore,
    desc: Descriptor,
    /// Offset of the next byte to yield.
    pos: u64,
    inner: Option<BoxStream<'static, Result<bytes::Bytes>>>,
    /// Resumes since the read last made progress (the budget is per stall, so a long read that
    /// breaks off now and then keeps going).
    resumes: u32,
    /// `pos` at the last resume.
    resumed_at: u64,
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
                None => None,
                Some(Err(e)) => Some(e),
            };
            self.inner = None;
            match self.resume(err).await {
                Ok(s) => self.inner = Some(s),
                Err(Some(e)) => return Some((Err(e), self)),
                Err(None) => return None,
            }
        }
    }

    /// Reopens at `pos` after `err` (or a truncation), if the error allows and budget remains.
    async fn resume(
        &mut self,
        err: Option<Error>,
    ) -> std::result::Result<BlobStream, Option<Error>> {
        let policy = &self.store.client.inner.retry;
        let retryable = err.as_ref().is_none_or(|e| e.is_retryable());
        if self.pos > self.resumed_at {
            self.resumes = 0;
        }
        if !retryable || self.resumes + 1 >= policy.max_attempts {
            return Err(err.map(|e| e.with_attempts(self.resumes + 1)));
        }
        self.resumes += 1;
        self.resumed_at = self.pos;
        let delay = policy.backoff(self.resumes);
        tracing::warn!(registry = %self.store.client.host(), op = %Op::GetBlob, digest = %self.desc.digest,
            offset = self.pos, attempt = self.resumes, reason = %err.as_ref().map(|e| e.to_string()).unwrap_or_else(|| "body ended early".into()),
            "resuming blob read");
        self.store.client.inner.stats.add_retry();
        tokio::time::sleep(delay).await;
        open_at(&self.store, &self.desc, self.pos)
            .await
            .map_err(Some)
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
