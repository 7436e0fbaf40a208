//! Manifests and tags over the distribution API: HEAD to resolve, GET with every supported type
//! in `Accept` (bytes kept exactly, size capped, digest verified), PUT by digest or by tag.
//!
//! Several tags at once: `PUT /v2/<name>/manifests/<digest>?tag=a&tag=b` where the registry
//! supports it (it answers with `OCI-Tag` headers naming the tags it applied), else one PUT per
//! tag. The first multi-tag PUT to a registry finds out which (the probe: the request is needed
//! anyway) and the client remembers; concurrent callers wait for the probe's answer.

pub mod referrers;

use std::sync::OnceLock;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use url::Url;

use super::repo::Repo;
use super::transport::errors::Ctx;
use super::transport::headers::{content_digest, header_str, header_u64, next_link};
use super::transport::stats::Kind;
use super::transport::{Fetched, Req};
use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{self, Descriptor, RawManifest};
use crate::store::Target;

/// The header a registry sends for the tags a `?tag=` manifest PUT applied.
const OCI_TAG: &str = "oci-tag";

/// What one registry does with `?tag=` on a manifest PUT, learnt by the first PUT with several
/// tags. (distribution 2.8 ignores the parameter: it stores by digest and sends no `OCI-Tag`.)
#[derive(Default)]
pub struct TagQuery {
    answer: OnceLock<bool>,
    probing: tokio::sync::Mutex<()>,
}

impl TagQuery {
    /// `Some(true)` when `?tag=` works, `Some(false)` when it does not, `None` before the probe.
    pub fn known(&self) -> Option<bool> {
        self.answer.get().copied()
    }
}

/// Tags asked for per page (`?n=`; registries may send fewer, and link the next page).
const TAGS_PAGE: usize = 1000;
/// A tags list page larger than this is refused.
const MAX_TAGS_PAGE: usize = 64 * 1024 * 1024;
/// Pages followed through `Link` headers before giving up (a loop guard).
const MAX_TAG_PAGES: usize = 100_000;

fn manifest_req(repo: &Repo, method: Method, target: &Target, kind: Kind) -> Req {
    let url = repo.url(&format!("manifests/{target}"));
    Req::new(method, url, repo.pull(), kind).header(ACCEPT, manifest::ACCEPT)
}

fn bad_answer(ctx: &Ctx, reason: String) -> Error {
    Error::BadAnswer {
        op: ctx.op,
        registry: ctx.registry.clone(),
        repository: ctx.repository.clone(),
        target: ctx.target.clone(),
        reason,
    }
}

fn not_found(ctx: &Ctx, what: String) -> Error {
    Error::NotFound {
        what,
        location: ctx.location(),
    }
}

fn mismatch(ctx: &Ctx, expected: &Digest, actual: &Digest, size: u64) -> Error {
    Error::DigestMismatch {
        location: ctx.location(),
        expected: expected.clone(),
        expected_size: size,
        actual: actual.clone(),
        actual_size: size,
    }
}

/// GET a manifest: capped at [`manifest::MAX_MANIFEST_BYTES`], digest verified against the
/// requested digest and against `Docker-Content-Digest` when the registry sends one.
pub async fn get(repo: &Repo, target: &Target) -> Result<RawManifest> {
    let ctx = repo.ctx(Op::GetManifest, target.to_string());
    let req = manifest_req(repo, Method::GET, target, Kind::ManifestGet);
    let too_large = || Error::ManifestTooLarge {
        location: ctx.location(),
        target: target.to_string(),
        limit: manifest::MAX_MANIFEST_BYTES,
    };
    let limit = manifest::MAX_MANIFEST_BYTES;
    let f = repo
        .transport()
        .fetch(&ctx, &req, &[200, 404], limit, &too_large)
        .await?;
    if f.status == 404 {
        return Err(not_found(&ctx, format!("manifest {target}")));
    }
    let m = RawManifest::new(f.body.clone(), header_str(&f.headers, CONTENT_TYPE))?;
    let size = m.bytes.len() as u64;
    if let Target::Digest(want) = target {
        if &m.digest != want {
            return Err(mismatch(&ctx, want, &m.digest, size));
        }
    }
    if let Some(said) = content_digest(&f.headers) {
        if said != m.digest {
            return Err(mismatch(&ctx, &said, &m.digest, size));
        }
    }
    Ok(m)
}

/// HEAD a manifest; falls back to GET when the answer lacks the digest, type or size.
pub async fn resolve(repo: &Repo, target: &Target) -> Result<Option<Descriptor>> {
    let ctx = repo.ctx(Op::HeadManifest, target.to_string());
    let req = manifest_req(repo, Method::HEAD, target, Kind::ManifestHead);
    let resp = repo.transport().execute(&ctx, &req, &[200, 404]).await?;
    if resp.status() == 404 {
        return Ok(None);
    }
    let h = resp.headers();
    let digest = content_digest(h);
    let media_type = header_str(h, CONTENT_TYPE)
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| c.starts_with("application/vnd."));
    let size = header_u64(h, reqwest::header::CONTENT_LENGTH);
    if let (Some(digest), Some(media_type), Some(size)) = (digest, media_type, size) {
        if let Target::Digest(want) = target {
            if &digest != want {
                return Err(mismatch(&ctx, want, &digest, size));
            }
        }
        return Ok(Some(Descriptor {
            media_type,
            digest,
            size,
            platform: None,
        }));
    }
    match get(repo, target).await {
        Ok(m) => Ok(Some(m.descriptor())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Stores the manifest and points `tags` at it. No tag: one PUT by digest. One tag: one PUT by
/// tag (which stores it by digest too). Several: `?tag=` where it works, one PUT per tag where
/// it does not (or for any tag the registry did not confirm).
/// A PUT of a manifest with a `subject` tells `referrers` whether the registry indexed it.
pub async fn put(
    repo: &Repo,
    query: &TagQuery,
    referrers: &referrers::Capability,
    m: &RawManifest,
    tags: &[String],
) -> Result<()> {
    if tags.len() < 2 {
        let target = match tags.first() {
            Some(t) => Target::Tag(t.clone()),
            None => Target::Digest(m.digest.clone()),
        };
        let url = repo.url(&format!("manifests/{target}"));
        let headers = send_put(repo, m, &target, url).await?;
        referrers.saw_put(m, &headers);
        return Ok(());
    }
    let mut remaining: Vec<&String> = tags.iter().collect();
    if query.known() != Some(false) {
        let _probe = match query.known() {
            Some(_) => None,
            None => Some(query.probing.lock().await),
        };
        if query.known() != Some(false) {
            let applied = put_with_tag_query(repo, m, tags).await?;
            let _ = query.answer.set(!applied.is_empty());
            remaining.retain(|t| !applied.contains(t));
        }
    }
    for tag in remaining {
        put_one(repo, m, &Target::Tag(tag.clone())).await?;
    }
    Ok(())
}

/// `PUT .../manifests/<digest>?tag=a&tag=b`: the tags the registry says it applied (`OCI-Tag`).
/// A 400 is taken as "the query form is not understood": nothing applied, per-tag PUTs follow
/// (and report any real problem with the manifest).
async fn put_with_tag_query(repo: &Repo, m: &RawManifest, tags: &[String]) -> Result<Vec<String>> {
    let target = Target::Digest(m.digest.clone());
    let mut url = repo.url(&format!("manifests/{target}"));
    for t in tags {
        url.query_pairs_mut().append_pair("tag", t);
    }
    let headers = match send_put(repo, m, &target, url).await {
        Ok(h) => h,
        Err(e) if e.status() == Some(400) => {
            tracing::debug!(registry = %repo.registry(), error = %e, "manifest PUT with ?tag= refused; one PUT per tag");
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let applied: Vec<String> = headers
        .get_all(OCI_TAG)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| tags.contains(t))
        .collect();
    tracing::debug!(registry = %repo.registry(), ?applied, "manifest PUT with ?tag=");
    Ok(applied)
}

async fn put_one(repo: &Repo, m: &RawManifest, target: &Target) -> Result<()> {
    let url = repo.url(&format!("manifests/{target}"));
    send_put(repo, m, target, url).await.map(drop)
}

/// One manifest PUT to `url`; checks the digest the registry says it stored.
async fn send_put(
    repo: &Repo,
    m: &RawManifest,
    target: &Target,
    url: Url,
) -> Result<reqwest::header::HeaderMap> {
    let ctx = repo.ctx(Op::PutManifest, target.to_string());
    let req = Req::new(Method::PUT, url, repo.push(), Kind::ManifestPut)
        .header(CONTENT_TYPE, &m.media_type)
        .body(m.bytes.clone());
    let resp = repo
        .transport()
        .execute(&ctx, &req, &[200, 201, 202, 204])
        .await?;
    if let Some(stored) = content_digest(resp.headers()) {
        if stored != m.digest {
            return Err(mismatch(&ctx, &m.digest, &stored, m.bytes.len() as u64));
        }
    }
    tracing::debug!(registry = %ctx.registry, repository = %ctx.repository, target = %target, "manifest stored");
    Ok(resp.headers().clone())
}

/// Every tag of the repository, following `Link` pages. A repository the registry does not know
/// (404) has no tags.
pub async fn list_tags(repo: &Repo) -> Result<Vec<String>> {
    let ctx = repo.ctx(Op::ListTags, "tags");
    let mut url = repo.url("tags/list");
    url.query_pairs_mut()
        .append_pair("n", &TAGS_PAGE.to_string());
    let mut tags = Vec::new();
    for _ in 0..MAX_TAG_PAGES {
        let req = Req::new(Method::GET, url.clone(), repo.pull(), Kind::TagList);
        let too_large = || {
            bad_answer(
                &ctx,
                format!("a tags list page is larger than {MAX_TAGS_PAGE} bytes"),
            )
        };
        let f: Fetched = repo
            .transport()
            .fetch(&ctx, &req, &[200, 404], MAX_TAGS_PAGE, &too_large)
            .await?;
        if f.status == 404 {
            return Ok(tags);
        }
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let page: Page = serde_json::from_slice(&f.body)
            .map_err(|e| bad_answer(&ctx, format!("unreadable tags list: {e}")))?;
        tags.extend(page.tags.unwrap_or_default());
        match next_link(&url, &f.headers) {
            Some(next) => url = next,
            None => return Ok(tags),
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    #[test]
    fn link_next_is_followed() {
        let base = Url::parse("http://r:5000/v2/a/tags/list").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("</v2/a/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&base, &h).unwrap().as_str(),
            "http://r:5000/v2/a/tags/list?last=b&n=2"
        );
        h.insert(
            LINK,
            HeaderValue::from_static("<http://x/prev>; rel=\"prev\""),
        );
        assert!(next_link(&base, &h).is_none());
        assert!(next_link(&base, &HeaderMap::new()).is_none());
    }
}
