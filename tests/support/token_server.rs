//! A registry token server for tests (Docker token protocol), and the small in-process HTTP server
//! it runs on.
//!
//! The token server signs RS256 JWTs with the key in `tests/fixtures/token/`, puts the signing
//! certificate in the JWT header's `x5c`, grants only what the request's scopes ask for and the
//! user is allowed, and records every request so tests can check which scopes were asked for.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{Request, Response, StatusCode};

/// A response body for [`HttpServer`] handlers.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A request as a handler sees it: the body already read.
pub type Handler = Arc<dyn Fn(Request<Bytes>) -> Response<Body> + Send + Sync>;

/// A full body from bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// An HTTP/1 server on `127.0.0.1:<ephemeral>` running on its own thread; stops on drop.
pub struct HttpServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(handler: Handler) -> HttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, handler, stopped));
        });
        HttpServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    handler: Handler,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    Ok::<_, Infallible>(handler(Request::from_parts(parts, bytes)))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// What a user may do: `actions` on repositories named `repository` (a trailing `*` matches
/// any suffix).
#[derive(Clone, Debug)]
pub struct Grant {
    pub repository: String,
    pub actions: Vec<String>,
}

impl Grant {
    pub fn new(repository: &str, actions: &[&str]) -> Grant {
        Grant {
            repository: repository.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self.repository.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.repository == name,
        }
    }
}

/// How the token server behaves.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub service: String,
    pub issuer: String,
    /// user → (password, grants)
    pub users: HashMap<String, (String, Vec<Grant>)>,
    /// Grants for requests without credentials.
    pub anonymous: Vec<Grant>,
    /// `expires_in` of the answers (`None`: the field is left out).
    pub expires_in: Option<u64>,
    /// Answer with `access_token` instead of `token`.
    pub use_access_token_field: bool,
    /// OAuth2 refresh tokens (docker identity tokens) → user, for `POST` token requests.
    pub refresh_tokens: HashMap<String, String>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            service: "ferry-test-registry".into(),
            issuer: "ferry-test-issuer".into(),
            users: HashMap::new(),
            anonymous: Vec::new(),
            expires_in: Some(300),
            use_access_token_field: false,
            refresh_tokens: HashMap::new(),
        }
    }
}

impl TokenConfig {
    pub fn user(mut self, name: &str, password: &str, grants: Vec<Grant>) -> Self {
        self.users
            .insert(name.to_string(), (password.to_string(), grants));
        self
    }
}

/// One request the token server answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// `POST` with the OAuth2 refresh-token grant (else `GET` with Basic credentials).
    pub oauth: bool,
    /// The Basic user, if credentials were sent (and whether they were right in `status`).
    pub user: Option<String>,
    pub service: Option<String>,
    pub scopes: Vec<String>,
    /// `(repository, actions)` granted in the token.
    pub granted: Vec<(String, Vec<String>)>,
    pub status: u16,
}

/// A running token server.
pub struct TokenServer {
    http: HttpServer,
    config: TokenConfig,
    log: Arc<Mutex<Vec<TokenRequest>>>,
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/token")
        .join(name)
}

struct Signer {
    key: rsa::RsaPrivateKey,
    cert_der: Vec<u8>,
}

impl TokenServer {
    pub fn start(config: TokenConfig) -> TokenServer {
        use rsa::pkcs8::DecodePrivateKey;
        let key_pem = std::fs::read_to_string(fixture("key.pem")).unwrap();
        let signer = Arc::new(Signer {
            key: rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem).unwrap(),
            cert_der: pem_der(&std::fs::read_to_string(fixture("cert.pem")).unwrap()),
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let (cfg, log2) = (config.clone(), log.clone());
        let handler: Handler = Arc::new(move |req| answer(&cfg, &signer, &log2, req));
        TokenServer {
            http: HttpServer::start(handler),
            config,
            log,
        }
    }

    /// The realm URL the registry sends clients to.
    pub fn realm(&self) -> String {
        self.http.url("/token")
    }

    /// The `auth:` section for a registry that trusts this server.
    pub fn auth_yaml(&self) -> String {
        format!(
            "  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            self.realm(),
            self.config.service,
            self.config.issuer,
            fixture("cert.pem").display()
        )
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// The query of a `GET`, or the form body of a `POST`.
fn params(req: &Request<Bytes>) -> Vec<(String, String)> {
    let raw = match req.method().as_str() {
        "POST" => req.body().to_vec(),
        _ => req.uri().query().unwrap_or("").as_bytes().to_vec(),
    };
    url::form_urlencoded::parse(&raw).into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a String> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The user a refresh-token grant names, if the grant is well-formed and the token known.
fn oauth_user(cfg: &TokenConfig, params: &[(String, String)]) -> (Option<String>, bool) {
    let user = (param(params, "grant_type").map(String::as_str) == Some("refresh_token"))
        .then(|| param(params, "refresh_token").and_then(|t| cfg.refresh_tokens.get(t)))
        .flatten();
    (user.cloned(), user.is_some())
}

/// The Basic user, if any, and whether the request may go on (no credentials, or right ones).
fn authenticate(cfg: &TokenConfig, req: &Request<Bytes>) -> (Option<String>, bool) {
    let Some(h) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    else {
        return (None, true);
    };
    let decoded = h
        .strip_prefix("Basic ")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let (user, pass) = decoded.split_once(':').unwrap_or((&decoded, ""));
    let ok = cfg.users.get(user).is_some_and(|(p, _)| p == pass);
    (Some(user.to_string()), ok)
}

fn answer(
    cfg: &TokenConfig,
    signer: &Signer,
    log: &Mutex<Vec<TokenRequest>>,
    req: Request<Bytes>,
) -> Response<Body> {
    let q = params(&req);
    let oauth = req.method() == hyper::Method::POST;
    let scopes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let service = q
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    let (user, ok) = match oauth {
        true => oauth_user(cfg, &q),
        false => authenticate(cfg, &req),
    };
    let mut record = TokenRequest {
        oauth,
        user: user.clone(),
        service,
        scopes: scopes.clone(),
        granted: Vec::new(),
        status: 401,
    };
    if !ok {
        log.lock().unwrap().push(record);
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(full(r#"{"details":"incorrect username or password"}"#))
            .unwrap();
    }
    let grants = match &user {
        Some(u) => &cfg.users[u].1,
        None => &cfg.anonymous,
    };
    record.granted = grant(grants, &scopes);
    record.status = 200;
    let token = sign(cfg, signer, user.as_deref().unwrap_or(""), &record.granted);
    log.lock().unwrap().push(record);
    let field = if cfg.use_access_token_field {
        "access_token"
    } else {
        "token"
    };
    let mut body = serde_json::json!({ field: token });
    if let Some(e) = cfg.expires_in {
        body["expires_in"] = e.into();
    }
    Response::builder()
        .header("content-type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

/// The intersection of what each scope asks for and what the grants allow.
fn grant(grants: &[Grant], scopes: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for s in scopes {
        let mut parts = s.splitn(2, ':');
        let (Some("repository"), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let allowed: Vec<String> = actions
            .split(',')
            .filter(|a| {
                grants
                    .iter()
                    .any(|g| g.matches(name) && g.actions.iter().any(|x| x == a))
            })
            .map(str::to_string)
            .collect();
        if !allowed.is_empty() {
            out.push((name.to_string(), allowed));
        }
    }
    out
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An RS256 JWT with the claims distribution 2.8 checks.
fn sign(cfg: &TokenConfig, signer: &Signer, sub: &str, access: &[(String, Vec<String>)]) -> String {
    use sha2::Digest as _;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({
        "alg": "RS256", "typ": "JWT",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&signer.cert_der)],
    });
    let access: Vec<_> = access
        .iter()
        .map(|(name, actions)| serde_json::json!({"type": "repository", "name": name, "actions": actions}))
        .collect();
    let claims = serde_json::json!({
        "iss": cfg.issuer, "sub": sub, "aud": cfg.service,
        "exp": now + cfg.expires_in.unwrap_or(60), "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", rand::random::<u64>()), "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    // PKCS#1 v1.5 over SHA-256: the DigestInfo prefix, then the hash.
    const SHA256_PREFIX: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    let mut digest_info = SHA256_PREFIX.to_vec();
    digest_info.extend_from_slice(&sha2::Sha256::digest(input.as_bytes()));
    let sig = signer
        .key
        .sign(rsa::Pkcs1v15Sign::new_unprefixed(), &digest_info)
        .unwrap();
    format!("{input}.{}", b64url(&sig))
}
