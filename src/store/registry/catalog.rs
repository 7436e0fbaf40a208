//! The repository catalog (`GET /v2/_catalog?n=`), followed through its `Link` pages: how a
//! sync resolves `repositories: ["*"]`. Not every registry serves it (Docker Hub does not).

use reqwest::Method;

use super::transport::errors::Ctx;
use super::transport::headers::next_link;
use super::transport::stats::Kind;
use super::transport::{Fetched, Req, Transport};
use crate::error::{Error, Op, Result};

/// Names asked for per page.
pub const CATALOG_PAGE: usize = 1000;
/// A catalog page larger than this is refused.
const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;
/// Pages followed before giving up (a loop guard).
const MAX_PAGES: usize = 100_000;

/// Every repository name the registry lists, `page` names per request.
pub async fn list(transport: &Transport, page: usize) -> Result<Vec<String>> {
    let ctx = Ctx {
        registry: transport.name().to_string(),
        repository: String::new(),
        op: Op::ListRepositories,
        target: "_catalog".into(),
    };
    let bad = |reason: String| Error::BadAnswer {
        op: ctx.op,
        registry: ctx.registry.clone(),
        repository: String::new(),
        target: ctx.target.clone(),
        reason,
    };
    let mut url = transport.url("_catalog");
    url.query_pairs_mut()
        .append_pair("n", &page.max(1).to_string());
    let scopes = vec!["registry:catalog:*".to_string()];
    let mut names = Vec::new();
    for _ in 0..MAX_PAGES {
        let req = Req::new(Method::GET, url.clone(), scopes.clone(), Kind::Catalog);
        let too_large = || {
            bad(format!(
                "a catalog page is larger than {MAX_PAGE_BYTES} bytes"
            ))
        };
        let f: Fetched = transport
            .fetch(&ctx, &req, &[200], MAX_PAGE_BYTES, &too_large)
            .await?;
        #[derive(serde::Deserialize)]
        struct Page {
            repositories: Option<Vec<String>>,
        }
        let p: Page =
            serde_json::from_slice(&f.body).map_err(|e| bad(format!("unreadable catalog: {e}")))?;
        names.extend(p.repositories.unwrap_or_default());
        match next_link(&url, &f.headers) {
            Some(next) => url = next,
            None => return Ok(names),
        }
    }
    Ok(names)
}
