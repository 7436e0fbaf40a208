//! Cross-repository mounts: `POST ?mount=<digest>&from=<repository>`, which sends no blob bytes.

use bytes::Bytes;
use reqwest::Method;

use super::super::repo::Repo;
use super::super::transport::challenge::pull_scope;
use super::super::transport::headers::location;
use super::super::transport::stats::Kind;
use super::super::transport::Req;
use super::session::cancel;
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;

/// Mounts `desc` from `from` into this repository. 201 → mounted; 202 → the registry opened an
/// upload session instead (cancelled here); 401/403/404 or a refused token → not mounted.
pub(in super::super) async fn mount(repo: &Repo, desc: &Descriptor, from: &str) -> Result<bool> {
    if from == repo.name() {
        return Ok(false);
    }
    let ctx = repo.ctx(Op::MountBlob, desc.digest.to_string());
    let mut url = repo.url("blobs/uploads/");
    url.query_pairs_mut()
        .append_pair("mount", &desc.digest.to_string())
        .append_pair("from", from);
    let mut scopes = repo.push();
    scopes.push(pull_scope(from));
    let req = Req::new(Method::POST, url.clone(), scopes, Kind::Mount).body(Bytes::new());
    let accept = [201, 202, 401, 403, 404];
    let resp = match repo.transport().execute(&ctx, &req, &accept).await {
        Ok(r) => r,
        Err(e @ Error::Auth { .. }) => {
            tracing::debug!(registry = %ctx.registry, from, error = %e, "mount not authorised; uploading instead");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match resp.status().as_u16() {
        201 => {
            repo.transport().stats().add_mounted();
            Ok(true)
        }
        202 => {
            if let Some(session) = location(&url, resp.headers()) {
                cancel(repo, &ctx, &session).await;
            }
            Ok(false)
        }
        status => {
            tracing::debug!(registry = %ctx.registry, from, status, "mount refused; uploading instead");
            Ok(false)
        }
    }
}
