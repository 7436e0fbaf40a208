//! Registry credentials: docker `config.json` (auths, credsStore, credHelpers), env, and flags.

use crate::error::Result;

/// A username and secret (password or identity token). `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential {{ username: {:?}, secret: <redacted> }}",
            self.username
        )
    }
}

/// Looks up credentials for a registry host (`host[:port]`, Docker Hub as `docker.io`).
pub trait CredentialSource: Send + Sync {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>>;
}

/// No credentials anywhere: anonymous access.
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn lookup(&self, _registry: &str) -> Result<Option<Credential>> {
        Ok(None)
    }
}
