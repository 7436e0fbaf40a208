//! Chunked and streamed uploads, resumed instead of restarted.
//!
//! The loop sends the next piece from the acknowledged offset: a chunk (`PATCH` with
//! `Content-Range`, the last one on the closing `PUT`) or, streamed, everything left in one
//! `PATCH`. Only our own count moves the offset forward (ECR's `Range` after a `PATCH` can be
//! stale). After a failure the registry is asked where the upload stands, and the source is
//! re-read from the last acknowledged offset, re-hashing (not sending) up to the registry's;
//! refusals of a chunk's size change the chunk size; a lost session starts over.

use std::sync::Arc;

use super::super::client::{header_str, Inner};
use super::super::retry::{Budget, Failure};
use super::super::stats::UploadEvent;
use super::feed::{Feed, Slot};
use super::monolithic::is_refusal;
use super::session::{parse_range, Send, Session};
use super::{Stop, Upload};
use crate::digest::DigestHasher;
use crate::error::Error;

type Step = std::result::Result<(), Stop>;

/// A resumable upload in progress.
struct Run<'u, 'a> {
    up: &'u mut Upload<'a>,
    client: Arc<Inner>,
    session: Session,
    chunked: bool,
    chunk: u64,
    /// Bytes the registry acknowledged.
    confirmed: u64,
    /// The hash of those bytes.
    snapshot: DigestHasher,
    /// The source positioned at `confirmed` (or wherever a failed request left it).
    feed: Option<Feed>,
}

/// Uploads in chunks (`chunked`) or as one stream, resuming after failures.
pub(super) async fn upload(up: &mut Upload<'_>, chunked: bool) -> Step {
    let client = up.store.client.inner.clone();
    // The session first: its answer may announce the registry's minimum chunk length.
    let session = open(up).await?;
    let chunk = match chunked.then(|| chunk_size(up)) {
        None => u64::MAX,
        Some(Ok(c)) => c,
        Some(Err(stop)) => {
            session.cancel().await;
            return Err(stop);
        }
    };
    let mut run = Run {
        up,
        client,
        session,
        chunked,
        chunk,
        confirmed: 0,
        snapshot: DigestHasher::new(),
        feed: None,
    };
    let mut result = run.reposition(0, None).await;
    if result.is_ok() {
        result = run.drive().await;
    }
    if result.is_err() {
        run.session.cancel().await;
    }
    result
}

/// `POST` a session and learn the registry's minimum chunk length.
async fn open(up: &Upload<'_>) -> std::result::Result<Session, Stop> {
    let (session, min) = Session::start(up.store, &up.ctx)
        .await
        .map_err(Stop::Failed)?;
    if let Some(m) = min {
        up.learn(|p| p.announced_min(m));
    }
    Ok(session)
}

fn chunk_size(up: &Upload<'_>) -> std::result::Result<u64, Stop> {
    let profile = up.profile();
    profile.chunk_size(&up.settings).ok_or_else(|| {
        Stop::Refused(Error::Invalid(format!(
            "{}: no chunk size fits between the registry's minimum ({:?} bytes) and the largest allowed ({:?} bytes)",
            up.ctx.registry, profile.min_chunk, profile.max_chunk.unwrap_or(up.settings.max_chunk_size)
        )))
    })
}

impl<'a> Run<'_, 'a> {
    async fn drive(&mut self) -> Step {
        let policy = self.client.retry.clone();
        let mut budget = Budget::new(&policy);
        loop {
            let (how, len) = self.next_piece();
            let closing = matches!(how, Send::Put { .. });
            let feed = self.feed.take().expect("a positioned feed");
            if closing && len == 0 {
                feed.verify_complete().map_err(Stop::Failed)?;
            }
            budget.start_attempt();
            let slot = Slot::new(feed, self.up.sent.clone());
            let piece = slot.piece(len, self.client.clone());
            let result = self.session.send(how, piece, len).await;
            if let Some(e) = slot.failure() {
                return Err(Stop::Failed(e));
            }
            let feed = slot.take();
            match result {
                Ok(_) if closing => return Ok(()),
                Ok(resp) => {
                    let feed = feed.ok_or_else(|| Stop::Failed(self.lost_feed()))?;
                    self.acknowledged(feed, len, header_str(resp.headers(), "range"));
                    budget = Budget::new(&policy);
                }
                Err(f) => {
                    if self.recover(f, &mut budget, len, closing, feed).await? {
                        budget = Budget::new(&policy);
                    }
                }
            }
        }
    }

    /// The next request and how many bytes it carries.
    fn next_piece(&self) -> (Send<'a>, u64) {
        let desc = self.up.desc;
        let size = desc.size;
        let remaining = size - self.confirmed;
        let start = self.confirmed;
        if remaining == 0 {
            return (Send::Put { desc, range: None }, 0);
        }
        if !self.chunked {
            return (Send::Patch { range: None }, remaining);
        }
        let len = remaining.min(self.chunk);
        let range = Some((start, start + len - 1));
        // The last chunk rides on the closing PUT, unless PUT bodies that large were refused.
        if len == remaining && self.up.profile().put_takes(len) {
            (Send::Put { desc, range }, len)
        } else {
            (Send::Patch { range }, len)
        }
    }

    fn lost_feed(&self) -> Error {
        self.up
            .ctx
            .transport_message("an upload body was dropped before its answer came".into())
    }

    /// A `PATCH` was accepted: `len` more bytes are at the registry.
    fn acknowledged(&mut self, feed: Feed, len: u64, range: Option<&str>) {
        self.confirmed += len;
        self.snapshot = feed.hasher().clone();
        self.feed = Some(feed);
        self.up.report.patches += 1;
        let said = parse_range(range);
        if range.is_some() && said != self.confirmed {
            tracing::debug!(registry = %self.up.ctx.registry, digest = %self.up.desc.digest,
                sent = self.confirmed, range = ?range, "the registry's Range disagrees with what it accepted; going by the bytes sent");
        }
    }

    /// After a failed request: decide, wait if it is a retry, and put the upload back on its
    /// feet. `Ok(true)` when the chunk size changed (a fresh retry budget), `Ok(false)` for a
    /// retry, `Err` when this strategy is over.
    async fn recover(
        &mut self,
        f: Failure,
        budget: &mut Budget<'_>,
        len: u64,
        closing: bool,
        feed: Option<Feed>,
    ) -> std::result::Result<bool, Stop> {
        let e = f.error;
        if f.fatal {
            return Err(Stop::Failed(e));
        }
        match e.status() {
            Some(413) => return self.too_large(e, len, closing, feed).await.map(|()| true),
            Some(416) => {
                let at = self.status().await?;
                if at == Some(self.confirmed) {
                    return self.too_large(e, len, closing, feed).await.map(|()| true);
                }
                self.wait(budget, e, None).await?;
                return self.resume(at, feed).await.map(|()| false);
            }
            Some(s) if is_refusal(s) => return self.refused(e, len, closing, feed).await,
            Some(404) => {
                self.wait(budget, e, None).await?;
                self.session.close();
                return self.restart().await.map(|()| false);
            }
            _ => {}
        }
        if !(e.is_retryable() || e.status() == Some(401)) {
            return Err(Stop::Failed(e.with_attempts(budget.attempts())));
        }
        self.wait(budget, e, f.retry_after).await?;
        let at = self.status().await?;
        self.resume(at, feed).await.map(|()| false)
    }

    /// Waits before the next attempt, or ends the upload when the budget is spent.
    async fn wait(
        &mut self,
        budget: &Budget<'_>,
        e: Error,
        retry_after: Option<std::time::Duration>,
    ) -> Step {
        let n = budget.attempts();
        let Some(delay) = budget.next_delay(retry_after) else {
            return Err(Stop::Failed(e.with_attempts(n)));
        };
        self.up.subject().note_retry(n, delay, &e);
        self.up.report.retries += 1;
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// A piece of `len` bytes was refused for its size (413, or 416 at the right offset). A
    /// closing `PUT` that carried it learns that `PUT` bodies this large are refused (ACR): the
    /// piece goes as a `PATCH` next time. A `PATCH` halves the chunk size (GHCR).
    async fn too_large(&mut self, e: Error, len: u64, closing: bool, feed: Option<Feed>) -> Step {
        if closing && len > 0 {
            self.up.learn(|p| p.monolithic_refused(len));
            tracing::warn!(registry = %self.up.ctx.registry, digest = %self.up.desc.digest, bytes = len,
                reason = %e, "the closing PUT was refused for its size; the last chunk goes as a PATCH");
            let at = self.status().await?;
            return self.resume(at, feed).await;
        }
        let smaller = self
            .chunked
            .then(|| self.up.learn(|p| p.shrink(len)))
            .flatten();
        let Some(chunk) = smaller else {
            if !self.chunked {
                self.up.learn(|p| p.streamed_refused = true);
            }
            return Err(Stop::Refused(e));
        };
        self.chunk_changed(chunk, &e);
        let at = self.status().await?;
        self.resume(at, feed).await
    }

    /// A request was refused (400, 405, ...): a small part may need to grow (ECR), otherwise the
    /// registry does not do this strategy.
    async fn refused(
        &mut self,
        e: Error,
        len: u64,
        closing: bool,
        feed: Option<Feed>,
    ) -> std::result::Result<bool, Stop> {
        if self.chunked && !closing {
            if let Some(chunk) = self.up.learn(|p| p.grow(len)) {
                self.chunk_changed(chunk, &e);
                let at = self.status().await?;
                return self.resume(at, feed).await.map(|()| true);
            }
        }
        if !closing {
            let chunked = self.chunked;
            self.up.learn(|p| {
                if chunked {
                    p.chunked_refused = true;
                } else {
                    p.streamed_refused = true;
                }
            });
        }
        Err(Stop::Refused(e))
    }

    fn chunk_changed(&mut self, chunk: u64, why: &Error) {
        tracing::warn!(registry = %self.up.ctx.registry, digest = %self.up.desc.digest,
            from = self.chunk, to = chunk, reason = %why, "changing the chunk size");
        self.chunk = chunk;
        self.up.report.chunk_size = Some(chunk);
        self.up.event(UploadEvent::ChunkSizeChange);
    }

    /// Where the upload stands: bytes held, or `None` when the session is gone.
    async fn status(&mut self) -> std::result::Result<Option<u64>, Stop> {
        self.session.status().await.map_err(Stop::Failed)
    }

    /// Goes on from `at` bytes (the registry's answer), or starts over when the session is gone
    /// or claims more than the blob.
    async fn resume(&mut self, at: Option<u64>, feed: Option<Feed>) -> Step {
        let Some(at) = at.filter(|n| *n <= self.up.desc.size) else {
            self.session.close();
            return self.restart().await;
        };
        tracing::warn!(registry = %self.up.ctx.registry, op = %self.up.ctx.op, digest = %self.up.desc.digest,
            offset = at, acknowledged = self.confirmed, "resuming the upload where the registry stands");
        self.up.resumed(at);
        self.reposition(at, feed).await
    }

    /// A new session from byte 0.
    async fn restart(&mut self) -> Step {
        let old = std::mem::replace(&mut self.session, open(self.up).await?);
        old.cancel().await;
        tracing::warn!(registry = %self.up.ctx.registry, op = %self.up.ctx.op, digest = %self.up.desc.digest,
            "the upload session is gone; starting over");
        self.up.restarted();
        self.confirmed = 0;
        self.snapshot = DigestHasher::new();
        self.reposition(0, None).await
    }

    /// Puts the feed at `at`, reusing `feed` when it is there already; otherwise re-reads the
    /// source from the acknowledged offset (or 0 when `at` is before it), hashing up to `at`.
    async fn reposition(&mut self, at: u64, feed: Option<Feed>) -> Step {
        let feed = match feed.filter(|f| f.position() == at) {
            Some(f) => f,
            None => {
                let from = if at >= self.confirmed {
                    self.snapshot.clone()
                } else {
                    DigestHasher::new()
                };
                let location = self.up.ctx.location();
                Feed::open(self.up.source, self.up.desc, from, at, &location)
                    .await
                    .map_err(Stop::Failed)?
            }
        };
        self.confirmed = at;
        self.snapshot = feed.hasher().clone();
        self.feed = Some(feed);
        Ok(())
    }
}
