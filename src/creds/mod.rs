//! Registry credentials: docker `config.json` (auths, credsStore, credHelpers), flags, and chains.
//!
//! # Where credentials come from
//!
//! A [`CredentialSource`] answers "which credential for this registry (and repository)?".
//! The binary builds a [`Chain`]: `--src-creds`/`--dest-creds` ([`StaticCredentials`]) first,
//! then the files docker, podman and skopeo write ([`DockerConfig::load`]).
//!
//! [`DockerConfig::load`] reads, in this order (the first file that has a credential for the
//! registry wins; missing files are skipped):
//!
//! 1. `$REGISTRY_AUTH_FILE` if set: then *only* that file (skopeo/podman behaviour).
//! 2. `$XDG_RUNTIME_DIR/containers/auth.json` (written by `podman login`/`skopeo login`).
//! 3. `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/containers/auth.json`).
//! 4. `$DOCKER_CONFIG/config.json` if `DOCKER_CONFIG` is set, else `~/.docker/config.json`.
//!
//! Within one file the order is docker's: `credHelpers[registry]`, then `credsStore`, then the
//! `auths` entries. `auths` keys may be `host`, `https://host`, `http://host/v1/` (legacy URL
//! forms, reduced to their host), `https://index.docker.io/v1/` for Docker Hub (`docker.io`), or
//! skopeo-style `host/namespace[/repo]` prefixes: the most specific prefix of the repository wins.
//!
//! # Secrets
//!
//! Secrets never appear in `Debug` output, logs or errors: errors name the file, the entry and
//! what is wrong, never a value.

mod config;
mod file;
mod helper;

use std::sync::Arc;

use crate::error::{Error, Result};

pub use config::DockerConfig;

/// What a [`Credential`]'s secret is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    /// A password (or access token used as one) for HTTP Basic or the token endpoint.
    Password,
    /// An OAuth2 refresh token from `docker login` (`identitytoken`), username `<token>`: send it
    /// as `refresh_token` in a `grant_type=refresh_token` POST to the token realm.
    IdentityToken,
}

/// A username and secret (password or identity token). `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
    pub kind: CredentialKind,
}

/// The username docker uses for identity tokens.
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";

impl Credential {
    /// A username and password.
    pub fn password(username: impl Into<String>, secret: impl Into<String>) -> Self {
        Credential {
            username: username.into(),
            secret: secret.into(),
            kind: CredentialKind::Password,
        }
    }

    /// An identity (refresh) token, with docker's `<token>` username.
    pub fn identity_token(token: impl Into<String>) -> Self {
        Credential {
            username: IDENTITY_TOKEN_USERNAME.to_string(),
            secret: token.into(),
            kind: CredentialKind::IdentityToken,
        }
    }

    /// True when the secret is an identity (refresh) token rather than a password.
    pub fn is_identity_token(&self) -> bool {
        self.kind == CredentialKind::IdentityToken
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential {{ username: {:?}, secret: <redacted>, kind: {:?} }}",
            self.username, self.kind
        )
    }
}

/// Looks up credentials for a registry host (`host[:port]`, Docker Hub as `docker.io`).
pub trait CredentialSource: Send + Sync {
    /// The credential for `registry` as a whole.
    fn lookup(&self, registry: &str) -> Result<Option<Credential>>;

    /// The credential for one repository of `registry` (e.g. `team/app`); sources that know
    /// per-namespace credentials (skopeo's `host/namespace` keys) override this.
    fn lookup_repo(&self, registry: &str, repository: &str) -> Result<Option<Credential>> {
        let _ = repository;
        self.lookup(registry)
    }
}

/// No credentials anywhere: anonymous access.
pub struct Anonymous;

impl CredentialSource for Anonymous {
    fn lookup(&self, _registry: &str) -> Result<Option<Credential>> {
        Ok(None)
    }
}

/// One credential given on the command line (`--src-creds user:password`), for every registry
/// of the side it was given for.
#[derive(Clone, Debug)]
pub struct StaticCredentials {
    credential: Credential,
}

impl StaticCredentials {
    pub fn new(credential: Credential) -> Self {
        StaticCredentials { credential }
    }

    /// Parses `user:password` (the password may contain `:` and may be empty). The error never
    /// contains the input.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((user, password)) = s.split_once(':') else {
            return Err(Error::Credentials {
                reason: "expected USERNAME:PASSWORD, but there is no ':'".into(),
            });
        };
        if user.is_empty() {
            return Err(Error::Credentials {
                reason: "expected USERNAME:PASSWORD, but the username is empty".into(),
            });
        }
        Ok(Self::new(Credential::password(user, password)))
    }

    pub fn credential(&self) -> &Credential {
        &self.credential
    }
}

impl std::str::FromStr for StaticCredentials {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl CredentialSource for StaticCredentials {
    fn lookup(&self, _registry: &str) -> Result<Option<Credential>> {
        Ok(Some(self.credential.clone()))
    }
}

/// Several sources asked in order: the first that has a credential wins. An error from a source
/// stops the search (a broken helper must not silently fall back to other credentials).
#[derive(Clone, Default)]
pub struct Chain {
    sources: Vec<Arc<dyn CredentialSource>>,
}

impl Chain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a source, asked after those already in the chain.
    pub fn with(mut self, source: impl CredentialSource + 'static) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Appends a shared source.
    pub fn with_shared(mut self, source: Arc<dyn CredentialSource>) -> Self {
        self.sources.push(source);
        self
    }

    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

impl CredentialSource for Chain {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        for source in &self.sources {
            if let Some(c) = source.lookup(registry)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn lookup_repo(&self, registry: &str, repository: &str) -> Result<Option<Credential>> {
        for source in &self.sources {
            if let Some(c) = source.lookup_repo(registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secret() {
        let c = Credential::password("alice", "hunter2");
        let s = format!("{c:?}");
        assert!(s.contains("alice") && !s.contains("hunter2"), "{s}");
        let t = Credential::identity_token("tok-secret");
        assert!(t.is_identity_token());
        assert_eq!(t.username, "<token>");
        assert!(!format!("{t:?}").contains("tok-secret"));
    }

    #[test]
    fn static_parse() {
        let c = StaticCredentials::parse("bob:pa:ss").unwrap();
        assert_eq!(c.credential(), &Credential::password("bob", "pa:ss"));
        assert_eq!(
            StaticCredentials::parse("bob:")
                .unwrap()
                .credential()
                .secret,
            ""
        );
        for bad in ["bob-secretpw", ":secretpw"] {
            let e = StaticCredentials::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("secretpw") && !e.contains("bob"), "{e}");
            assert!(e.contains("USERNAME:PASSWORD"), "{e}");
        }
    }
}
