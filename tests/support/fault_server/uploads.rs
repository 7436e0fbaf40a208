//! Blob uploads: POST (session, mount, single-request), PATCH (streamed or chunked), PUT,
//! status GET and DELETE. Request bodies stream straight into the session's buffer.

use std::sync::Arc;

use bytes::Bytes;
use ferry::Digest;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request};
use serde_json::{json, Value};

use super::handlers::{query, query_one};
use super::respond::{self, oci_error, BoxError, Resp};
use super::serve::Ctx;
use super::state::Upload;
use super::Kind;

type Session = Arc<tokio::sync::Mutex<Upload>>;

/// `Location`, `Range`, `Docker-Upload-UUID` of a session, with `code`.
fn session_response(ctx: &Ctx, up: &Upload, code: u16) -> Resp {
    session_response_at(ctx, up, code, (up.data.len() as u64).saturating_sub(1))
}

/// [`session_response`] with `Range: 0-<end>` whatever the session holds.
fn session_response_at(ctx: &Ctx, up: &Upload, code: u16, end: u64) -> Resp {
    let path = format!(
        "/v2/{}/blobs/uploads/{}?_state={}",
        up.repo, up.id, up.state
    );
    let mut headers = vec![
        ("location", ctx.shared.location(&path)),
        ("range", format!("0-{end}")),
        ("docker-upload-uuid", up.id.clone()),
        ("content-length", "0".to_string()),
    ];
    if code == 202 && up.state == 0 && up.data.is_empty() {
        if let Some(min) = ctx.shared.cfg.chunk_min_length {
            headers.push(("oci-chunk-min-length", min.to_string()));
        }
    }
    respond::status(code, &headers)
}

/// `Content-Range: N-M` (also `bytes N-M/*`, `bytes=N-M`) → (N, M); `Err` when malformed.
fn content_range(headers: &HeaderMap) -> Option<Result<(u64, u64), ()>> {
    let v = headers.get("content-range")?.to_str().ok()?;
    let v = v
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches([' ', '=']);
    let v = v.split('/').next().unwrap_or("");
    let parsed = v
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .filter(|(a, b)| a <= b);
    Some(parsed.ok_or(()))
}

/// `POST /v2/<repo>/blobs/uploads/`: mount (201), single-request upload (201), or a session.
pub(super) async fn start(
    ctx: &mut Ctx,
    req: Request<Incoming>,
    repo: &str,
) -> Result<Resp, BoxError> {
    let q = query(req.uri());
    if let (Some(mount), Some(from)) = (query_one(&q, "mount"), query_one(&q, "from")) {
        if let Ok(d) = mount.parse::<Digest>() {
            let mounted = {
                let mut data = ctx.shared.data();
                let ok = data.visible(&from, &d);
                if ok {
                    data.link(repo, &d);
                }
                ok
            };
            if mounted {
                ctx.read_body(req.into_body(), |_| {}).await?;
                return Ok(blob_created(ctx, repo, &d));
            }
        }
    }
    let session = ctx.shared.data().new_upload(repo);
    let mut up = session.lock().await;
    let single = !ctx.shared.cfg.quirks.no_single_post;
    if let Some(digest) = query_one(&q, "digest").filter(|_| single) {
        return complete(ctx, req, &mut up, &digest).await;
    }
    ctx.read_body(req.into_body(), |_| {}).await?;
    Ok(session_response(ctx, &up, 202))
}

fn blob_created(ctx: &Ctx, repo: &str, d: &Digest) -> Resp {
    let location = ctx.shared.location(&format!("/v2/{repo}/blobs/{d}"));
    respond::status(
        201,
        &[
            ("location", location),
            ("docker-content-digest", d.to_string()),
            ("content-length", "0".into()),
        ],
    )
}

/// PATCH, PUT, GET and DELETE on an upload session.
pub(super) async fn handle(
    ctx: &mut Ctx,
    req: Request<Incoming>,
    repo: &str,
    id: &str,
) -> Result<Resp, BoxError> {
    let session: Option<Session> = ctx.shared.data().uploads.get(id).cloned();
    let Some(session) = session else {
        ctx.read_body(req.into_body(), |_| {}).await?;
        return Ok(oci_error(
            404,
            "BLOB_UPLOAD_UNKNOWN",
            "upload unknown",
            json!({"id": id}),
        ));
    };
    let mut up = session.lock().await;
    let state = query_one(&query(req.uri()), "_state");
    let stale = ctx.shared.cfg.rotate_upload_location && state != Some(up.state.to_string());
    if up.repo != repo || stale {
        ctx.read_body(req.into_body(), |_| {}).await?;
        let why = if stale {
            "stale upload location"
        } else {
            "upload of another repository"
        };
        return Ok(oci_error(404, "BLOB_UPLOAD_INVALID", why, Value::Null));
    }
    match *req.method() {
        Method::PATCH => patch(ctx, req, &mut up).await,
        Method::PUT => {
            let digest = query_one(&query(req.uri()), "digest").unwrap_or_default();
            complete(ctx, req, &mut up, &digest).await
        }
        Method::DELETE => {
            ctx.shared.data().uploads.remove(id);
            Ok(respond::status(204, &[("content-length", "0".into())]))
        }
        _ => Ok(session_response(ctx, &up, 204)),
    }
}

/// The answer of a registry whose quirks refuse this upload request, judged by its headers.
fn quirk_refusal(ctx: &Ctx, headers: &HeaderMap, up: &Upload) -> Option<Resp> {
    let q = &ctx.shared.cfg.quirks;
    let len = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let over = |max: Option<u64>| matches!((max, len), (Some(m), Some(n)) if n > m);
    let ranged = headers.contains_key("content-range");
    let patch = ctx.kind == Kind::UploadPatch;
    if patch && q.refuse_patch {
        let msg = "chunked uploads are not supported; upload monolithically";
        return Some(oci_error(405, "UNSUPPORTED", msg, Value::Null));
    }
    if over(q.max_request_body) {
        if ranged {
            return Some(session_response(ctx, up, 416));
        }
        let msg = "request body too large";
        return Some(oci_error(
            413,
            "SIZE_INVALID",
            msg,
            json!({ "length": len }),
        ));
    }
    if !patch && over(q.max_monolithic_body) {
        let msg = "monolithic upload too large; use chunks";
        return Some(oci_error(
            413,
            "SIZE_INVALID",
            msg,
            json!({ "length": len }),
        ));
    }
    let under = |min: Option<u64>| matches!((min, len), (Some(m), Some(n)) if n < m);
    if patch && under(q.min_patch_body) {
        let msg = "layer part smaller than the minimum part size";
        return Some(oci_error(
            400,
            "BLOB_UPLOAD_INVALID",
            msg,
            json!({ "length": len }),
        ));
    }
    if patch && ranged && under(ctx.shared.cfg.chunk_min_length) {
        return Some(session_response(ctx, up, 416));
    }
    None
}

/// Appends the request body, checking `Content-Range` when present. `Err(resp)` when refused.
async fn append(
    ctx: &mut Ctx,
    req: Request<Incoming>,
    up: &mut Upload,
) -> Result<Result<(), Resp>, BoxError> {
    if let Some(refused) = quirk_refusal(ctx, req.headers(), up) {
        ctx.read_body(req.into_body(), |_| {}).await?;
        return Ok(Err(refused));
    }
    let range = content_range(req.headers());
    let before = up.data.len();
    let expect = match range {
        Some(Err(())) => {
            ctx.read_body(req.into_body(), |_| {}).await?;
            let msg = "malformed Content-Range";
            return Ok(Err(oci_error(400, "BLOB_UPLOAD_INVALID", msg, Value::Null)));
        }
        Some(Ok((start, _))) if start != before as u64 => {
            ctx.read_body(req.into_body(), |_| {}).await?;
            return Ok(Err(session_response(ctx, up, 416)));
        }
        Some(Ok((start, end))) => Some(end - start + 1),
        None => None,
    };
    let length = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(cut) = ctx.shared.cfg.quirks.drop_first_body_after {
        if !up.body_seen && length.is_some_and(|n| n > cut) {
            up.body_seen = true;
            ctx.drop_request_after = Some(cut);
            ctx.discard_dropped = true;
        }
    }
    if length.is_some_and(|n| n > 0) {
        up.body_seen = true;
    }
    up.data.reserve(length.unwrap_or(0) as usize);
    ctx.read_body(req.into_body(), |d| up.append(d)).await?;
    let got = (up.data.len() - before) as u64;
    if expect.is_some_and(|n| n != got) {
        up.truncate(before);
        let detail = json!({"content_range_length": expect, "body_length": got});
        let msg = "Content-Range does not match the body";
        return Ok(Err(oci_error(416, "BLOB_UPLOAD_INVALID", msg, detail)));
    }
    Ok(Ok(()))
}

async fn patch(ctx: &mut Ctx, req: Request<Incoming>, up: &mut Upload) -> Result<Resp, BoxError> {
    if let Err(refused) = append(ctx, req, up).await? {
        return Ok(refused);
    }
    up.state += 1;
    let end = (up.data.len() as u64).saturating_sub(1);
    let first = *up.first_patch_end.get_or_insert(end);
    let q = &ctx.shared.cfg.quirks;
    let shown = if q.stale_patch_range { first } else { end };
    Ok(session_response_at(
        ctx,
        up,
        q.patch_status.unwrap_or(202),
        shown,
    ))
}

/// Appends the final body, verifies the digest, commits the blob and closes the session.
async fn complete(
    ctx: &mut Ctx,
    req: Request<Incoming>,
    up: &mut Upload,
    digest: &str,
) -> Result<Resp, BoxError> {
    if let Err(refused) = append(ctx, req, up).await? {
        return Ok(refused);
    }
    ctx.shared.data().uploads.remove(&up.id);
    let (actual, size) = up.hasher.clone().finish();
    let expected = digest.parse::<Digest>().ok();
    if expected.as_ref() != Some(&actual) {
        let detail = json!({"expected": digest, "actual": actual.to_string(), "size": size});
        let msg = "provided digest did not match uploaded content";
        return Ok(oci_error(400, "DIGEST_INVALID", msg, detail));
    }
    let bytes = Bytes::from(std::mem::take(&mut up.data));
    ctx.shared
        .data()
        .store_blob(actual.clone(), bytes, Some(&up.repo.clone()));
    Ok(blob_created(ctx, &up.repo, &actual))
}
