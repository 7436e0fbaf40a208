//! Monolithic uploads: the whole blob in one request. Small blobs are read into memory and
//! verified first, then offered as one `POST ?digest=` (where the registry stores it at once)
//! or `PUT` on a session; larger ones stream from the source into the closing `PUT`.
//!
//! A small blob that failed is sent again (it is in memory). A streamed body that failed is not:
//! the engine's decision goes back to the caller as [`Stop::Dropped`] with the session, so the
//! blob goes on resumably from where the registry stands.

use bytes::{Bytes, BytesMut};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

use super::super::transport::retry::{Attempt, Decision, Failure};
use super::super::transport::stats::Kind;
use super::super::transport::Req;
use super::feed::{Feed, Slot, Tally};
use super::plan::SMALL_BLOB;
use super::session::{check_stored, Posted, Send, Session};
use super::{Stop, Upload};
use crate::digest::DigestHasher;
use crate::error::Result;

/// Uploads the blob in one request.
pub(super) async fn upload(up: &mut Upload<'_>) -> std::result::Result<(), Stop> {
    if up.desc.size > SMALL_BLOB {
        return streamed(up).await;
    }
    let body = read_small(up).await.map_err(Stop::Failed)?;
    // One probe at a time: while it is out, other small blobs take the ordinary path, so no
    // body is sent twice more than once per registry.
    let mut single = up.learn(|p| match p.single_post {
        Some(works) => works,
        None if p.single_post_probing => false,
        None => {
            p.single_post_probing = true;
            true
        }
    });
    loop {
        up.budget.start_attempt();
        let failure = match once_small(up, body.clone(), std::mem::take(&mut single)).await {
            Ok(()) => return Ok(()),
            Err(f) => f,
        };
        match up.budget.decide(Attempt::Monolithic, &failure) {
            Decision::Refused => return Err(refused(up, failure)),
            Decision::Retry(d) | Decision::Resume(d) | Decision::Restart(d) => {
                up.wait(d, &failure.error).await;
                up.restarted();
            }
            Decision::GiveUp => return Err(Stop::Failed(up.budget.give_up(failure))),
        }
    }
}

/// The registry refused a body this large (or this way): remembered for later blobs.
fn refused(up: &mut Upload<'_>, f: Failure) -> Stop {
    let size = up.desc.size;
    let status = f.status();
    up.learn(|p| {
        p.monolithic_refused(size);
        if status == Some(413) {
            p.shrink(size);
        }
    });
    Stop::Refused(f.error)
}

/// Reads a small blob whole, verified against its descriptor.
async fn read_small(up: &Upload<'_>) -> Result<Bytes> {
    let location = up.ctx.location();
    // Small blobs are read whole anyway: hashing them costs nothing worth saving.
    let hashing = Tally::Hash(DigestHasher::new());
    let mut feed = Feed::open(up.source, up.desc, hashing, 0, &location).await?;
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
    let mut session = if single {
        match post_small(up, body.clone()).await? {
            Some(s) => s,
            None => return Ok(()),
        }
    } else {
        Session::start(up.repo, &up.ctx)
            .await
            .map_err(Failure::settled)?
            .0
    };
    let mut url = session.url.clone();
    url.query_pairs_mut()
        .append_pair("digest", &up.desc.digest.to_string());
    let req = Req::new(Method::PUT, url, up.repo.push(), Kind::Other)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body.clone());
    up.count_sent(body.len() as u64);
    match up
        .repo
        .transport()
        .attempt(&up.ctx, &req, &[201, 204])
        .await
    {
        Ok(resp) => {
            session.close();
            check_stored(&up.ctx, up.desc, resp.headers()).map_err(Failure::settled)
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
    let posted = match Session::post_blob(up.repo, &up.ctx, up.desc, body).await {
        Ok(posted) => posted,
        Err(e) => {
            up.learn(|p| p.single_post_probing = false);
            return Err(Failure::settled(e));
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
            up.repo.transport().stats().add_probe_resent(up.desc.size);
            Ok(Some(*s))
        }
    }
}

/// The source streamed into the closing `PUT` of a new session. A failure the engine would
/// resume hands the session on ([`Stop::Dropped`]); the body is not sent whole again.
async fn streamed(up: &mut Upload<'_>) -> std::result::Result<(), Stop> {
    let (mut session, _) = Session::start(up.repo, &up.ctx)
        .await
        .map_err(Stop::Failed)?;
    let location = up.ctx.location();
    let tally = Tally::start(up.settings.verify);
    let feed = match Feed::open(up.source, up.desc, tally, 0, &location).await {
        Ok(f) => f,
        Err(e) => {
            session.cancel().await;
            return Err(Stop::Failed(e));
        }
    };
    let slot = Slot::new(feed, up.sent.clone());
    let size = up.desc.size;
    let piece = slot.piece(size, up.repo.shared_transport());
    up.budget.start_attempt();
    let how = Send::Put {
        desc: up.desc,
        range: None,
    };
    let sent = session.send(how, piece, size).await;
    if let Some(e) = slot.failure() {
        session.cancel().await;
        return Err(Stop::Failed(e));
    }
    let failure = match sent {
        Ok(_) => return Ok(()),
        Err(f) => f,
    };
    match up.budget.decide(Attempt::Monolithic, &failure) {
        Decision::Refused => {
            session.cancel().await;
            Err(refused(up, failure))
        }
        Decision::Resume(d) | Decision::Retry(d) => {
            up.wait(d, &failure.error).await;
            Err(Stop::Dropped(Some(Box::new(session))))
        }
        Decision::Restart(d) => {
            up.wait(d, &failure.error).await;
            session.close();
            Err(Stop::Dropped(None))
        }
        Decision::GiveUp => {
            session.cancel().await;
            Err(Stop::Failed(up.budget.give_up(failure)))
        }
    }
}

impl Upload<'_> {
    /// Counts body bytes sent outside a [`Slot`] (in-memory bodies).
    fn count_sent(&self, n: u64) {
        self.repo.transport().stats().add_uploaded(n);
        self.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}
