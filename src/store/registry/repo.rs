//! One repository on a transport: the handle the manifest, blob and upload layers work with
//! (its URLs, token scopes and error context), so none of them reaches into a client.

use std::sync::Arc;

use url::Url;

use super::transport::challenge::{delete_scope, pull_scope, push_scope};
use super::transport::errors::Ctx;
use super::transport::Transport;
use crate::error::Op;

/// A repository of a registry, over a shared transport.
#[derive(Clone, Debug)]
pub struct Repo {
    transport: Arc<Transport>,
    name: String,
}

impl Repo {
    pub fn new(transport: Arc<Transport>, name: &str) -> Self {
        Repo {
            transport,
            name: name.to_string(),
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn shared_transport(&self) -> Arc<Transport> {
        self.transport.clone()
    }

    /// The repository's name (`team/api`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry as the user named it.
    pub fn registry(&self) -> &str {
        self.transport.name()
    }

    /// `/v2/<repository>/<path>`.
    pub fn url(&self, path: &str) -> Url {
        self.transport.url(&format!("{}/{path}", self.name))
    }

    pub fn ctx(&self, op: Op, target: impl Into<String>) -> Ctx {
        Ctx {
            registry: self.transport.name().to_string(),
            repository: self.name.clone(),
            op,
            target: target.into(),
        }
    }

    pub fn pull(&self) -> Vec<String> {
        vec![pull_scope(&self.name)]
    }

    pub fn push(&self) -> Vec<String> {
        vec![push_scope(&self.name)]
    }

    pub fn delete(&self) -> Vec<String> {
        vec![delete_scope(&self.name)]
    }
}
