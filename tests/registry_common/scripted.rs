//! A scripted in-process HTTP server for the fault tests: each request is recorded and answered by
//! a closure that also learns how many requests of the same method and path came before.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::{Request, Response};

use super::MemBlob;
use crate::support::token_server::{full, Body, HttpServer};
use ferry::manifest::{self, RawManifest};

/// A request as the scripted server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: hyper::HeaderMap,
    pub body_len: usize,
}

pub type Log = Arc<Mutex<Vec<Seen>>>;

/// Starts a server whose handler gets each request and how many requests with the same method
/// and path came before it.
pub fn scripted(
    f: impl Fn(&Request<Bytes>, usize) -> Response<Body> + Send + Sync + 'static,
) -> (HttpServer, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let server = HttpServer::start(Arc::new(move |req: Request<Bytes>| {
        let n = {
            let mut seen = l.lock().unwrap();
            let n = seen
                .iter()
                .filter(|s| {
                    s.method == req.method().as_str()
                        && s.uri.split('?').next() == Some(req.uri().path())
                })
                .count();
            seen.push(Seen {
                method: req.method().to_string(),
                uri: req.uri().to_string(),
                headers: req.headers().clone(),
                body_len: req.body().len(),
            });
            n
        };
        f(&req, n)
    }));
    (server, log)
}

pub fn status(code: u16) -> hyper::http::response::Builder {
    Response::builder().status(code)
}

pub fn error_body(code: &str) -> Body {
    full(format!(
        r#"{{"errors":[{{"code":"{code}","message":"scripted","detail":null}}]}}"#
    ))
}

pub fn small_manifest() -> RawManifest {
    let cfg = MemBlob::new("{}").descriptor("application/vnd.oci.image.config.v1+json");
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": cfg, "layers": []});
    RawManifest::new(serde_json::to_vec(&body).unwrap().into(), None).unwrap()
}

pub fn manifest_response(m: &RawManifest) -> Response<Body> {
    status(200)
        .header("content-type", &m.media_type)
        .header("docker-content-digest", m.digest.to_string())
        .body(full(m.bytes.clone()))
        .unwrap()
}

pub fn count(log: &Log, method: &str, path_part: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == method && s.uri.contains(path_part))
        .count()
}
