//! Deleting over the distribution API: `DELETE /v2/<name>/manifests/<digest>` removes the whole
//! manifest (and so every tag on it); `DELETE .../manifests/<tag>` removes the tag alone, where
//! the registry allows it (OCI distribution 1.1 makes it optional: many answer 400 or 405).
//!
//! Refusals become [`Error::Unsupported`] with the reason (deletion disabled, tags not deletable
//! apart from their manifest), so a caller can choose another way; a 404 is [`Error::NotFound`].

use reqwest::Method;

use super::repo::Repo;
use super::transport::errors::Ctx;
use super::transport::stats::Kind;
use super::transport::Req;
use crate::error::{Error, Op, Result};
use crate::store::Target;

/// Deletes the tag or the manifest `target` names.
pub async fn delete(repo: &Repo, target: &Target) -> Result<()> {
    let op = match target {
        Target::Tag(_) => Op::DeleteTag,
        Target::Digest(_) => Op::DeleteManifest,
    };
    let ctx = repo.ctx(op, target.to_string());
    let url = repo.url(&format!("manifests/{target}"));
    let req = Req::new(Method::DELETE, url, repo.delete(), Kind::Other);
    match repo.transport().execute(&ctx, &req, &[200, 202, 204]).await {
        Ok(_) => {
            tracing::debug!(registry = %ctx.registry, repository = %ctx.repository, %target, "deleted");
            Ok(())
        }
        Err(e) => Err(refusal(&ctx, target, e)),
    }
}

/// What a failed DELETE means: absent, not allowed here, or the registry's own error.
fn refusal(ctx: &Ctx, target: &Target, e: Error) -> Error {
    let codes: Vec<String> = match e.root() {
        Error::Registry { codes, .. } => codes.iter().map(|c| c.code.clone()).collect(),
        _ => Vec::new(),
    };
    let unsupported = |reason: String| Error::Unsupported {
        op: ctx.op,
        location: ctx.location(),
        target: target.to_string(),
        reason,
    };
    let status = e.status();
    let said = if codes.is_empty() {
        String::new()
    } else {
        format!(", {}", codes.join(", "))
    };
    match (status, target) {
        (Some(404), _) if !codes.iter().any(|c| c == "UNSUPPORTED") => Error::NotFound {
            what: format!("manifest {target}"),
            location: ctx.location(),
        },
        (Some(405), _) => unsupported(format!(
            "the registry does not allow deleting (HTTP 405{said}); a distribution registry needs `storage: delete: enabled: true`"
        )),
        (Some(400), Target::Tag(_)) => unsupported(format!(
            "the registry deletes manifests by digest only, not tags (HTTP 400{said})"
        )),
        _ if codes.iter().any(|c| c == "UNSUPPORTED") => {
            unsupported(format!("the registry answered HTTP {}{said}", status.unwrap_or(0)))
        }
        _ => e,
    }
}
