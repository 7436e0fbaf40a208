//! Parsing and validating one docker `config.json` / containers `auth.json` file.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value};

use super::Credential;
use crate::error::{Error, Result};
use crate::reference::DOCKER_HUB;

/// One parsed file.
pub(super) struct ConfigFile {
    pub path: PathBuf,
    /// Normalized key (`host` or `host/namespace`) → credential.
    pub auths: HashMap<String, Credential>,
    pub creds_store: Option<String>,
    /// Normalized host → helper name.
    pub cred_helpers: HashMap<String, String>,
}

/// `host/a/b/c`, `host/a/b`, `host/a`, `host`: most specific first.
pub(super) fn candidate_keys<'a>(
    host: &'a str,
    repo: Option<&'a str>,
) -> impl Iterator<Item = String> + 'a {
    let parts: Vec<&str> = repo.map(|r| r.split('/').collect()).unwrap_or_default();
    (0..=parts.len()).rev().map(move |n| {
        if n == 0 {
            host.to_string()
        } else {
            format!("{host}/{}", parts[..n].join("/"))
        }
    })
}

/// Lowercase host, Docker Hub aliases folded into `docker.io`.
pub(super) fn normalize_host(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    }
}

/// Splits an `auths`/`credHelpers` key into (normalized key, whether it was a URL). A URL key
/// (`https://host/v1/`) stands for its host; a bare key keeps its namespace (`host/team`).
fn normalize_key(raw: &str) -> (String, bool) {
    let raw = raw.trim();
    let lower = raw.to_ascii_lowercase();
    let (rest, url) = if lower.starts_with("https://") {
        (&raw[8..], true)
    } else if lower.starts_with("http://") {
        (&raw[7..], true)
    } else {
        (raw, false)
    };
    let rest = rest.trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = normalize_host(host);
    if url || path.is_empty() {
        (host, url)
    } else {
        (format!("{host}/{path}"), false)
    }
}

pub(super) fn file_error(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Credentials {
        reason: format!("{}: {what}", path.display()),
    }
}

/// Parses and validates one file. Errors never quote values: only names and positions.
pub(super) fn parse_file(path: &Path, text: &str) -> Result<ConfigFile> {
    let mut file = ConfigFile {
        path: path.to_path_buf(),
        auths: HashMap::new(),
        creds_store: None,
        cred_helpers: HashMap::new(),
    };
    if text.trim().is_empty() {
        return Ok(file);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        file_error(
            path,
            format!(
                "invalid JSON at line {}, column {}: {}",
                e.line(),
                e.column(),
                json_problem(&e)
            ),
        )
    })?;
    let Value::Object(top) = value else {
        return Err(file_error(path, "expected a JSON object at the top level"));
    };
    let err = |what: String| file_error(path, what);
    file.creds_store = string_field(&top, "credsStore")
        .map_err(err)?
        .filter(|s| !s.is_empty());
    if let Some(helpers) = object_field(&top, "credHelpers").map_err(err)? {
        for (key, helper) in helpers {
            let Value::String(helper) = helper else {
                return Err(err(format!("`credHelpers` entry {key:?} must be a string")));
            };
            file.cred_helpers
                .insert(normalize_key(key).0, helper.clone());
        }
    }
    if let Some(auths) = object_field(&top, "auths").map_err(err)? {
        file.auths = parse_auths(auths).map_err(err)?;
    }
    Ok(file)
}

/// What went wrong in a JSON syntax error, without quoting the input.
fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "unexpected end of file".into(),
        Category::Syntax => {
            // serde_json's syntax messages name the problem, never the input; drop its position.
            let s = e.to_string();
            s.split(" at line ")
                .next()
                .unwrap_or("syntax error")
                .to_string()
        }
        Category::Io | Category::Data => "malformed".into(),
    }
}

fn string_field(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

fn object_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("`{name}` must be an object")),
    }
}

/// Parses `auths`. When several keys name the same place (`host` and `https://host`), the bare
/// key wins over the URL form.
fn parse_auths(auths: &Map<String, Value>) -> Result<HashMap<String, Credential>, String> {
    let mut by_key: BTreeMap<String, (bool, Credential)> = BTreeMap::new();
    for (raw, entry) in auths {
        let entry = match entry {
            Value::Null => continue,
            Value::Object(m) => m,
            _ => return Err(format!("`auths` entry {raw:?} must be an object")),
        };
        let Some(cred) = parse_entry(entry).map_err(|w| format!("`auths` entry {raw:?}: {w}"))?
        else {
            continue;
        };
        let (key, url) = normalize_key(raw);
        let keep_old = matches!(by_key.get(&key), Some((false, _))) && url;
        if !keep_old {
            by_key.insert(key, (url, cred));
        }
    }
    Ok(by_key.into_iter().map(|(k, (_, c))| (k, c)).collect())
}

/// One `auths` entry: `identitytoken`, else `auth` (base64 `user:password`), else
/// `username`/`password`. Every present field is validated.
fn parse_entry(entry: &Map<String, Value>) -> Result<Option<Credential>, String> {
    let auth = string_field(entry, "auth")?.filter(|s| !s.trim().is_empty());
    let username = string_field(entry, "username")?.filter(|s| !s.is_empty());
    let password = string_field(entry, "password")?.unwrap_or_default();
    let token = string_field(entry, "identitytoken")?.filter(|s| !s.is_empty());
    let decoded = auth.map(|a| decode_auth(&a)).transpose()?;
    if let Some(token) = token {
        return Ok(Some(Credential::identity_token(token)));
    }
    if let Some((user, pass)) = decoded {
        return Ok(Some(Credential::password(user, pass)));
    }
    Ok(username.map(|u| Credential::password(u, password)))
}

/// Decodes an `auth` field into (user, password), explaining failures without quoting them.
fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine
        .decode(auth.trim())
        .map_err(|_| "`auth` is not valid base64".to_string())?;
    let text = String::from_utf8(bytes)
        .map_err(|_| "`auth` is not base64 of USER:PASSWORD (not UTF-8)".to_string())?;
    match text.split_once(':') {
        Some((user, pass)) if !user.is_empty() => Ok((user.to_string(), pass.to_string())),
        Some(_) => Err("`auth` is base64 of USER:PASSWORD with an empty USER".into()),
        None => Err("`auth` is not base64 of USER:PASSWORD (no ':')".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalize() {
        let n = |k: &str| normalize_key(k).0;
        assert_eq!(n("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(n("http://r.io:5000/v1/"), "r.io:5000");
        assert_eq!(n("https://R.io"), "r.io");
        assert_eq!(n("r.io/team/app/"), "r.io/team/app");
        assert_eq!(n("registry-1.docker.io/library"), "docker.io/library");
    }

    #[test]
    fn candidates_most_specific_first() {
        let c: Vec<String> = candidate_keys("r.io", Some("a/b/c")).collect();
        assert_eq!(c, ["r.io/a/b/c", "r.io/a/b", "r.io/a", "r.io"]);
        let c: Vec<String> = candidate_keys("r.io", None).collect();
        assert_eq!(c, ["r.io"]);
    }

    #[test]
    fn auth_decoding_errors_do_not_quote() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            decode_auth(&b64("u:p:q")).unwrap(),
            ("u".into(), "p:q".into())
        );
        assert!(decode_auth(b64("ab:c").trim_end_matches('=')).is_ok());
        for bad in [b64("nocolonsecret"), "%%%secret".into(), b64(":secret")] {
            let e = decode_auth(&bad).unwrap_err();
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
