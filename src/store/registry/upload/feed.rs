//! The bytes of an upload: the source read front to back, cut into request bodies ("pieces"),
//! counted (and, with `--verify always`, hashed) as they leave, and checked against the
//! descriptor before its last byte goes out.
//!
//! A [`Feed`] is the read position in the source plus the hash of every byte before it. Pieces
//! borrow it through a shared slot ([`Piece`]); after a request the engine takes it back (a body
//! still held by the HTTP stack then finds the slot empty). Nothing is buffered beyond the one
//! frame the source produced last, so memory does not depend on the chunk size.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};

use super::super::transport::Transport;
use super::plan::Verify;
use crate::digest::DigestHasher;
use crate::error::{Error, Result};
use crate::manifest::Descriptor;
use crate::store::{BlobSource, BlobStream};

/// What an upload knows of the bytes before its read position: their hash, or (when the
/// registry's check at commit is relied on, [`Verify::Auto`]) only how many there are.
#[derive(Clone)]
pub(super) enum Tally {
    Hash(DigestHasher),
    Count(u64),
}

impl Tally {
    /// Nothing seen yet, hashing or counting as `verify` says.
    pub fn start(verify: Verify) -> Tally {
        match verify {
            Verify::Always => Tally::Hash(DigestHasher::new()),
            Verify::Auto => Tally::Count(0),
        }
    }

    /// A fresh tally of the same kind.
    pub fn restart(&self) -> Tally {
        match self {
            Tally::Hash(_) => Tally::Hash(DigestHasher::new()),
            Tally::Count(_) => Tally::Count(0),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Tally::Hash(h) => h.len(),
            Tally::Count(n) => *n,
        }
    }

    fn update(&mut self, b: &[u8]) {
        match self {
            Tally::Hash(h) => h.update(b),
            Tally::Count(n) => *n += b.len() as u64,
        }
    }
}

/// A source read position and the tally of everything before it.
pub(super) struct Feed {
    stream: BlobStream,
    /// Bytes read from the source but not yet handed out (a frame cut at a piece boundary).
    leftover: Bytes,
    hasher: Tally,
    desc: Descriptor,
    /// `registry/repository`, for mismatch errors.
    location: String,
    /// The source stream ended (it must not be polled again).
    ended: bool,
}

impl Feed {
    /// Opens the source at `hasher.len()` (the tally of the bytes before it), then reads and
    /// hashes, without handing out, up to `at`; a counting tally opens the source at `at`
    /// directly. Errors from the source are final.
    pub async fn open(
        source: &dyn BlobSource,
        desc: &Descriptor,
        hasher: Tally,
        at: u64,
        location: &str,
    ) -> Result<Feed> {
        let hasher = match hasher {
            Tally::Count(_) => Tally::Count(at),
            h => h,
        };
        let stream = source.open(hasher.len()).await?;
        let mut feed = Feed {
            stream,
            leftover: Bytes::new(),
            hasher,
            desc: desc.clone(),
            location: location.to_string(),
            ended: false,
        };
        while feed.position() < at {
            let want = at - feed.position();
            match feed.next(want).await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(feed)
    }

    /// The next bytes, at most `max` (see [`Feed::poll_take`]).
    pub async fn next(&mut self, max: u64) -> Option<Result<Bytes>> {
        futures::future::poll_fn(|cx| self.poll_take(cx, max)).await
    }

    /// At the blob's end: fails when the source still has bytes (it is longer than the blob).
    pub async fn expect_end(&mut self) -> Result<()> {
        if !self.leftover.is_empty() {
            return self.check_end(self.leftover.len());
        }
        while !self.ended {
            match self.stream.next().await {
                None => self.ended = true,
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => {
                    let mut seen = self.hasher.clone();
                    seen.update(&b);
                    return Err(self.mismatch(seen));
                }
            }
        }
        Ok(())
    }

    /// Offset of the next byte to hand out.
    pub fn position(&self) -> u64 {
        self.hasher.len()
    }

    /// The tally of every byte before [`Feed::position`].
    pub fn hasher(&self) -> &Tally {
        &self.hasher
    }

    /// Checks a feed that reached the end of the blob: the digest must match.
    pub fn verify_complete(&self) -> Result<()> {
        self.check_end(0)
    }

    /// The next bytes, at most `max`; `None` when `max` is 0. Bytes are hashed as they are taken;
    /// taking the blob's last byte checks the digest first (and fails instead on a mismatch), and
    /// a source that ends early or runs past the descriptor's size fails too.
    fn poll_take(&mut self, cx: &mut Context<'_>, max: u64) -> Poll<Option<Result<Bytes>>> {
        if max == 0 {
            return Poll::Ready(None);
        }
        let mut b = std::mem::take(&mut self.leftover);
        while b.is_empty() {
            if self.ended {
                return Poll::Ready(self.at_end());
            }
            b = match self.stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(b))) => b,
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(self.at_end());
                }
            };
        }
        let left_in_blob = self.desc.size.saturating_sub(self.position());
        if b.len() as u64 > left_in_blob {
            // The source runs past the descriptor's size: report what it would hash to.
            let mut seen = self.hasher.clone();
            seen.update(&b);
            return Poll::Ready(Some(Err(self.mismatch(seen))));
        }
        if b.len() as u64 > max {
            self.leftover = b.split_off(max as usize);
        }
        self.hasher.update(&b);
        if self.position() == self.desc.size {
            if let Err(e) = self.check_end(self.leftover.len()) {
                return Poll::Ready(Some(Err(e)));
            }
        }
        Poll::Ready(Some(Ok(b)))
    }

    /// The source ended: fine at the blob's end, a mismatch before it.
    fn at_end(&self) -> Option<Result<Bytes>> {
        if self.position() < self.desc.size {
            return Some(Err(self.mismatch(self.hasher.clone())));
        }
        None
    }

    fn check_end(&self, extra: usize) -> Result<()> {
        let fine = match &self.hasher {
            Tally::Hash(h) => {
                let (actual, size) = h.clone().finish();
                actual == self.desc.digest && size == self.desc.size
            }
            Tally::Count(n) => *n == self.desc.size,
        };
        if extra == 0 && fine {
            return Ok(());
        }
        Err(self.mismatch(self.hasher.clone()))
    }

    fn mismatch(&self, seen: Tally) -> Error {
        match seen {
            Tally::Hash(h) => {
                let (actual, actual_size) = h.finish();
                Error::DigestMismatch {
                    location: self.location.clone(),
                    expected: self.desc.digest.clone(),
                    expected_size: self.desc.size,
                    actual,
                    actual_size,
                }
            }
            Tally::Count(actual) => Error::BlobSizeMismatch {
                location: self.location.clone(),
                digest: self.desc.digest.clone(),
                expected: self.desc.size,
                actual,
            },
        }
    }
}

/// A feed lent to request bodies; the engine takes it back between requests.
#[derive(Clone)]
pub(super) struct Slot {
    feed: Arc<Mutex<Option<Feed>>>,
    /// Why a body failed (the HTTP stack only sees an opaque I/O error).
    failure: Arc<Mutex<Option<Error>>>,
    /// Bytes handed to the network by this upload's bodies.
    sent: Arc<AtomicU64>,
}

impl Slot {
    pub fn new(feed: Feed, sent: Arc<AtomicU64>) -> Slot {
        Slot {
            feed: Arc::new(Mutex::new(Some(feed))),
            failure: Arc::default(),
            sent,
        }
    }

    /// Takes the feed back; `None` if a body failed with it (it is then unusable).
    pub fn take(&self) -> Option<Feed> {
        self.feed.lock().unwrap().take()
    }

    /// The error a body failed with (a source error or a mismatch: final).
    pub fn failure(&self) -> Option<Error> {
        self.failure.lock().unwrap().take()
    }

    /// A request body of the next `len` bytes of the feed.
    pub fn piece(&self, len: u64, transport: Arc<Transport>) -> Piece {
        Piece {
            slot: self.clone(),
            left: len,
            transport,
        }
    }
}

/// One request body: the next `left` bytes of the feed in the slot.
pub struct Piece {
    slot: Slot,
    left: u64,
    transport: Arc<Transport>,
}

impl Stream for Piece {
    type Item = std::result::Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mut guard = this.slot.feed.lock().unwrap();
        let Some(feed) = guard.as_mut() else {
            return Poll::Ready(None);
        };
        match feed.poll_take(cx, this.left) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Ok(b))) => {
                this.left -= b.len() as u64;
                this.transport.stats().add_uploaded(b.len() as u64);
                this.slot.sent.fetch_add(b.len() as u64, Ordering::Relaxed);
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                let msg = e.to_string();
                guard.take();
                *this.slot.failure.lock().unwrap() = Some(e);
                this.left = 0;
                Poll::Ready(Some(Err(std::io::Error::other(msg))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    struct Mem(Bytes, usize);

    #[async_trait]
    impl BlobSource for Mem {
        async fn open(&self, offset: u64) -> Result<BlobStream> {
            let rest = self.0.slice(offset as usize..);
            let step = self.1;
            let frames: Vec<Result<Bytes>> = (0..rest.len())
                .step_by(step)
                .map(|i| Ok(rest.slice(i..(i + step).min(rest.len()))))
                .collect();
            Ok(futures::stream::iter(frames).boxed())
        }
    }

    fn desc_of(b: &[u8]) -> Descriptor {
        Descriptor {
            media_type: String::new(),
            digest: crate::Digest::of(b),
            size: b.len() as u64,
            platform: None,
        }
    }

    async fn take(feed: &mut Feed, max: u64) -> Option<Result<Bytes>> {
        feed.next(max).await
    }

    #[tokio::test]
    async fn pieces_cut_frames_and_resume_rehashes() {
        let data = Bytes::from((0..1000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let desc = desc_of(&data);
        let src = Mem(data.clone(), 300);
        let mut f = Feed::open(&src, &desc, Tally::Hash(DigestHasher::new()), 0, "r/x")
            .await
            .unwrap();
        assert_eq!(take(&mut f, 250).await.unwrap().unwrap().len(), 250);
        let snapshot = f.hasher().clone();
        assert_eq!(take(&mut f, 400).await.unwrap().unwrap().len(), 50);
        // Resume at 700 from the snapshot at 250: bytes 250..700 are hashed again, not sent.
        let mut g = Feed::open(&src, &desc, snapshot, 700, "r/x").await.unwrap();
        assert_eq!(g.position(), 700);
        let mut rest = Vec::new();
        while let Some(b) = take(&mut g, 1000).await {
            rest.extend_from_slice(&b.unwrap());
        }
        assert_eq!(rest, data[700..]);
        g.verify_complete().unwrap();
    }

    #[tokio::test]
    async fn short_long_and_wrong_sources_fail_before_the_last_byte() {
        let data = Bytes::from(vec![7u8; 500]);
        let desc = desc_of(&data);
        for (what, bytes) in [
            ("short", data.slice(..499)),
            ("long", Bytes::from(vec![7u8; 501])),
            ("wrong", Bytes::from(vec![8u8; 500])),
        ] {
            // Frames of 150 bytes: the long source's last frame straddles the blob's end.
            let src = Mem(bytes, 150);
            let mut f = Feed::open(&src, &desc, Tally::Hash(DigestHasher::new()), 0, "r/x")
                .await
                .unwrap();
            let mut out = 0;
            let err = loop {
                match take(&mut f, 1000).await {
                    Some(Ok(b)) => out += b.len(),
                    Some(Err(e)) => break e,
                    None => panic!("{what}: ended without an error"),
                }
            };
            assert!(out < 500, "{what}: the last bytes were handed out");
            assert!(matches!(err, Error::DigestMismatch { .. }), "{what}: {err}");
        }
    }
}
