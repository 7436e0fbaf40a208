//! A lean in-process registry on 127.0.0.1 for benches: serves one blob and swallows uploads.
//!
//! It does as little per byte as HTTP allows, so a bench measures ferry, not the server: blob
//! GETs send zero-copy slices of one shared buffer; upload bodies (PATCH/PUT) are drained and
//! counted, never stored or hashed. The closing PUT answers with the digest the client named.
//!
//! Two listeners stand for two registries (source and destination), so a copy between them is a
//! real cross-registry copy (separate connection pools, no mount attempt).
//!
//! Routes (any repository `<r>`): `GET /v2/`; `GET|HEAD /v2/<r>/blobs/<digest>` (200 for the served
//! blob in [`SOURCE_REPO`], 404 otherwise); `POST /v2/<r>/blobs/uploads/` (202 + Location);
//! `PATCH`, `PUT`, `DELETE` on `/v2/<r>/blobs/uploads/<id>`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

/// The repository that holds the served blob; every other repository is empty.
pub const SOURCE_REPO: &str = "bench/src";

/// Bytes per frame of a blob GET (slices of the shared buffer: no copy).
const FRAME: usize = 1024 * 1024;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// What the server holds and has seen.
struct Shared {
    digest: String,
    blob: Bytes,
    next_id: AtomicU64,
    /// Bytes received so far by each open upload session.
    sessions: Mutex<HashMap<String, u64>>,
    received: AtomicU64,
    completed: AtomicU64,
}

/// A running server; it stops when dropped.
pub struct Loopback {
    /// The "source registry" listener.
    pub source: SocketAddr,
    /// The "destination registry" listener.
    pub destination: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loopback {
    /// Starts serving `blob` as `digest` (`sha256:<hex>`) on a thread of its own.
    pub fn start(digest: String, blob: Bytes) -> Self {
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            l.set_nonblocking(true).expect("nonblocking listener");
            l
        };
        let (src, dst) = (bind(), bind());
        let (source, destination) = (src.local_addr().unwrap(), dst.local_addr().unwrap());
        let shared = Arc::new(Shared {
            digest,
            blob,
            next_id: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            received: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("bench-registry".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let src = tokio::net::TcpListener::from_std(src).unwrap();
                    let dst = tokio::net::TcpListener::from_std(dst).unwrap();
                    tokio::join!(
                        accept(src, s.clone(), stopped.clone()),
                        accept(dst, s, stopped)
                    );
                });
            })
            .expect("spawn bench registry thread");
        Loopback {
            source,
            destination,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// Upload body bytes received so far (PATCH and PUT bodies).
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// Uploads closed by a successful PUT so far.
    pub fn completed(&self) -> u64 {
        self.shared.completed.load(Ordering::Relaxed)
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            res = listener.accept() => {
                let Ok((stream, _)) = res else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/v2/" {
        return Ok(status(200, &[]));
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Ok(status(404, &[]));
    };
    if let Some((repo, id)) = rest.split_once("/blobs/uploads/") {
        return Ok(upload(&shared, req, repo, id).await);
    }
    if let Some((repo, digest)) = rest.split_once("/blobs/") {
        return Ok(blob(&shared, req.method(), repo, digest));
    }
    Ok(status(404, &[]))
}

/// `GET`/`HEAD` of a blob.
fn blob(shared: &Shared, method: &Method, repo: &str, digest: &str) -> Response<Body> {
    if repo != SOURCE_REPO || digest != shared.digest {
        return status(404, &[]);
    }
    let len = shared.blob.len().to_string();
    let mut r = status(
        200,
        &[("content-length", &len), ("docker-content-digest", digest)],
    );
    if method == Method::GET {
        let blob = shared.blob.clone();
        let frames = (0..blob.len()).step_by(FRAME).map(move |at| {
            Ok::<_, Infallible>(Frame::data(blob.slice(at..(at + FRAME).min(blob.len()))))
        });
        *r.body_mut() = StreamBody::new(futures::stream::iter(frames)).boxed_unsync();
    }
    r
}

/// The upload session routes; `id` is empty for the opening POST.
async fn upload(shared: &Shared, req: Request<Incoming>, repo: &str, id: &str) -> Response<Body> {
    let method = req.method().clone();
    if method == Method::POST && id.is_empty() {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        shared.sessions.lock().unwrap().insert(id.clone(), 0);
        let location = format!("/v2/{repo}/blobs/uploads/{id}");
        return status(202, &[("location", &location), ("range", "0-0")]);
    }
    if method == Method::DELETE {
        shared.sessions.lock().unwrap().remove(id);
        return status(204, &[]);
    }
    let digest = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("digest=")))
        .map(|d| d.replace("%3A", ":").replace("%3a", ":"));
    let Some(n) = drain(req.into_body()).await else {
        return status(400, &[]);
    };
    shared.received.fetch_add(n, Ordering::Relaxed);
    let total = {
        let mut sessions = shared.sessions.lock().unwrap();
        let Some(seen) = sessions.get_mut(id) else {
            return status(404, &[]);
        };
        *seen += n;
        *seen
    };
    match (method, digest) {
        (Method::PATCH, _) => {
            let location = format!("/v2/{repo}/blobs/uploads/{id}");
            let range = format!("0-{}", total.saturating_sub(1));
            status(202, &[("location", &location), ("range", &range)])
        }
        (Method::PUT, Some(digest)) => {
            shared.sessions.lock().unwrap().remove(id);
            shared.completed.fetch_add(1, Ordering::Relaxed);
            let location = format!("/v2/{repo}/blobs/{digest}");
            status(
                201,
                &[("location", &location), ("docker-content-digest", &digest)],
            )
        }
        _ => status(400, &[]),
    }
}

/// Reads a request body to its end and counts it; `None` when it breaks off.
async fn drain(mut body: Incoming) -> Option<u64> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.ok()?.data_ref() {
            n += data.len() as u64;
        }
    }
    Some(n)
}

fn status(code: u16, headers: &[(&str, &str)]) -> Response<Body> {
    let mut r = Response::new(Empty::new().boxed_unsync());
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    for (k, v) in headers {
        r.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_str(v).unwrap(),
        );
    }
    r
}
