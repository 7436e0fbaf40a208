//! Chunked and streamed uploads, resumed instead of restarted.
//!
//! The loop sends the next piece from the acknowledged offset: a chunk (`PATCH` with
//! `Content-Range`, the last one on the closing `PUT`) or, streamed, everything left in one
//! `PATCH`. Only our own count moves the offset forward (ECR's `Range` after a `PATCH` can be
//! stale). After a failure the registry is asked where the upload stands, and the source is
//! re-read from the last acknowledged offset, re-hashing (not sending) up to the registry's;
//! refusals of a chunk's size change the chunk size; a lost session starts over. A monolithic
//! upload that broke off hands its session over, and the upload goes on from where it stands.
//! What each failure means is the retry engine's decision ([`Budget::decide`]).

use std::sync::Arc;

use super::super::transport::headers::{header_str, parse_range};
use super::super::transport::retry::{Attempt, Decision, Failure};
use super::super::transport::stats::UploadEvent;
use super::super::transport::Transport;
use super::feed::{Feed, Slot, Tally};
use super::session::{Send, Session};
use super::{Stop, Upload};
use crate::error::Error;

type Step = std::result::Result<(), Stop>;

/// A resumable upload in progress.
struct Run<'u, 'a> {
    up: &'u mut Upload<'a>,
    transport: Arc<Transport>,
    session: Session,
    chunked: bool,
    chunk: u64,
    /// Bytes the registry acknowledged.
    confirmed: u64,
    /// The hash of those bytes.
    snapshot: Tally,
    /// The source positioned at `confirmed` (or wherever a failed request left it).
    feed: Option<Feed>,
}

/// Uploads in chunks (`chunked`) or as one stream, resuming after failures. `carried` is what
/// a monolithic attempt that broke off left: its session (or `None` when it is gone).
pub(super) async fn upload(
    up: &mut Upload<'_>,
    chunked: bool,
    carried: Option<Option<Box<Session>>>,
) -> Step {
    let transport = up.repo.shared_transport();
    // The session first: its answer may announce the registry's minimum chunk length.
    let (session, resume_at) = match carried {
        Some(Some(mut s)) => match s.status().await {
            Ok(Some(at)) if at <= up.desc.size => (*s, Some(at)),
            Ok(_) => {
                if up.from_journal {
                    tracing::info!(registry = %up.ctx.registry, digest = %up.desc.digest,
                        "the registry no longer has the session a previous run left (some drop a session after a partial write); sending the blob again");
                }
                s.close();
                up.restarted();
                (open(up).await?, None)
            }
            Err(e) if up.from_journal => {
                tracing::debug!(registry = %up.ctx.registry, error = %e,
                    "the session a previous run left cannot be asked; starting anew");
                s.cancel().await;
                up.restarted();
                (open(up).await?, None)
            }
            Err(e) => {
                s.cancel().await;
                return Err(Stop::Failed(e));
            }
        },
        Some(None) => {
            up.restarted();
            (open(up).await?, None)
        }
        None => (open(up).await?, None),
    };
    let chunk = match chunked.then(|| chunk_size(up)) {
        None => u64::MAX,
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            session.cancel().await;
            return Err(Stop::Refused(e));
        }
    };
    let snapshot = Tally::start(up.settings.verify);
    let mut run = Run {
        up,
        transport,
        session,
        chunked,
        chunk,
        confirmed: 0,
        snapshot,
        feed: None,
    };
    let mut result = match resume_at {
        Some(at) => run.resume(Some(at), None).await,
        None => run.reposition(0, None).await,
    };
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
    let (session, min) = Session::start(up.repo, &up.ctx)
        .await
        .map_err(Stop::Failed)?;
    if let Some(m) = min {
        up.learn(|p| p.announced_min(m));
    }
    Ok(session)
}

fn chunk_size(up: &Upload<'_>) -> std::result::Result<u64, Error> {
    let profile = up.profile();
    profile.chunk_size(&up.settings).ok_or_else(|| {
        Error::Upload {
            location: up.ctx.location(),
            digest: up.desc.digest.clone(),
            reason: format!(
                "no chunk size fits between the registry's minimum ({:?} bytes) and the largest allowed ({} bytes)",
                profile.min_chunk,
                profile.max_chunk.unwrap_or(up.settings.max_chunk_size)
            ),
        }
    })
}

impl<'a> Run<'_, 'a> {
    async fn drive(&mut self) -> Step {
        loop {
            let (how, len) = self.next_piece();
            let closing = matches!(how, Send::Put { .. });
            let feed = self.feed.take().expect("a positioned feed");
            if closing && len == 0 {
                feed.verify_complete().map_err(Stop::Failed)?;
            }
            self.up.budget.start_attempt();
            let slot = Slot::new(feed, self.up.sent.clone());
            let piece = slot.piece(len, self.transport.clone());
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
                    self.up.budget.progress();
                }
                Err(f) => {
                    if self.recover(f, len, closing, feed).await? {
                        self.up.budget.progress();
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
        if let Some(j) = &mut self.up.journal {
            j.record(&self.session.url, self.confirmed);
        }
        let said = parse_range(range);
        if range.is_some() && said != self.confirmed {
            tracing::debug!(registry = %self.up.ctx.registry, digest = %self.up.desc.digest,
                sent = self.confirmed, range = ?range, "the registry's Range disagrees with what it accepted; going by the bytes sent");
        }
    }

    /// After a failed request: the engine decides; this waits and puts the upload back on its
    /// feet. `Ok(true)` when the chunk size changed (a fresh budget), `Ok(false)` for a
    /// retry, `Err` when this strategy is over.
    async fn recover(
        &mut self,
        f: Failure,
        len: u64,
        closing: bool,
        feed: Option<Feed>,
    ) -> std::result::Result<bool, Stop> {
        let status = f.status();
        match self.up.budget.decide(Attempt::Piece, &f) {
            Decision::GiveUp => Err(Stop::Failed(self.up.budget.give_up(f))),
            Decision::Refused if status == Some(413) => {
                self.too_large(f.error, len, closing, feed).await?;
                Ok(true)
            }
            Decision::Refused => self.refused(f.error, len, closing, feed).await,
            Decision::Restart(delay) => {
                self.up.wait(delay, &f.error).await;
                self.session.close();
                self.restart().await.map(|()| false)
            }
            Decision::Resume(delay) | Decision::Retry(delay) => {
                if status == Some(416) {
                    // Out of range: either the registry holds other bytes than we think (resume
                    // there), or it refuses the chunk's size at the right offset.
                    let at = self.status().await?;
                    if at == Some(self.confirmed) {
                        self.too_large(f.error, len, closing, feed).await?;
                        return Ok(true);
                    }
                    self.up.wait(delay, &f.error).await;
                    return self.resume(at, feed).await.map(|()| false);
                }
                self.up.wait(delay, &f.error).await;
                let at = self.status().await?;
                self.resume(at, feed).await.map(|()| false)
            }
        }
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
        self.snapshot = self.snapshot.restart();
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
                    self.snapshot.restart()
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
