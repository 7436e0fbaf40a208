//! A ChartMuseum-API server for tests and the demo, following ChartMuseum's documented behaviour
//! (routes, multitenant depth, context path, upload bodies and status codes, auth, DISABLE_API,
//! index.yaml with `digest` and `serverInfo.contextPath`, the 20 MiB body limit).
//!
//! It reads uploaded charts itself (gzip'd tar, `<dir>/Chart.yaml`, `name:`/`version:` lines), not
//! with ferry's code, so it can catch ferry's archive mistakes. Bearer auth compares a static
//! token (ChartMuseum verifies an RS-signed JWT; what matters here is the header and the 401).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use sha2::Digest as _;

/// How the server is configured (ChartMuseum's flags / environment variables).
#[derive(Clone, Debug)]
pub struct MuseumConfig {
    /// `DEPTH`: path segments that name a repository.
    pub depth: usize,
    /// `CONTEXT_PATH`, e.g. `/charts` (empty: none).
    pub context_path: String,
    /// `BASIC_AUTH_USER` / `BASIC_AUTH_PASS`.
    pub basic_auth: Option<(String, String)>,
    /// `--bearer-auth` (a static token here).
    pub bearer_token: Option<String>,
    /// `AUTH_ANONYMOUS_GET`.
    pub anonymous_get: bool,
    /// `DISABLE_API`.
    pub disable_api: bool,
    /// `ALLOW_OVERWRITE`.
    pub allow_overwrite: bool,
    /// `DISABLE_FORCE_OVERWRITE`.
    pub disable_force_overwrite: bool,
    /// `MAX_UPLOAD_SIZE` (bytes).
    pub max_upload_size: usize,
}

impl Default for MuseumConfig {
    fn default() -> Self {
        MuseumConfig {
            depth: 0,
            context_path: String::new(),
            basic_auth: None,
            bearer_token: None,
            anonymous_get: false,
            disable_api: false,
            allow_overwrite: false,
            disable_force_overwrite: false,
            max_upload_size: 20 * 1024 * 1024,
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// repository → file name → bytes
    repos: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    seen: Vec<Seen>,
}

/// A running server on `127.0.0.1:<ephemeral>`; stops on drop.
pub struct ChartMuseum {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ChartMuseum {
    pub fn start(config: MuseumConfig) -> ChartMuseum {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let shared = (Arc::new(config), state.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(serve(listener, shared, stopped));
        });
        ChartMuseum {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT<path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The stored bytes of `file` in `repo` (`""` at depth 0).
    pub fn stored(&self, repo: &str, file: &str) -> Option<Vec<u8>> {
        let s = self.state.lock().unwrap();
        s.repos.get(repo).and_then(|r| r.get(file)).cloned()
    }

    /// Stores a file directly (as if uploaded earlier).
    pub fn put(&self, repo: &str, file: &str, bytes: Vec<u8>) {
        let mut s = self.state.lock().unwrap();
        s.repos
            .entry(repo.into())
            .or_default()
            .insert(file.into(), bytes);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The requests with this method.
    pub fn seen_with(&self, method: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method)
            .collect()
    }
}

impl Drop for ChartMuseum {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Shared = (Arc<MuseumConfig>, Arc<Mutex<State>>);
type Reply = Response<Full<Bytes>>;

async fn serve(
    listener: std::net::TcpListener,
    shared: Shared,
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
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let req = Request::from_parts(parts, bytes);
                    let reply = handle(&shared.0, &shared.1, &req);
                    record(&shared.1, &req, reply.status().as_u16());
                    Ok::<_, Infallible>(reply)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn record(state: &Mutex<State>, req: &Request<Bytes>, status: u16) {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    state.lock().unwrap().seen.push(Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(String::from),
        content_type: header("content-type"),
        authorization: header("authorization"),
        status,
    });
}

fn json(status: u16, body: serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn error(status: u16, message: &str) -> Reply {
    json(status, serde_json::json!({ "error": message }))
}

enum Action {
    Pull,
    Push,
}

fn handle(cfg: &MuseumConfig, state: &Mutex<State>, req: &Request<Bytes>) -> Reply {
    let path = req.uri().path();
    let Some(rest) = strip_context(path, &cfg.context_path) else {
        return error(404, "not found");
    };
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    if segs == ["health"] && method == Method::GET {
        return json(200, serde_json::json!({"healthy": true}));
    }
    let api = segs.first() == Some(&"api") && !cfg.disable_api;
    let tail = if api { &segs[1..] } else { &segs[..] };
    if tail.len() < cfg.depth {
        return error(404, "not found");
    }
    let repo = tail[..cfg.depth].join("/");
    let route: Vec<&str> = tail[cfg.depth..].to_vec();
    let action = if matches!(method, Method::GET | Method::HEAD) {
        Action::Pull
    } else {
        Action::Push
    };
    let matched = match (api, method.as_str(), route.as_slice()) {
        (true, "POST", ["charts"]) | (true, "POST", ["prov"]) => true,
        (true, "GET" | "HEAD", ["charts", ..]) if route.len() <= 3 => true,
        (true, "DELETE", ["charts", _, _]) => true,
        (false, "GET" | "HEAD", ["index.yaml"]) | (false, "GET", ["charts", _]) => true,
        _ => false,
    };
    if !matched {
        return error(404, "not found");
    }
    if let Some(denied) = authorize(cfg, req, action) {
        return denied;
    }
    let mut s = state.lock().unwrap();
    let files = s.repos.entry(repo).or_default();
    match (api, method.as_str(), route.as_slice()) {
        (true, "POST", ["charts"]) => upload(cfg, files, req),
        (true, "POST", ["prov"]) => upload_prov(cfg, files, req),
        (true, _, ["charts"]) => json(200, list(files)),
        (true, _, ["charts", name]) => match list(files).get(*name) {
            Some(v) => json(200, v.clone()),
            None => error(404, "chart not found"),
        },
        (true, "DELETE", ["charts", name, version]) => {
            let file = format!("{name}-{version}.tgz");
            if files.remove(&file).is_none() {
                return error(404, &format!("object {file} not found"));
            }
            files.remove(&format!("{file}.prov"));
            json(200, serde_json::json!({"deleted": true}))
        }
        (true, _, ["charts", name, version]) => {
            let versions = list(files);
            let found = versions
                .get(*name)
                .and_then(|v| v.as_array())
                .and_then(|vs| {
                    vs.iter()
                        .find(|e| e["version"] == *version || *version == "latest")
                        .cloned()
                });
            match found {
                Some(v) => json(200, v),
                None => error(404, &format!("no chart version found for {name}-{version}")),
            }
        }
        (false, _, ["index.yaml"]) => index(files, &cfg.context_path),
        (false, _, ["charts", file]) => match files.get(*file) {
            Some(b) => Response::new(Full::new(Bytes::from(b.clone()))),
            None => error(404, "not found"),
        },
        _ => error(404, "not found"),
    }
}

fn strip_context<'a>(path: &'a str, ctx: &str) -> Option<&'a str> {
    let ctx = ctx.trim_end_matches('/');
    if ctx.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(ctx)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// ChartMuseum answers every denial with 401, never 403.
fn authorize(cfg: &MuseumConfig, req: &Request<Bytes>, action: Action) -> Option<Reply> {
    if cfg.basic_auth.is_none() && cfg.bearer_token.is_none() {
        return None;
    }
    if matches!(action, Action::Pull) && cfg.anonymous_get {
        return None;
    }
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let (expected, challenge) = match (&cfg.basic_auth, &cfg.bearer_token) {
        (Some((u, p)), _) => (
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))),
            "Basic realm=\"ChartMuseum\"".to_string(),
        ),
        (None, Some(t)) => (
            format!("Bearer {t}"),
            "Bearer realm=\"https://auth.example\",service=\"chartmuseum\",scope=\"artifact-repository:repo:push\"".to_string(),
        ),
        (None, None) => unreachable!(),
    };
    if given == Some(expected.as_str()) {
        return None;
    }
    let mut r = error(401, "unauthorized");
    r.headers_mut()
        .insert("www-authenticate", challenge.parse().unwrap());
    Some(r)
}

fn may_overwrite(cfg: &MuseumConfig, req: &Request<Bytes>) -> bool {
    let force = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some("force")));
    cfg.allow_overwrite || (force && !cfg.disable_force_overwrite)
}

fn too_large() -> Reply {
    let mut r = error(413, "request too large");
    r.headers_mut()
        .insert("connection", "close".parse().unwrap());
    r
}

fn upload(
    cfg: &MuseumConfig,
    files: &mut BTreeMap<String, Vec<u8>>,
    req: &Request<Bytes>,
) -> Reply {
    if req.body().len() > cfg.max_upload_size {
        return too_large();
    }
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("multipart/form-data") {
        let name = match chart_file_name(req.body()) {
            Ok(n) => n,
            Err(e) => return error(400, &e),
        };
        if files.contains_key(&name) && !may_overwrite(cfg, req) {
            return error(409, "file already exists");
        }
        files.insert(name, req.body().to_vec());
        return json(201, serde_json::json!({"saved": true}));
    }
    let parts = match multipart(ct, req.body()) {
        Ok(p) => p,
        Err(e) => return error(400, &e),
    };
    let chart = parts.iter().find(|(n, _)| n == "chart").map(|(_, b)| b);
    let prov = parts.iter().find(|(n, _)| n == "prov").map(|(_, b)| b);
    let mut to_store = Vec::new();
    if let Some(c) = chart {
        match chart_file_name(c) {
            Ok(n) => to_store.push((n, c.clone())),
            Err(e) => return error(400, &e),
        }
    }
    if let Some(p) = prov {
        match prov_file_name(p) {
            Some(n) => to_store.push((n, p.clone())),
            None => return error(400, "invalid provenance file"),
        }
    }
    if to_store.is_empty() {
        return error(
            400,
            "no package or provenance file found in form fields chart and prov",
        );
    }
    if to_store.iter().any(|(n, _)| files.contains_key(n)) && !may_overwrite(cfg, req) {
        return error(409, "chart already exists");
    }
    files.extend(to_store);
    json(201, serde_json::json!({"saved": true}))
}

fn upload_prov(
    cfg: &MuseumConfig,
    files: &mut BTreeMap<String, Vec<u8>>,
    req: &Request<Bytes>,
) -> Reply {
    let Some(name) = prov_file_name(req.body()) else {
        return error(500, "invalid provenance file");
    };
    if files.contains_key(&name) && !may_overwrite(cfg, req) {
        return error(409, "file already exists");
    }
    files.insert(name, req.body().to_vec());
    json(201, serde_json::json!({"saved": true}))
}

/// `<name>-<version>.tgz` read from the archive's `<dir>/Chart.yaml`.
pub fn chart_file_name(tgz: &[u8]) -> Result<String, String> {
    let (name, version) = chart_name_version(tgz)?;
    if name.contains('/') || version.contains('/') {
        return Err(format!("{name}-{version}.tgz is improperly formatted"));
    }
    Ok(format!("{name}-{version}.tgz"))
}

/// Reads `name` and `version` of a chart archive (line-based, top-level keys only).
pub fn chart_name_version(tgz: &[u8]) -> Result<(String, String), String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let entries = archive
        .entries()
        .map_err(|e| format!("gzip: invalid header: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() == 1 && parts[0] == "Chart.yaml" {
            return Err("chart yaml not in base directory".into());
        }
        if parts.len() == 2 && parts[1] == "Chart.yaml" {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| e.to_string())?;
            let field = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}:")))
                    .map(|v| {
                        v.split(" #")
                            .next()
                            .unwrap()
                            .trim()
                            .trim_matches('"')
                            .trim_matches('\'')
                            .to_string()
                    })
                    .filter(|v| !v.is_empty())
            };
            let name = field("name").ok_or("validation: chart.metadata.name is required")?;
            let version =
                field("version").ok_or("validation: chart.metadata.version is required")?;
            return Ok((name, version));
        }
    }
    Err("Chart.yaml file is missing".into())
}

fn prov_file_name(prov: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(prov).ok()?;
    if !text.starts_with("-----BEGIN PGP SIGNED MESSAGE-----") {
        return None;
    }
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}: ")))
            .map(str::trim)
    };
    Some(format!("{}-{}.tgz.prov", field("name")?, field("version")?))
}

/// The `name="..."` parts of a multipart/form-data body.
fn multipart(content_type: &str, body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .ok_or("no multipart boundary")?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(rest, delimiter.as_bytes()).ok_or("multipart: no first boundary")?;
    rest = &rest[start + delimiter.len()..];
    while !rest.starts_with(b"--") {
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("multipart: malformed boundary line")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("multipart: no part headers")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        rest = &rest[head_end + 4..];
        let end = find(rest, format!("\r\n{delimiter}").as_bytes())
            .ok_or("multipart: unterminated part")?;
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name=\""))
            .and_then(|n| n.split('"').next())
            .unwrap_or("")
            .to_string();
        out.push((name, rest[..end].to_vec()));
        rest = &rest[end + 2 + delimiter.len()..];
    }
    Ok(out)
}

/// `{name: [ChartVersion...]}` of the repository, newest stored last.
fn list(files: &BTreeMap<String, Vec<u8>>) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (file, bytes) in files.iter().filter(|(f, _)| f.ends_with(".tgz")) {
        let Ok((name, version)) = chart_name_version(bytes) else {
            continue;
        };
        let entry = serde_json::json!({
            "name": name, "version": version, "apiVersion": "v2",
            "urls": [format!("charts/{file}")],
            "created": "2026-01-01T00:00:00Z",
            "digest": hex::encode(sha2::Sha256::digest(bytes)),
        });
        let versions = map.entry(name).or_insert_with(|| serde_json::json!([]));
        versions.as_array_mut().unwrap().push(entry);
    }
    serde_json::Value::Object(map)
}

fn index(files: &BTreeMap<String, Vec<u8>>, context_path: &str) -> Reply {
    let mut yaml = String::from("apiVersion: v1\nentries:\n");
    let listed = list(files);
    if listed.as_object().unwrap().is_empty() {
        yaml = String::from("apiVersion: v1\nentries: {}\n");
    }
    for (name, versions) in listed.as_object().unwrap() {
        yaml.push_str(&format!("  {name}:\n"));
        for v in versions.as_array().unwrap() {
            yaml.push_str(&format!(
                "  - apiVersion: v2\n    name: {name}\n    version: {}\n    digest: {}\n    created: \"2026-01-01T00:00:00Z\"\n    urls:\n    - {}\n",
                v["version"].as_str().unwrap(),
                v["digest"].as_str().unwrap(),
                v["urls"][0].as_str().unwrap()
            ));
        }
    }
    yaml.push_str("generated: \"2026-01-01T00:00:00Z\"\n");
    if context_path.is_empty() {
        yaml.push_str("serverInfo: {}\n");
    } else {
        yaml.push_str(&format!("serverInfo:\n  contextPath: {context_path}\n"));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/x-yaml")
        .body(Full::new(Bytes::from(yaml)))
        .unwrap()
}
