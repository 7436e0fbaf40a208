//! Cross-repository mounts: `POST ?mount=<digest>&from=<repository>`, which sends no blob bytes.

use bytes::Bytes;
use reqwest::Method;

use super::super::challenge::{pull_scope, push_scope};
use super::super::client::{location, Req};
use super::super::stats::Kind;
use super::super::RegistryStore;
use super::session::cancel;
use crate::error::{Error, Op, Result};
use crate::manifest::Descriptor;

/// Mounts `desc` from `from` into this repository. 201 → mounted; 202 → the registry opened an
/// upload session instead (cancelled here); 401/403/404 or a refused token → not mounted.
pub(in super::super) async fn mount(
    store: &RegistryStore,
    desc: &Descriptor,
    from: &str,
) -> Result<bool> {
    if from == store.repository {
        return Ok(false);
    }
    let ctx = store.ctx(Op::MountBlob, desc.digest.to_string());
    let mut url = store.url("blobs/uploads/");
    url.query_pairs_mut()
        .append_pair("mount", &desc.digest.to_string())
        .append_pair("from", from);
    let scopes = vec![push_scope(&store.repository), pull_scope(from)];
    let req = Req::new(Method::POST, url.clone(), scopes, Kind::Mount).body(Bytes::new());
    let accept = [201, 202, 401, 403, 404];
    let resp = match store.inner().execute(&ctx, &req, &accept).await {
        Ok(r) => r,
        Err(e @ Error::Auth { .. }) => {
            tracing::debug!(registry = %ctx.registry, from, error = %e, "mount not authorised; uploading instead");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match resp.status().as_u16() {
        201 => {
            store.inner().stats.add_mounted();
            Ok(true)
        }
        202 => {
            if let Some(session) = location(&url, resp.headers()) {
                cancel(store, &ctx, &session).await;
            }
            Ok(false)
        }
        status => {
            tracing::debug!(registry = %ctx.registry, from, status, "mount refused; uploading instead");
            Ok(false)
        }
    }
}
