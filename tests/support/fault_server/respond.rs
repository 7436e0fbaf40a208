//! Responses of the fault server: OCI error bodies, byte bodies with ranges, injected drops.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};

use super::state::Shared;

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(super) type Body = UnsyncBoxBody<Bytes, BoxError>;
pub(super) type Resp = Response<Body>;

/// Bytes per frame when serving content.
const FRAME: usize = 64 * 1024;

pub(super) fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

/// A response with headers and an empty body.
pub(super) fn status(code: u16, headers: &[(&str, String)]) -> Resp {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
        r.headers_mut()
            .insert(name, HeaderValue::from_str(v).unwrap());
    }
    r
}

/// `{"errors":[{code, message, detail}]}` with `status`.
pub(super) fn oci_error(code: u16, error: &str, message: &str, detail: serde_json::Value) -> Resp {
    let body =
        serde_json::json!({"errors": [{"code": error, "message": message, "detail": detail}]});
    let mut r = status(code, &[("content-type", "application/json".into())]);
    *r.body_mut() = full(body.to_string());
    r
}

/// The answer to an injected status fault.
pub(super) fn injected(code: u16, retry_after: Option<u64>) -> Resp {
    let error = match code {
        429 => "TOOMANYREQUESTS",
        503 => "UNAVAILABLE",
        401 => "UNAUTHORIZED",
        404 => "NOT_FOUND",
        _ => "UNKNOWN",
    };
    let mut r = oci_error(code, error, "injected fault", serde_json::Value::Null);
    if let Some(secs) = retry_after {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    r
}

/// `status` with `Retry-After` as delta seconds or as the HTTP date `secs` from now.
pub(super) fn retry_after(status: u16, secs: u64, http_date: bool) -> Resp {
    let mut r = injected(status, None);
    let value = if http_date {
        let at = std::time::SystemTime::now() + std::time::Duration::from_secs(secs);
        httpdate::fmt_http_date(at)
    } else {
        secs.to_string()
    };
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_str(&value).unwrap());
    r
}

/// `Range: bytes=N-` or `bytes=N-M` → (start, end inclusive), clamped to `len`.
/// `Err(())` when unsatisfiable.
pub(super) fn parse_range(headers: &HeaderMap, len: u64) -> Option<Result<(u64, u64), ()>> {
    let v = headers.get("range")?.to_str().ok()?;
    let spec = v.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => len.saturating_sub(1),
        e => e.parse::<u64>().ok()?.min(len.saturating_sub(1)),
    };
    if start >= len || start > end {
        return Some(Err(()));
    }
    Some(Ok((start, end)))
}

/// Serves `bytes` (honouring `Range`), or only its headers for HEAD. With `drop_after`, the
/// connection is cut after that many body bytes.
pub(super) fn serve_bytes(
    shared: &Arc<Shared>,
    bytes: Bytes,
    req_headers: &HeaderMap,
    head: bool,
    drop_after: Option<u64>,
    headers: &[(&str, String)],
) -> Resp {
    let len = bytes.len() as u64;
    let (code, slice, mut extra) = match parse_range(req_headers, len) {
        Some(Err(())) => {
            return status(416, &[("content-range", format!("bytes */{len}"))]);
        }
        Some(Ok((s, e))) => {
            let cr = format!("bytes {s}-{e}/{len}");
            (
                206,
                bytes.slice(s as usize..=e as usize),
                vec![("content-range", cr)],
            )
        }
        None => (200, bytes, vec![]),
    };
    if !shared.cfg.quirks.no_content_length {
        extra.push(("content-length", slice.len().to_string()));
    }
    extra.push(("accept-ranges", "bytes".to_string()));
    extra.extend(headers.iter().map(|(k, v)| (*k, v.clone())));
    let mut r = status(code, &extra);
    if !head {
        *r.body_mut() = stream_bytes(shared.clone(), slice, drop_after);
    }
    r
}

/// A body of `bytes` in frames, counting what is sent, failing after `drop_after` bytes.
fn stream_bytes(shared: Arc<Shared>, bytes: Bytes, drop_after: Option<u64>) -> Body {
    let limit = drop_after.map_or(bytes.len(), |n| (n as usize).min(bytes.len()));
    let frames: Vec<Result<Bytes, BoxError>> = (0..limit)
        .step_by(FRAME)
        .map(|off| Ok(bytes.slice(off..(off + FRAME).min(limit))))
        .collect();
    // The error comes a moment later so that hyper flushes the bytes before it cuts the
    // connection.
    let cut = futures::stream::iter(drop_after).then(|_| async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Err::<Bytes, BoxError>("injected fault: connection dropped mid-body".into())
    });
    let stream = futures::stream::iter(frames).chain(cut).map(move |r| {
        r.map(|b| {
            shared
                .sent_bytes
                .fetch_add(b.len() as u64, Ordering::SeqCst);
            Frame::data(b)
        })
    });
    StreamBody::new(stream).boxed_unsync()
}
