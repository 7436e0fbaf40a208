//! Referrers on a registry: the OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`,
//! paged with `Link`, `?artifactType=` filtered by the registry only when it says so with
//! `OCI-Filters-Applied`), else the `sha256-<hex>` fallback tag; and keeping that fallback
//! index up to date at a registry that does not list referrers itself.
//!
//! What a registry can do is learnt once per client: a 404 (or 400/405/406, or an answer
//! that is not an index) from the API means "no API" (not "no referrers"); a manifest PUT
//! with a `subject` answered with `OCI-Subject` means the registry maintains the list.

use std::sync::OnceLock;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;

use super::super::repo::Repo;
use super::super::transport::headers::{header_str, next_link};
use super::super::transport::stats::Kind;
use super::super::transport::Req;
use super::{get, put_one, resolve};
use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{Descriptor, RawManifest, OCI_INDEX};
use crate::referrers::{build_index, fallback_tag, merge, parse_index, wanted, Referrer};
use crate::store::{Linked, Target};

/// The header a registry sends back for a manifest PUT with a `subject` it indexed.
pub const OCI_SUBJECT: &str = "oci-subject";
/// The header naming the filters a registry applied to a referrers answer.
const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";
/// A referrers page larger than this is refused.
const MAX_PAGE: usize = 8 * 1024 * 1024;
/// Pages followed through `Link` before giving up (a loop guard).
const MAX_PAGES: usize = 10_000;
/// Times the fallback index is merged again when another writer changed it meanwhile.
const MERGE_ATTEMPTS: usize = 4;

/// What one registry does with referrers, learnt as requests go.
#[derive(Default)]
pub struct Capability {
    /// Whether `GET /referrers/` is served.
    api: OnceLock<bool>,
    /// Whether manifest PUTs with a `subject` are answered with `OCI-Subject`.
    subject_header: OnceLock<bool>,
}

impl Capability {
    /// `Some(true)` when the registry serves the referrers API, `Some(false)` when it does not
    /// (then the fallback tag is read), `None` before the first listing.
    pub fn api(&self) -> Option<bool> {
        self.api.get().copied()
    }

    /// Records what a manifest PUT of a manifest with a subject answered.
    pub fn saw_put(&self, m: &RawManifest, headers: &reqwest::header::HeaderMap) {
        let Some(subject) = m.subject() else {
            return;
        };
        let said = header_str(headers, OCI_SUBJECT).and_then(|v| v.trim().parse::<Digest>().ok());
        let _ = self.subject_header.set(said == Some(subject.digest));
    }
}

fn referrers_err(repo: &Repo, subject: &Digest, reason: String) -> Error {
    Error::Referrers {
        location: format!("{}/{}", repo.registry(), repo.name()),
        subject: subject.clone(),
        reason,
    }
}

/// The referrers of `subject`, only those of `types` when it is not empty. `listed`: the
/// repository's tags as the caller just listed them, so a fallback tag not among them is not
/// asked for.
pub async fn list(
    repo: &Repo,
    cap: &Capability,
    subject: &Digest,
    types: &[String],
    listed: Option<&std::collections::HashSet<String>>,
) -> Result<Vec<Referrer>> {
    if cap.api() != Some(false) {
        match from_api(repo, subject, types).await? {
            Some(list) => {
                let _ = cap.api.set(true);
                return Ok(list);
            }
            None => {
                let _ = cap.api.set(false);
            }
        }
    }
    if listed.is_some_and(|tags| !tags.contains(&fallback_tag(subject))) {
        return Ok(Vec::new());
    }
    from_fallback_tag(repo, subject, types).await
}

/// The API's answer, every page; `None` when the registry has no referrers API.
async fn from_api(
    repo: &Repo,
    subject: &Digest,
    types: &[String],
) -> Result<Option<Vec<Referrer>>> {
    let ctx = repo.ctx(Op::ListReferrers, subject.to_string());
    let mut url = repo.url(&format!("referrers/{subject}"));
    // The API filters by one type; several are filtered here.
    if let [one] = types {
        url.query_pairs_mut().append_pair("artifactType", one);
    }
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let req =
            Req::new(Method::GET, url.clone(), repo.pull(), Kind::Other).header(ACCEPT, OCI_INDEX);
        let too_large = || {
            referrers_err(
                repo,
                subject,
                format!("a referrers page is larger than {MAX_PAGE} bytes"),
            )
        };
        let f = repo
            .transport()
            .fetch(&ctx, &req, &[200, 400, 404, 405, 406], MAX_PAGE, &too_large)
            .await?;
        let is_index = header_str(&f.headers, CONTENT_TYPE)
            .is_some_and(|c| c.split(';').next().unwrap_or("").trim() == OCI_INDEX);
        if f.status != 200 || !is_index {
            tracing::debug!(registry = %repo.registry(), status = f.status, "no referrers API; reading the fallback tag");
            return Ok(None);
        }
        let Some(page) = parse_index(&f.body) else {
            return Err(referrers_err(
                repo,
                subject,
                "the referrers API answered an unreadable index".into(),
            ));
        };
        let filtered = header_str(&f.headers, OCI_FILTERS_APPLIED)
            .is_some_and(|v| v.split(',').any(|f| f.trim() == "artifactType"));
        let applied = filtered && types.len() == 1;
        out.extend(page.into_iter().filter(|r| applied || wanted(types, r)));
        match next_link(&url, &f.headers) {
            Some(next) => url = next,
            None => return Ok(Some(out)),
        }
    }
    Ok(Some(out))
}

/// The fallback tag's index, filtered; none when the tag is absent, is not an index, or is the
/// subject itself (a registry resolving `sha256-<hex>` as the digest).
async fn from_fallback_tag(
    repo: &Repo,
    subject: &Digest,
    types: &[String],
) -> Result<Vec<Referrer>> {
    let tag = fallback_tag(subject);
    let m = match get(repo, &Target::Tag(tag)).await {
        Ok(m) => m,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if !m.is_index() || &m.digest == subject {
        return Ok(Vec::new());
    }
    let entries = parse_index(&m.bytes).unwrap_or_default();
    Ok(entries.into_iter().filter(|r| wanted(types, r)).collect())
}

/// Makes `referrers` (stored by digest) findable from `subject`: nothing where the registry
/// lists them itself, else the fallback index read, merged (by digest, each entry kept as it
/// is), written and read back; merged again if another writer changed it in between.
pub async fn link(
    repo: &Repo,
    cap: &Capability,
    subject: &Digest,
    referrers: &[Referrer],
) -> Result<Linked> {
    if referrers.is_empty() {
        return Ok(Linked::Unchanged);
    }
    let itself = match cap.subject_header.get() {
        Some(said) => *said,
        None => match cap.api() {
            Some(api) => api,
            // Nothing pushed, nothing listed yet: ask the API (as ggcr does).
            None => {
                let answer = from_api(repo, subject, &[]).await?.is_some();
                let _ = cap.api.set(answer);
                answer
            }
        },
    };
    if itself {
        return Ok(Linked::Itself);
    }
    let tag = fallback_tag(subject);
    let target = Target::Tag(tag.clone());
    let mut wrote = false;
    for _ in 0..MERGE_ATTEMPTS {
        let existing = match get(repo, &target).await {
            Ok(m) if m.is_index() && &m.digest != subject => match parse_index(&m.bytes) {
                Some(entries) => entries,
                None => {
                    return Err(referrers_err(
                        repo,
                        subject,
                        format!("the fallback tag {tag} holds an index ferry cannot read"),
                    ))
                }
            },
            Ok(m) => {
                return Err(referrers_err(
                    repo,
                    subject,
                    format!(
                    "the fallback tag {tag} names {} ({}), not a referrers index; not overwritten",
                    m.digest, m.media_type
                ),
                ))
            }
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let Some(merged) = merge(&existing, referrers) else {
            return Ok(if wrote {
                Linked::Updated
            } else {
                Linked::Unchanged
            });
        };
        let index = build_index(&merged);
        put_one(repo, &index, &target).await?;
        wrote = true;
        match resolve(repo, &target).await? {
            Some(Descriptor { digest, .. }) if digest == index.digest => {
                return Ok(Linked::Updated)
            }
            _ => {
                tracing::debug!(registry = %repo.registry(), %tag, "fallback tag changed by another writer; merging again")
            }
        }
    }
    Err(referrers_err(
        repo,
        subject,
        format!("another writer kept changing the fallback tag {tag} ({MERGE_ATTEMPTS} merges)"),
    ))
}
