//! Injected faults: what a fault does, and which requests it hits.

use super::Kind;

/// What an injected fault does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer with this status and an OCI error body (the request body is read first).
    Status(u16),
    /// 429 `TOOMANYREQUESTS` with `Retry-After: <secs>`.
    TooManyRequests { retry_after_secs: u64 },
    /// Send the headers (full `Content-Length`) and this many body bytes, then drop the
    /// connection. Applies to responses with a body (blob and manifest GETs).
    DropBodyAfter(u64),
    /// Read this many bytes of the request body (keeping them, e.g. in an upload session),
    /// then drop the connection without answering.
    DropRequestAfter(u64),
    /// Read this many bytes of the request body and throw them away (the registry never sees
    /// them, as behind a proxy that drops the request), then drop the connection.
    DropRequestUnseen(u64),
    /// Answer `status` with an OCI error body carrying `code` (e.g. 400 `NAME_INVALID`).
    Error { status: u16, code: String },
    /// Answer `status` with `Retry-After`: `secs` as delta seconds, or (`http_date`) as the
    /// HTTP date `secs` ahead of the answer.
    RetryAfter {
        status: u16,
        secs: u64,
        http_date: bool,
    },
}

/// One injected fault: `action` on requests `nth ..= nth + times - 1` of `kind` (1-based);
/// with `path`, only requests whose path and query contain it count (from the fault's start).
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    pub nth: u64,
    pub times: u64,
    pub action: Action,
    pub path: Option<String>,
}

impl Fault {
    pub fn new(kind: Kind, nth: u64, action: Action) -> Fault {
        Fault {
            kind,
            nth,
            times: 1,
            action,
            path: None,
        }
    }

    /// `status` (500, 503, ...) on the `nth` request of `kind`.
    pub fn status(kind: Kind, nth: u64, status: u16) -> Fault {
        Fault::new(kind, nth, Action::Status(status))
    }

    /// 429 with `Retry-After: retry_after_secs` on the `nth` request of `kind`.
    pub fn too_many_requests(kind: Kind, nth: u64, retry_after_secs: u64) -> Fault {
        Fault::new(kind, nth, Action::TooManyRequests { retry_after_secs })
    }

    /// `status` with the OCI error `code` on the `nth` request of `kind`.
    pub fn error(kind: Kind, nth: u64, status: u16, code: &str) -> Fault {
        let code = code.to_string();
        Fault::new(kind, nth, Action::Error { status, code })
    }

    /// `status` with `Retry-After: <secs>` on the `nth` request of `kind`.
    pub fn retry_after(kind: Kind, nth: u64, status: u16, secs: u64) -> Fault {
        let http_date = false;
        Fault::new(
            kind,
            nth,
            Action::RetryAfter {
                status,
                secs,
                http_date,
            },
        )
    }

    /// `status` with `Retry-After: <HTTP date secs ahead>` on the `nth` request of `kind`.
    pub fn retry_after_date(kind: Kind, nth: u64, status: u16, secs: u64) -> Fault {
        let http_date = true;
        Fault::new(
            kind,
            nth,
            Action::RetryAfter {
                status,
                secs,
                http_date,
            },
        )
    }

    /// Drop the connection after `bytes` of the response body of the `nth` request of `kind`.
    pub fn drop_body_after(kind: Kind, nth: u64, bytes: u64) -> Fault {
        Fault::new(kind, nth, Action::DropBodyAfter(bytes))
    }

    /// Drop the connection after reading `bytes` of the request body of the `nth` `kind`.
    pub fn drop_request_after(kind: Kind, nth: u64, bytes: u64) -> Fault {
        Fault::new(kind, nth, Action::DropRequestAfter(bytes))
    }

    /// Repeat on this many consecutive requests (`u64::MAX`: forever).
    pub fn drop_request_unseen(kind: Kind, nth: u64, bytes: u64) -> Fault {
        Fault::new(kind, nth, Action::DropRequestUnseen(bytes))
    }

    /// Only requests whose path and query contain `path` (e.g. `/app/manifests/bad`).
    pub fn on_path(mut self, path: &str) -> Fault {
        self.path = Some(path.to_string());
        self
    }

    pub fn times(mut self, times: u64) -> Fault {
        self.times = times;
        self
    }
}
