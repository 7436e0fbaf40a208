//! Cancellation: a stop request that the copy engine obeys, and the clean-up work (cancelling
//! open upload sessions) that must finish before the process exits.
//!
//! A caller (the CLI on SIGINT/SIGTERM) calls [`Cancel::cancel`]; work run under
//! [`Cancel::run`] is then dropped where it stands. Dropping is what cleans up: an upload
//! session that was not committed sends its `DELETE` (tracked here, see [`spawn_cleanup`]),
//! a temp file of a layout or archive spool removes itself. [`Cancel::run`] then waits, for at
//! most [`CLEANUP_GRACE`], for the tracked clean-ups and returns [`Error::Interrupted`].
//! The library prints nothing; what to say and which exit code to use is the caller's choice.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::{Error, Result};

/// How long an interrupted run waits for its clean-ups (upload `DELETE`s) before giving up on
/// them: registries expire abandoned sessions anyway, and a user pressing Ctrl-C wants out.
pub const CLEANUP_GRACE: Duration = Duration::from_millis(1500);

/// A stop request shared by everything one caller runs. Clones share it.
#[derive(Clone, Debug)]
pub struct Cancel {
    tx: Arc<watch::Sender<Option<String>>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel {
            tx: Arc::new(watch::channel(None).0),
        }
    }

    /// Asks every run under this token to stop; `why` ends up in [`Error::Interrupted`]. Only
    /// the first request counts.
    pub fn cancel(&self, why: &str) {
        self.tx.send_if_modified(|v| {
            if v.is_some() {
                return false;
            }
            *v = Some(why.to_string());
            true
        });
    }

    /// Why the run was cancelled, once it was.
    pub fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
    }

    /// Resolves when [`Cancel::cancel`] was called.
    pub async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| v.is_some()).await;
    }

    /// Runs `work` until it ends or the token is cancelled. Cancelled: `work` is dropped (its
    /// upload sessions start their `DELETE`s, its temp files go), those clean-ups are waited
    /// for (at most [`CLEANUP_GRACE`]) and the result is [`Error::Interrupted`].
    pub async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        if self.reason().is_none() {
            tokio::select! {
                biased;
                () = self.cancelled() => {}
                r = work => return r,
            }
        }
        let unfinished = finish_cleanups(CLEANUP_GRACE).await;
        Err(Error::Interrupted {
            reason: self.reason().unwrap_or_default(),
            unfinished_cleanups: unfinished,
        })
    }
}

/// Clean-ups started by dropped work and not finished yet.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Runs `work` (an upload session's `DELETE`) on the current runtime, counted so that an
/// interrupted run can wait for it. Without a runtime nothing can be sent: it is skipped.
pub(crate) fn spawn_cleanup(work: impl Future<Output = ()> + Send + 'static) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    /// Counts the clean-up done however its task ends (finished, or dropped at shutdown).
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            PENDING.fetch_sub(1, Ordering::SeqCst);
        }
    }
    PENDING.fetch_add(1, Ordering::SeqCst);
    let done = Done;
    rt.spawn(async move {
        let _done = done;
        work.await;
    });
}

/// Waits until every clean-up started so far finished, at most `grace`; returns how many did
/// not. Nested waits (a cancelled run inside another) see the same count.
pub async fn finish_cleanups(grace: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        // Let work dropped just now run its destructors' spawns first.
        tokio::task::yield_now().await;
        let pending = PENDING.load(Ordering::SeqCst);
        if pending == 0 || tokio::time::Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            let done = self.0.clone();
            spawn_cleanup(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                done.store(true, Ordering::SeqCst);
            });
        }
    }

    #[tokio::test]
    async fn a_cancelled_run_drops_its_work_and_waits_for_the_cleanups() {
        let cancel = Cancel::new();
        let done = Arc::new(AtomicBool::new(false));
        let guard = OnDrop(done.clone());
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            c.cancel("SIGINT");
        });
        let r: Result<()> = cancel
            .run(async move {
                let _g = guard;
                std::future::pending::<()>().await;
                Ok(())
            })
            .await;
        match r {
            Err(Error::Interrupted {
                reason,
                unfinished_cleanups: 0,
            }) => assert_eq!(reason, "SIGINT"),
            other => panic!("{other:?}"),
        }
        assert!(
            done.load(Ordering::SeqCst),
            "the clean-up was not waited for"
        );
        // A second run under a cancelled token does not start.
        let r = cancel.run(async { Ok(1) }).await;
        assert!(matches!(r, Err(Error::Interrupted { .. })), "{r:?}");
    }
}
