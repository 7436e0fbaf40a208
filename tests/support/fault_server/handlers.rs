//! Request handlers of the fault server: ping, manifests, blobs, tags; uploads live apart.

use std::collections::HashMap;

use bytes::Bytes;
use ferry::Digest;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Uri};
use serde_json::{json, Value};

use super::respond::{self, oci_error, serve_bytes, BoxError, Resp};
use super::serve::{Ctx, Route};
use super::{auth, uploads};

/// Manifests larger than this are refused with 413.
const MANIFEST_LIMIT: usize = 8 * 1024 * 1024;

/// Query parameters, in order (`tag=` may repeat).
pub(super) fn query(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn query_one(q: &[(String, String)], name: &str) -> Option<String> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

pub(super) async fn dispatch(
    ctx: &mut Ctx,
    req: Request<Incoming>,
    route: Route,
    drop_after: Option<u64>,
) -> Result<Resp, BoxError> {
    let method = req.method().clone();
    let head = method == Method::HEAD;
    match (route, method.as_str()) {
        (Route::Ping, _) => {
            let mut r = respond::status(
                200,
                &[("docker-distribution-api-version", "registry/2.0".into())],
            );
            *r.body_mut() = respond::full("{}");
            Ok(r)
        }
        (Route::Token, _) => auth::token(ctx, req).await,
        (Route::Manifest { repo, reference }, "GET" | "HEAD") => {
            Ok(get_manifest(ctx, &repo, &reference, head, drop_after))
        }
        (Route::Manifest { repo, reference }, "PUT") => {
            put_manifest(ctx, req, &repo, &reference).await
        }
        (Route::Blob { repo, digest }, "GET" | "HEAD") => Ok(get_blob(
            ctx,
            req.headers(),
            Some(&repo),
            &digest,
            head,
            drop_after,
        )),
        (Route::Storage { digest }, "GET" | "HEAD") => Ok(get_blob(
            ctx,
            req.headers(),
            None,
            &digest,
            head,
            drop_after,
        )),
        (Route::TagsList { repo }, "GET") => Ok(tags_list(ctx, &repo, req.uri())),
        (Route::Referrers { repo, digest }, "GET") if ctx.shared.cfg.quirks.referrers_api => {
            Ok(super::referrers::list(ctx, &repo, &digest, req.uri()))
        }
        (Route::Uploads { repo }, "POST") => uploads::start(ctx, req, &repo).await,
        (Route::Upload { repo, id }, "PATCH" | "PUT" | "GET" | "DELETE") => {
            uploads::handle(ctx, req, &repo, &id).await
        }
        (route, _) => {
            ctx.read_body(req.into_body(), |_| {}).await?;
            let code = if matches!(route, Route::Unknown | Route::Referrers { .. }) {
                404
            } else {
                405
            };
            Ok(oci_error(
                code,
                "UNSUPPORTED",
                "not supported by the fault server",
                Value::Null,
            ))
        }
    }
}

fn get_manifest(
    ctx: &Ctx,
    repo: &str,
    reference: &str,
    head: bool,
    drop_after: Option<u64>,
) -> Resp {
    let found = {
        let data = ctx.shared.data();
        data.manifest(repo, reference).map(|(d, m)| {
            let named = m.claimed.clone().unwrap_or(d);
            (named, m.bytes.clone(), m.media_type.clone())
        })
    };
    let Some((digest, bytes, media_type)) = found else {
        let detail = json!({"name": repo, "reference": reference});
        return oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown", detail);
    };
    let mut headers = vec![("content-type", media_type)];
    if !(head && ctx.shared.cfg.quirks.head_without_digest) {
        headers.push(("docker-content-digest", digest.to_string()));
    }
    serve_bytes(
        &ctx.shared,
        bytes,
        &HeaderMap::new(),
        head,
        drop_after,
        &headers,
    )
}

/// A manifest body that passed the checks a registry makes before storing it.
struct Checked {
    bytes: Vec<u8>,
    json: Value,
    media_type: String,
    digest: Digest,
}

/// Parses a pushed manifest: size, JSON, media type (header or `mediaType`), digest.
fn check_manifest(
    buf: Vec<u8>,
    content_type: Option<String>,
    reference: &str,
) -> Result<Checked, Box<Resp>> {
    let invalid = |code, msg| Box::new(oci_error(code, "MANIFEST_INVALID", msg, Value::Null));
    if buf.len() > MANIFEST_LIMIT {
        return Err(invalid(413, "manifest too large"));
    }
    let json = serde_json::from_slice::<Value>(&buf).map_err(|_| invalid(400, "not JSON"))?;
    let media_type = content_type
        .filter(|c| !c.is_empty())
        .or_else(|| {
            json.get("mediaType")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .ok_or_else(|| invalid(400, "no media type"))?;
    let digest = Digest::of(&buf);
    if reference.parse::<Digest>().is_ok_and(|d| d != digest) {
        let detail = json!({"expected": reference, "actual": digest.to_string()});
        let msg = "digest does not match content";
        return Err(Box::new(oci_error(400, "DIGEST_INVALID", msg, detail)));
    }
    Ok(Checked {
        bytes: buf,
        json,
        media_type,
        digest,
    })
}

/// `PUT /v2/<repo>/manifests/<tag|digest>[?tag=..]`: exact bytes, children must be present.
async fn put_manifest(
    ctx: &mut Ctx,
    req: Request<Incoming>,
    repo: &str,
    reference: &str,
) -> Result<Resp, BoxError> {
    let header = req.headers().get("content-type");
    let content_type = header.and_then(|v| v.to_str().ok()).map(String::from);
    let mut tags: Vec<String> = query(req.uri())
        .into_iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v)
        .collect();
    let extra_tags = tags.join(",");
    let mut buf = Vec::new();
    ctx.read_body(req.into_body(), |d| {
        if buf.len() <= MANIFEST_LIMIT {
            buf.extend_from_slice(d);
        }
    })
    .await?;
    let m = match check_manifest(buf, content_type, reference) {
        Ok(m) => m,
        Err(refused) => return Ok(*refused),
    };
    let mut data = ctx.shared.data();
    let missing = data.missing_references(repo, &m.json);
    if !missing.is_empty() {
        let detail = json!({"missing": missing});
        let msg = "blob unknown to registry";
        return Ok(oci_error(400, "MANIFEST_BLOB_UNKNOWN", msg, detail));
    }
    let digest = m.digest;
    let subject = m.json["subject"]["digest"].as_str().map(String::from);
    data.store_manifest(repo, digest.clone(), Bytes::from(m.bytes), &m.media_type);
    if reference.parse::<Digest>().is_err() {
        tags.push(reference.to_string());
    }
    for t in &tags {
        data.set_tag(repo, t, digest.clone());
    }
    let (rivals, later): (Vec<_>, Vec<_>) = std::mem::take(&mut data.rival_writes)
        .into_iter()
        .partition(|(r, t, _)| r == repo && tags.contains(t));
    data.rival_writes = later;
    for (r, t, d) in rivals {
        data.set_tag(&r, &t, d);
    }
    let location = ctx
        .shared
        .location(&format!("/v2/{repo}/manifests/{digest}"));
    let mut headers = vec![
        ("location", location),
        ("docker-content-digest", digest.to_string()),
    ];
    if !extra_tags.is_empty() {
        headers.push(("oci-tag", extra_tags));
    }
    if let Some(subject) = subject.filter(|_| ctx.shared.cfg.quirks.referrers_api) {
        headers.push(("oci-subject", subject));
    }
    Ok(respond::status(201, &headers))
}

/// A blob from `repo` (API listener) or from the content store (`None`: redirect target).
fn get_blob(
    ctx: &Ctx,
    req_headers: &HeaderMap,
    repo: Option<&str>,
    digest: &str,
    head: bool,
    drop_after: Option<u64>,
) -> Resp {
    let Ok(d) = digest.parse::<Digest>() else {
        return oci_error(
            400,
            "DIGEST_INVALID",
            "invalid digest",
            json!({"digest": digest}),
        );
    };
    let bytes = {
        let data = ctx.shared.data();
        match repo {
            Some(r) => data.visible(r, &d).then(|| data.blobs[&d].clone()),
            None => data.blobs.get(&d).cloned(),
        }
    };
    let Some(bytes) = bytes else {
        return oci_error(
            404,
            "BLOB_UNKNOWN",
            "blob unknown to registry",
            json!({"digest": digest}),
        );
    };
    if repo.is_some() && !head && ctx.shared.cfg.redirect_blob_gets {
        let q = &ctx.shared.cfg.quirks;
        let host = q.redirect_to.clone();
        let host = host.unwrap_or_else(|| ctx.shared.redirect_addr.to_string());
        let query = q.redirect_query.as_deref().unwrap_or("sig=fault");
        let to = format!("http://{host}/storage/{d}?{query}");
        return respond::status(307, &[("location", to)]);
    }
    let headers = [
        ("content-type", "application/octet-stream".to_string()),
        ("docker-content-digest", d.to_string()),
    ];
    let no_range = HeaderMap::new();
    let asked = if ctx.shared.cfg.quirks.ignore_range {
        &no_range
    } else {
        req_headers
    };
    serve_bytes(&ctx.shared, bytes, asked, head, drop_after, &headers)
}

/// One page of `tags` after `last` (`?n=&last=`), and the `Link` to the next one. The first
/// page links by absolute path, later ones relative to the request (both forms occur).
fn tags_page(ctx: &Ctx, repo: &str, uri: &Uri, tags: Vec<String>) -> (Vec<String>, Option<String>) {
    let Some(size) = ctx.shared.cfg.quirks.tags_page_size else {
        return (tags, None);
    };
    let q = query(uri);
    let last = query_one(&q, "last");
    let rest: Vec<String> = tags
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let page: Vec<String> = rest.iter().take(size).cloned().collect();
    let link = (rest.len() > size).then(|| {
        let next = format!("list?last={}&n={size}", page[size - 1]);
        let target = match last {
            None => format!("/v2/{repo}/tags/{next}"),
            Some(_) => next,
        };
        format!("<{target}>; rel=\"next\"")
    });
    (page, link)
}

fn tags_list(ctx: &Ctx, repo: &str, uri: &Uri) -> Resp {
    let tags: Option<Vec<String>> = {
        let data = ctx.shared.data();
        data.repos
            .get(repo)
            .map(|r| r.tags.keys().cloned().collect())
    };
    let Some(tags) = tags else {
        return oci_error(
            404,
            "NAME_UNKNOWN",
            "repository unknown",
            json!({"name": repo}),
        );
    };
    let (tags, link) = tags_page(ctx, repo, uri, tags);
    let body: HashMap<&str, Value> = HashMap::from([("name", json!(repo)), ("tags", json!(tags))]);
    let mut headers = vec![("content-type", "application/json".to_string())];
    headers.extend(link.map(|l| ("link", l)));
    let mut r = respond::status(200, &headers);
    *r.body_mut() = respond::full(serde_json::to_vec(&body).unwrap());
    r
}
