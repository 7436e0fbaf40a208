//! Authentication: learns the scheme from a 401 challenge, sends Basic credentials or fetches
//! bearer tokens (anonymous or with credentials) and caches them per scope set until they expire.
//!
//! Credentials are per repository: a request's first scope names the repository it is for, and
//! the credential source's most specific key (`host/namespace` before `host`) decides which
//! credential goes with it, for Basic and for the token request alike. Tokens are cached per
//! credential and scope set.
//!
//! A token fetch is one attempt; a failure goes back to the request's retry engine.
//!
//! Secrets (passwords, tokens) are only ever placed in `Authorization` headers marked sensitive;
//! no error or log line contains them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use url::Url;

use super::challenge::{covers, merge, parse_challenges, Challenge};
use super::errors::{describe, redact, Ctx};
use super::headers::retry_after;
use super::retry::Failure;
use super::stats::Counters;
use crate::creds::{Credential, CredentialSource};
use crate::error::{Error, Op, Result};

/// Lifetime assumed when a token response has no (or a too small) `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// How the registry wants to be authenticated, as learnt from its challenge.
#[derive(Clone, Debug)]
enum Scheme {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

struct Token {
    /// Whose credential fetched it (`None`: anonymous).
    who: Option<String>,
    scopes: Vec<String>,
    value: String,
    /// Refreshed once this is reached (a little before the real expiry).
    refresh_at: Instant,
}

#[derive(Default)]
struct State {
    scheme: Option<Scheme>,
    /// Looked up once per repository (`""`: the registry itself); `None` = anonymous.
    credentials: HashMap<String, Option<Credential>>,
    tokens: Vec<Token>,
}

/// What a 401 taught us: whether another attempt can succeed, and with which scopes.
pub enum Retry {
    With(Vec<String>),
    No,
}

/// The repository a scope list is for: the first `repository:NAME:ACTIONS` scope's name.
fn scope_repository(scopes: &[String]) -> &str {
    scopes
        .first()
        .and_then(|s| s.strip_prefix("repository:"))
        .and_then(|s| s.rsplit_once(':'))
        .map(|(name, _)| name)
        .unwrap_or("")
}

/// Per-registry authentication state, shared by every request of a transport.
pub struct Authenticator {
    /// The registry name as the user wrote it: the key for credential lookup.
    registry: String,
    credentials: Arc<dyn CredentialSource>,
    state: Mutex<State>,
    /// One token fetch at a time, so concurrent requests share the token they all need.
    fetching: tokio::sync::Mutex<()>,
}

impl Authenticator {
    pub fn new(registry: &str, credentials: Arc<dyn CredentialSource>) -> Self {
        Authenticator {
            registry: registry.to_string(),
            credentials,
            state: Mutex::new(State::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The credential for requests needing `scopes`: the most specific one of their repository.
    fn credential(&self, scopes: &[String]) -> Result<Option<Credential>> {
        let repo = scope_repository(scopes);
        if let Some(c) = self.state.lock().unwrap().credentials.get(repo) {
            return Ok(c.clone());
        }
        let found = if repo.is_empty() {
            self.credentials.lookup(&self.registry)?
        } else {
            self.credentials.lookup_repo(&self.registry, repo)?
        };
        self.state
            .lock()
            .unwrap()
            .credentials
            .insert(repo.to_string(), found.clone());
        Ok(found)
    }

    /// The username in use for `scopes`, for messages (never the secret).
    pub fn who(&self, scopes: &[String]) -> String {
        match self.credential(scopes) {
            Ok(Some(c)) if c.is_identity_token() => "the identity token".to_string(),
            Ok(Some(c)) => format!("user {:?}", c.username),
            _ => "anonymous".to_string(),
        }
    }

    /// Whether the registry asked for Basic authentication.
    pub fn is_basic(&self) -> bool {
        matches!(self.state.lock().unwrap().scheme, Some(Scheme::Basic))
    }

    /// The `Authorization` header for a request needing `scopes`; `None` before any challenge was
    /// seen (the first request goes out anonymously and learns the scheme from its 401).
    pub async fn header(
        &self,
        http: &reqwest::Client,
        stats: &Counters,
        scopes: &[String],
    ) -> std::result::Result<Option<HeaderValue>, Failure> {
        let scheme = self.state.lock().unwrap().scheme.clone();
        let cred = self.credential(scopes).map_err(Failure::settled)?;
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(cred.map(|c| basic(&c))),
            Some(Scheme::Bearer { realm, service }) => {
                let who = cred.as_ref().map(|c| c.username.clone());
                if let Some(t) = self.cached(&who, scopes) {
                    return Ok(Some(bearer(&t)));
                }
                let _one = self.fetching.lock().await;
                if let Some(t) = self.cached(&who, scopes) {
                    return Ok(Some(bearer(&t)));
                }
                let fetch = Fetch {
                    http,
                    realm: &realm,
                    service: service.as_deref(),
                    scopes,
                };
                stats.add_token_fetch();
                let token = self.fetch(&fetch, cred.as_ref()).await?;
                let value = token.value.clone();
                self.state.lock().unwrap().tokens.push(token);
                Ok(Some(bearer(&value)))
            }
        }
    }

    fn cached(&self, who: &Option<String>, scopes: &[String]) -> Option<String> {
        let mut st = self.state.lock().unwrap();
        let now = Instant::now();
        st.tokens.retain(|t| t.refresh_at > now);
        st.tokens
            .iter()
            .find(|t| &t.who == who && scopes.iter().all(|s| covers(&t.scopes, s)))
            .map(|t| t.value.clone())
    }

    /// Learns from a 401 answer to a request that needed `scopes` and was sent with (`sent`) or
    /// without an `Authorization` header. Drops the token that was refused.
    pub fn on_unauthorized(
        &self,
        headers: &reqwest::header::HeaderMap,
        scopes: &[String],
        sent: bool,
    ) -> Retry {
        let challenges: Vec<Challenge> = headers
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let pick = |name: &str| challenges.iter().find(|c| c.scheme == name);
        if let Some(ch) = pick("bearer") {
            let Some(realm) = ch.param("realm").and_then(|r| Url::parse(r).ok()) else {
                return Retry::No;
            };
            let asked: Vec<String> = ch
                .param("scope")
                .map(|s| s.split(' ').map(str::to_string).collect())
                .unwrap_or_default();
            let service = ch.param("service").map(str::to_string);
            let mut st = self.state.lock().unwrap();
            st.scheme = Some(Scheme::Bearer { realm, service });
            // Forget tokens that were meant to cover this request: they were refused or expired.
            st.tokens
                .retain(|t| !scopes.iter().all(|s| covers(&t.scopes, s)));
            return Retry::With(merge(scopes, &asked));
        }
        if pick("basic").is_some() {
            self.state.lock().unwrap().scheme = Some(Scheme::Basic);
            if !sent && matches!(self.credential(scopes), Ok(Some(_))) {
                return Retry::With(scopes.to_vec());
            }
        }
        Retry::No
    }

    /// One token request. Refusals are final; 5xx and dropped connections go back to the
    /// request's engine.
    async fn fetch(
        &self,
        f: &Fetch<'_>,
        cred: Option<&Credential>,
    ) -> std::result::Result<Token, Failure> {
        let ctx = Ctx {
            registry: self.registry.clone(),
            repository: String::new(),
            op: Op::Auth,
            target: redact(f.realm),
        };
        let sent = Instant::now();
        let resp = token_request(f, cred)
            .send()
            .await
            .map_err(|e| ctx.transport(e))?;
        let status = resp.status().as_u16();
        match status {
            200 => {}
            401 | 403 => {
                let who = match cred {
                    Some(c) if c.is_identity_token() => "the identity token".to_string(),
                    Some(c) => format!("user {:?}", c.username),
                    None => "anonymous".to_string(),
                };
                return Err(Failure::settled(self.auth_error(format!(
                    "the token server {} refused {who} (HTTP {status})",
                    ctx.target
                ))));
            }
            _ => {
                let wait = retry_after(resp.headers());
                let error = ctx.status_error(resp).await;
                return Err(Failure::after(error, wait));
            }
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| ctx.transport_message(describe(e)))?;
        self.parse_token(&body, f.scopes, cred, sent)
            .map_err(Failure::settled)
    }

    fn parse_token(
        &self,
        body: &[u8],
        scopes: &[String],
        cred: Option<&Credential>,
        sent: Instant,
    ) -> Result<Token> {
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let a: Answer = serde_json::from_slice(body)
            .map_err(|e| self.auth_error(format!("unreadable token response: {e}")))?;
        let value = a
            .token
            .filter(|t| !t.is_empty())
            .or(a.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| self.auth_error("the token response has no token".into()))?;
        let lifetime = a
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        Ok(Token {
            who: cred.map(|c| c.username.clone()),
            scopes: scopes.to_vec(),
            value,
            refresh_at: sent + lifetime.mul_f64(0.9),
        })
    }

    pub fn auth_error(&self, reason: String) -> Error {
        Error::Auth {
            registry: self.registry.clone(),
            reason,
        }
    }
}

/// `GET realm?service=&scope=` with Basic credentials, or for an identity token the OAuth2
/// refresh-token grant (`POST realm`), as docker does.
fn token_request(f: &Fetch<'_>, cred: Option<&Credential>) -> reqwest::RequestBuilder {
    if let Some(c) = cred.filter(|c| c.is_identity_token()) {
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", c.secret.clone()),
            ("client_id", "ferry".to_string()),
        ];
        if let Some(s) = f.service {
            form.push(("service", s.to_string()));
        }
        if !f.scopes.is_empty() {
            form.push(("scope", f.scopes.join(" ")));
        }
        return f.http.post(f.realm.clone()).form(&form);
    }
    let mut url = f.realm.clone();
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = f.service {
            q.append_pair("service", s);
        }
        for s in f.scopes {
            q.append_pair("scope", s);
        }
    }
    let req = f.http.get(url);
    match cred {
        Some(c) => req.header(AUTHORIZATION, basic(c)),
        None => req,
    }
}

/// One token request.
struct Fetch<'a> {
    http: &'a reqwest::Client,
    realm: &'a Url,
    service: Option<&'a str>,
    scopes: &'a [String],
}

fn basic(c: &Credential) -> HeaderValue {
    let raw = format!("{}:{}", c.username, c.secret);
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
    sensitive(&format!("Basic {encoded}"))
}

fn bearer(token: &str) -> HeaderValue {
    sensitive(&format!("Bearer {token}"))
}

fn sensitive(v: &str) -> HeaderValue {
    // Tokens and base64 are visible ASCII; a token with other bytes yields an empty header.
    let mut h = HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_scope_names_the_repository() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            scope_repository(&s(&["repository:team/app:pull,push", "repository:b:pull"])),
            "team/app"
        );
        assert_eq!(scope_repository(&s(&["registry:catalog:*"])), "");
        assert_eq!(scope_repository(&[]), "");
    }
}
