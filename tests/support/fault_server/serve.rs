//! Listening, routing, and the per-request pipeline: auth, counting, faults, logging.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use super::respond::{self, BoxError, Resp};
use super::state::Shared;
use super::{auth, handlers, Action, FaultConfig, Kind, Logged};

/// Binds both listeners and serves them on a thread of their own until `true` is sent.
pub(super) fn spawn(
    cfg: FaultConfig,
) -> (
    Arc<Shared>,
    watch::Sender<bool>,
    std::thread::JoinHandle<()>,
) {
    let bind = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        l.set_nonblocking(true).unwrap();
        l
    };
    let (main, redirect) = (bind(), bind());
    let shared = Arc::new(Shared::new(
        cfg,
        main.local_addr().unwrap(),
        redirect.local_addr().unwrap(),
    ));
    let (stop, stopped) = watch::channel(false);
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("fault-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let main = tokio::net::TcpListener::from_std(main).unwrap();
                let redirect = tokio::net::TcpListener::from_std(redirect).unwrap();
                tokio::join!(
                    accept(main, s.clone(), false, stopped.clone()),
                    accept(redirect, s, true, stopped)
                );
            });
            // Dropping the runtime here cancels every open connection.
        })
        .expect("spawn fault server thread");
    (shared, stop, thread)
}

async fn accept(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    redirected: bool,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            res = listener.accept() => {
                let Ok((stream, _)) = res else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(shared.clone(), req, redirected));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

/// What a request is addressed to.
#[derive(Clone, Debug)]
pub(super) enum Route {
    Ping,
    Manifest {
        repo: String,
        reference: String,
    },
    Blob {
        repo: String,
        digest: String,
    },
    /// `/v2/<repo>/blobs/uploads/`
    Uploads {
        repo: String,
    },
    Upload {
        repo: String,
        id: String,
    },
    TagsList {
        repo: String,
    },
    Referrers {
        repo: String,
        digest: String,
    },
    Token,
    /// A blob at the redirect target.
    Storage {
        digest: String,
    },
    Unknown,
}

impl Route {
    pub fn parse(path: &str, redirected: bool) -> Route {
        if redirected {
            // Blob storage, and upload sessions handed out elsewhere (`uploads_elsewhere`).
            return match path.strip_prefix("/storage/") {
                Some(d) => Route::Storage { digest: d.into() },
                None => match Route::parse(path, false) {
                    r @ Route::Upload { .. } => r,
                    _ => Route::Unknown,
                },
            };
        }
        if path == "/token" {
            return Route::Token;
        }
        let Some(rest) = path.strip_prefix("/v2/") else {
            return if path == "/v2" {
                Route::Ping
            } else {
                Route::Unknown
            };
        };
        if rest.is_empty() {
            return Route::Ping;
        }
        let segs: Vec<&str> = rest.split('/').collect();
        let repo = |suffix: usize| -> Option<String> {
            (segs.len() > suffix).then(|| segs[..segs.len() - suffix].join("/"))
        };
        let route = match segs.as_slice() {
            [.., "blobs", "uploads", ""] => repo(3).map(|repo| Route::Uploads { repo }),
            [.., "blobs", "uploads"] => repo(2).map(|repo| Route::Uploads { repo }),
            [.., "blobs", "uploads", id] => repo(3).map(|repo| Route::Upload {
                repo,
                id: id.to_string(),
            }),
            [.., "manifests", r] => repo(2).map(|repo| Route::Manifest {
                repo,
                reference: r.to_string(),
            }),
            [.., "blobs", d] => repo(2).map(|repo| Route::Blob {
                repo,
                digest: d.to_string(),
            }),
            [.., "tags", "list"] => repo(2).map(|repo| Route::TagsList { repo }),
            [.., "referrers", d] => repo(2).map(|repo| Route::Referrers {
                repo,
                digest: d.to_string(),
            }),
            _ => None,
        };
        route.unwrap_or(Route::Unknown)
    }

    pub fn kind(&self, method: &Method) -> Kind {
        let m = method.as_str();
        match (self, m) {
            (Route::Ping, _) => Kind::Ping,
            (Route::Manifest { .. }, "GET") => Kind::ManifestGet,
            (Route::Manifest { .. }, "HEAD") => Kind::ManifestHead,
            (Route::Manifest { .. }, "PUT") => Kind::ManifestPut,
            (Route::Blob { .. }, "GET") => Kind::BlobGet,
            (Route::Blob { .. }, "HEAD") => Kind::BlobHead,
            (Route::Uploads { .. }, "POST") => Kind::UploadStart,
            (Route::Upload { .. }, "PATCH") => Kind::UploadPatch,
            (Route::Upload { .. }, "PUT") => Kind::UploadPut,
            (Route::Upload { .. }, "GET") => Kind::UploadStatus,
            (Route::Upload { .. }, "DELETE") => Kind::UploadDelete,
            (Route::TagsList { .. }, "GET") => Kind::TagsList,
            (Route::Referrers { .. }, "GET") => Kind::Referrers,
            (Route::Token, _) => Kind::Token,
            (Route::Storage { .. }, "GET" | "HEAD") => Kind::RedirectedGet,
            _ => Kind::Other,
        }
    }
}

/// Per-request context handed to the handlers.
pub(super) struct Ctx {
    pub shared: Arc<Shared>,
    pub kind: Kind,
    /// Request body bytes read so far.
    pub received: u64,
    /// Drop the connection once this many request body bytes have been read.
    pub drop_request_after: Option<u64>,
    /// The bytes read before that drop are thrown away, not handed to the handler.
    pub discard_dropped: bool,
}

impl Ctx {
    /// Reads the request body to the end, counting it (as upload bytes for upload requests).
    /// With `drop_request_after`, fails (dropping the connection) once that many bytes came.
    pub async fn read_body(
        &mut self,
        mut body: Incoming,
        mut into: impl FnMut(&[u8]),
    ) -> Result<(), BoxError> {
        let upload = matches!(
            self.kind,
            Kind::UploadStart | Kind::UploadPatch | Kind::UploadPut
        );
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            let room = self
                .drop_request_after
                .map_or(u64::MAX, |n| n.saturating_sub(self.received));
            let take = (data.len() as u64).min(room) as usize;
            self.received += take as u64;
            if upload {
                self.shared
                    .upload_bytes
                    .fetch_add(take as u64, Ordering::SeqCst);
            }
            if !self.discard_dropped {
                into(&data[..take]);
            }
            if self.drop_request_after == Some(self.received) {
                return Err("injected fault: request body cut".into());
            }
        }
        Ok(())
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    redirected: bool,
) -> Result<Resp, BoxError> {
    let route = Route::parse(req.uri().path(), redirected);
    let kind = route.kind(req.method());
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let mut entry = Logged {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        kind,
        status: 0,
        authorization: req.headers().contains_key("authorization"),
        content_range: header("content-range"),
        range: header("range"),
        content_type: header("content-type"),
        accept: header("accept"),
        content_length: header("content-length").and_then(|v| v.parse().ok()),
        body_bytes: 0,
        redirected,
    };
    let mut ctx = Ctx {
        shared: shared.clone(),
        kind,
        received: 0,
        drop_request_after: None,
        discard_dropped: false,
    };
    let mut resp = pipeline(&mut ctx, req, route, redirected).await;
    if let (Ok(r), Some(v)) = (&mut resp, &shared.cfg.quirks.rate_limit_remaining) {
        if let Ok(v) = hyper::header::HeaderValue::from_str(v) {
            r.headers_mut().insert("ratelimit-remaining", v);
        }
    }
    entry.status = resp.as_ref().map_or(0, |r| r.status().as_u16());
    entry.body_bytes = ctx.received;
    shared.record(entry);
    resp
}

async fn pipeline(
    ctx: &mut Ctx,
    req: Request<Incoming>,
    route: Route,
    redirected: bool,
) -> Result<Resp, BoxError> {
    let needs_auth = !redirected && !matches!(route, Route::Token);
    if needs_auth && !auth::authorized(&ctx.shared, req.headers()) {
        ctx.shared.unauthorized.fetch_add(1, Ordering::SeqCst);
        ctx.read_body(req.into_body(), |_| {}).await?;
        return Ok(auth::challenge(&ctx.shared, &route));
    }
    let uri = req.uri().to_string();
    let drop_after = match ctx.shared.arrive(ctx.kind, &uri) {
        Some(Action::Status(code)) => {
            ctx.read_body(req.into_body(), |_| {}).await?;
            return Ok(respond::injected(code, None));
        }
        Some(Action::TooManyRequests { retry_after_secs }) => {
            ctx.read_body(req.into_body(), |_| {}).await?;
            return Ok(respond::injected(429, Some(retry_after_secs)));
        }
        Some(Action::Error { status, code }) => {
            ctx.read_body(req.into_body(), |_| {}).await?;
            let msg = "injected fault";
            return Ok(respond::oci_error(
                status,
                &code,
                msg,
                serde_json::Value::Null,
            ));
        }
        Some(Action::RetryAfter {
            status,
            secs,
            http_date,
        }) => {
            ctx.read_body(req.into_body(), |_| {}).await?;
            return Ok(respond::retry_after(status, secs, http_date));
        }
        Some(Action::DropBodyAfter(n)) => Some(n),
        Some(Action::DropRequestAfter(n)) => {
            ctx.drop_request_after = Some(n);
            None
        }
        Some(Action::DropRequestUnseen(n)) => {
            ctx.drop_request_after = Some(n);
            ctx.discard_dropped = true;
            None
        }
        None => None,
    };
    handlers::dispatch(ctx, req, route, drop_after).await
}
