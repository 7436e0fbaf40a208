//! Monolithic uploads: the whole blob in one request. Small blobs are read into memory and
//! verified first, then offered as one `POST ?digest=` (where the registry stores it at once)
//! or `PUT` on a session; larger ones stream from the source into the closing `PUT`. A failed
//! attempt cancels its session and starts over from byte 0 in a new one (a registry keeps
//! nothing of a `PUT` that broke off).

use bytes::{Bytes, BytesMut};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

use super::super::challenge::push_scope;
use super::super::client::Req;
use super::super::retry::{Budget, Failure};
use super::super::stats::Kind;
use super::feed::{Feed, Slot};
use super::plan::SMALL_BLOB;
use super::session::{check_stored, Posted, Send, Session};
use super::{Stop, Upload};
use crate::digest::DigestHasher;
use crate::error::Result;

/// Uploads the blob in one request, starting over on retryable failures.
pub(super) async fn upload(up: &mut Upload<'_>) -> std::result::Result<(), Stop> {
    let small = if up.desc.size <= SMALL_BLOB {
        Some(read_small(up).await.map_err(Stop::Failed)?)
    } else {
        None
    };
    let store = up.store;
    let mut budget = Budget::new(&store.inner().retry);
    // One probe at a time: while it is out, other small blobs take the ordinary path, so no
    // body is sent twice more than once per registry.
    let mut single = small.is_some()
        && up.learn(|p| match p.single_post {
            Some(works) => works,
            None if p.single_post_probing => false,
            None => {
                p.single_post_probing = true;
                true
            }
        });
    loop {
        budget.start_attempt();
        let result = match &small {
            Some(body) => once_small(up, body.clone(), std::mem::take(&mut single)).await,
            None => once_streamed(up).await,
        };
        let failure = match result {
            Ok(()) => return Ok(()),
            Err(f) => f,
        };
        let e = failure.error;
        let n = budget.attempts();
        if failure.fatal {
            return Err(Stop::Failed(e));
        }
        if e.status().is_some_and(is_refusal) {
            let size = up.desc.size;
            up.learn(|p| {
                p.monolithic_refused(size);
                if e.status() == Some(413) {
                    p.shrink(size);
                }
            });
            return Err(Stop::Refused(e));
        }
        // A lost session (404) is started again like a failed attempt.
        if !e.is_retryable() && e.status() != Some(404) {
            return Err(Stop::Failed(e.with_attempts(n)));
        }
        let Some(delay) = budget.next_delay(failure.retry_after) else {
            return Err(Stop::Failed(e.with_attempts(n)));
        };
        up.subject().note_retry(n, delay, &e);
        up.report.retries += 1;
        tokio::time::sleep(delay).await;
        up.restarted();
    }
}

/// Statuses that refuse the way of uploading rather than the attempt.
pub(super) fn is_refusal(status: u16) -> bool {
    matches!(status, 400 | 405 | 411 | 413 | 415 | 416 | 422 | 501)
}

/// Reads a small blob whole, verified against its descriptor.
async fn read_small(up: &Upload<'_>) -> Result<Bytes> {
    let location = up.ctx.location();
    let mut feed = Feed::open(up.source, up.desc, DigestHasher::new(), 0, &location).await?;
    let mut body = BytesMut::with_capacity(up.desc.size as usize);
    while let Some(b) = feed.next(up.desc.size - feed.position()).await {
        body.extend_from_slice(&b?);
    }
    feed.verify_complete()?;
    feed.expect_end().await?;
    Ok(body.freeze())
}

/// One attempt with the blob in memory: a single `POST ?digest=` (when `single`), else a
/// session and a `PUT` with the body.
async fn once_small(
    up: &mut Upload<'_>,
    body: Bytes,
    single: bool,
) -> std::result::Result<(), Failure> {
    let store = up.store;
    let mut session = if single {
        match post_small(up, body.clone()).await? {
            Some(s) => s,
            None => return Ok(()),
        }
    } else {
        let (s, _) = Session::start(store, &up.ctx)
            .await
            .map_err(Failure::fatal)?;
        s
    };
    let mut url = session.url.clone();
    url.query_pairs_mut()
        .append_pair("digest", &up.desc.digest.to_string());
    let scopes = vec![push_scope(store.repository())];
    let req = Req::new(Method::PUT, url, scopes, Kind::Other)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body.clone());
    up.count_sent(body.len() as u64);
    match store.inner().try_once(&up.ctx, &req, &[201, 204]).await {
        Ok(resp) => {
            session.close();
            check_stored(&up.ctx, up.desc, resp.headers()).map_err(Failure::fatal)
        }
        Err(f) => {
            session.cancel().await;
            Err(f)
        }
    }
}

/// A single `POST ?digest=` with the blob: `None` when the registry stored it, else the
/// session it opened instead. Either answer is remembered for the registry.
async fn post_small(
    up: &mut Upload<'_>,
    body: Bytes,
) -> std::result::Result<Option<Session>, Failure> {
    up.count_sent(body.len() as u64);
    let posted = match Session::post_blob(up.store, &up.ctx, up.desc, body).await {
        Ok(posted) => posted,
        Err(e) => {
            up.learn(|p| p.single_post_probing = false);
            return Err(Failure::fatal(e));
        }
    };
    up.learn(|p| {
        p.single_post = Some(matches!(posted, Posted::Created));
        p.single_post_probing = false;
    });
    match posted {
        Posted::Created => {
            up.report.single_post = true;
            Ok(None)
        }
        Posted::Session(s) => {
            // The registry ignored the body: it goes again on the session.
            up.store.inner().stats.add_probe_resent(up.desc.size);
            Ok(Some(*s))
        }
    }
}

/// One attempt streaming the source into the closing `PUT` of a new session.
async fn once_streamed(up: &mut Upload<'_>) -> std::result::Result<(), Failure> {
    let store = up.store;
    let (mut session, _) = Session::start(store, &up.ctx)
        .await
        .map_err(Failure::fatal)?;
    let location = up.ctx.location();
    let feed = Feed::open(up.source, up.desc, DigestHasher::new(), 0, &location)
        .await
        .map_err(Failure::fatal)?;
    let slot = Slot::new(feed, up.sent.clone());
    let size = up.desc.size;
    let piece = slot.piece(size, store.client.inner.clone());
    let sent = session
        .send(
            Send::Put {
                desc: up.desc,
                range: None,
            },
            piece,
            size,
        )
        .await;
    if let Some(e) = slot.failure() {
        session.cancel().await;
        return Err(Failure::fatal(e));
    }
    match sent {
        Ok(_) => Ok(()),
        Err(f) => {
            session.cancel().await;
            Err(f)
        }
    }
}

impl Upload<'_> {
    /// Counts body bytes sent outside a [`Slot`] (in-memory bodies).
    fn count_sent(&self, n: u64) {
        self.store.inner().stats.add_uploaded(n);
        self.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}
