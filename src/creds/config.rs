//! Credentials from docker `config.json` / containers `auth.json` files: which files, lookup order.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::file::{candidate_keys, file_error, normalize_host, parse_file, ConfigFile};
use super::helper::Helper;
use super::{Credential, CredentialSource};
use crate::error::Result;
use crate::reference::DOCKER_HUB;

/// The server URL docker stores Docker Hub credentials under.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Credentials from docker/podman/skopeo configuration files (see the module docs for the
/// order). Helper answers are cached for the life of the value.
pub struct DockerConfig {
    files: Vec<ConfigFile>,
    helper_dir: Option<PathBuf>,
    cache: Mutex<HashMap<(String, String), Option<Credential>>>,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("files", &self.files())
            .field("helper_dir", &self.helper_dir)
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// Loads the files named by the process environment (see [`Self::auth_file_paths`]).
    pub fn load() -> Result<Self> {
        Self::load_from_env(|k| std::env::var_os(k))
    }

    /// Like [`Self::load`], with the environment given as a function (for tests).
    pub fn load_from_env(env: impl Fn(&str) -> Option<OsString>) -> Result<Self> {
        Self::from_paths(Self::auth_file_paths(env))
    }

    /// The files [`Self::load`] reads, most important first, given an environment lookup:
    /// `$REGISTRY_AUTH_FILE` alone if set; else `$XDG_RUNTIME_DIR/containers/auth.json`,
    /// `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`, and
    /// `${DOCKER_CONFIG:-~/.docker}/config.json`.
    pub fn auth_file_paths(env: impl Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
        let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            return vec![file];
        }
        let home = var("HOME");
        let mut paths = Vec::new();
        if let Some(run) = var("XDG_RUNTIME_DIR") {
            paths.push(run.join("containers/auth.json"));
        }
        if let Some(cfg) =
            var("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")))
        {
            paths.push(cfg.join("containers/auth.json"));
        }
        if let Some(docker) =
            var("DOCKER_CONFIG").or_else(|| home.as_ref().map(|h| h.join(".docker")))
        {
            paths.push(docker.join("config.json"));
        }
        paths
    }

    /// One file. A missing file means no credentials.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_paths([path])
    }

    /// One file that must exist (a file the user named, like `--authfile`): a missing file is
    /// an error naming it, not "no credentials".
    pub fn from_existing_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Ok(_) => Self::from_path(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(file_error(path, "no such file"))
            }
            Err(e) => Err(file_error(path, format!("cannot read: {e}"))),
        }
    }

    /// One file, with credential helpers looked up in `helper_dir` instead of `PATH`.
    pub fn from_path_with_helper_dir(
        path: impl AsRef<Path>,
        helper_dir: impl Into<PathBuf>,
    ) -> Result<Self> {
        Ok(Self::from_path(path)?.with_helper_dir(helper_dir))
    }

    /// Several files, most important first; missing ones are skipped.
    pub fn from_paths<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Self> {
        let mut files = Vec::new();
        for path in paths {
            let path = path.as_ref();
            match std::fs::read_to_string(path) {
                Ok(text) => files.push(parse_file(path, &text)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::debug!(path = %path.display(), "no credentials file");
                }
                Err(e) => return Err(file_error(path, format!("cannot read: {e}"))),
            }
        }
        Ok(DockerConfig {
            files,
            helper_dir: None,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Looks credential helpers up in `dir` instead of `PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    /// The files that exist and were loaded, most important first.
    pub fn files(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.path.as_path()).collect()
    }

    fn lookup_in(
        &self,
        file: &ConfigFile,
        host: &str,
        repo: Option<&str>,
    ) -> Result<Option<Credential>> {
        if let Some(helper) = file.cred_helpers.get(host) {
            if let Some(c) = self.run_helper(helper, host)? {
                return Ok(Some(c));
            }
        }
        if let Some(store) = &file.creds_store {
            if let Some(c) = self.run_helper(store, host)? {
                return Ok(Some(c));
            }
        }
        let found = candidate_keys(host, repo).find_map(|k| file.auths.get(&k).cloned());
        Ok(found)
    }

    fn run_helper(&self, name: &str, host: &str) -> Result<Option<Credential>> {
        let server = if host == DOCKER_HUB {
            DOCKER_HUB_SERVER
        } else {
            host
        };
        let key = (name.to_string(), server.to_string());
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let helper = Helper {
            name,
            dir: self.helper_dir.as_deref(),
        };
        let answer = helper.get(server)?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, answer.clone());
        Ok(answer)
    }

    fn lookup_opt(&self, registry: &str, repo: Option<&str>) -> Result<Option<Credential>> {
        let host = normalize_host(registry);
        let repo = repo.map(|r| r.trim_matches('/')).filter(|r| !r.is_empty());
        for file in &self.files {
            if let Some(c) = self.lookup_in(file, &host, repo)? {
                tracing::debug!(registry, file = %file.path.display(), "credentials found");
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

impl CredentialSource for DockerConfig {
    fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        self.lookup_opt(registry, None)
    }

    fn lookup_repo(&self, registry: &str, repository: &str) -> Result<Option<Credential>> {
        self.lookup_opt(registry, Some(repository))
    }
}
