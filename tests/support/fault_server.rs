//! An in-process registry serving the OCI distribution API from memory, with injected faults.
//!
//! It exists for what a real registry will not do on demand: fail the Nth request, throttle,
//! drop a connection mid-body, serve bytes that do not match their digest, redirect blob GETs
//! to another host. Everything it sees is counted and logged so tests can assert what happened.
//!
//! Model: blobs live in one content store. A blob is visible in a repository when it was
//! uploaded or mounted there, or preloaded with [`FaultServer::put_blob`] (visible everywhere);
//! [`FaultServer::put_blob_in`] links it to one repository only, so mounts can be tested.
//! Upload `Location`s are absolute URLs carrying `?_state=N` (like distribution); with
//! [`FaultConfig::rotate_upload_location`] a stale `_state` is refused.
//!
//! Counting: every request that passes authentication is counted by [`Kind`]; a [`Fault`]'s
//! `nth` refers to that count (1-based). Requests refused with 401 count only in
//! [`FaultServer::unauthorized`].
//!
//! The server runs on its own thread and tokio runtime, so it works from sync and async tests.

mod auth;
mod fault;
mod handlers;
mod personality;
mod referrers;
mod respond;
mod serve;
mod state;
mod uploads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use ferry::Digest;

use self::state::Shared;

pub use self::fault::{Action, Fault};
#[allow(unused_imports)]
pub use self::personality::{Personality, Quirks};

/// What a request was, for counters, the log and fault targeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Ping,
    ManifestGet,
    ManifestHead,
    ManifestPut,
    BlobHead,
    BlobGet,
    /// A blob GET that arrived at the redirect target (the second listener).
    RedirectedGet,
    /// `POST /v2/<name>/blobs/uploads/` (with or without `mount=`/`digest=`).
    UploadStart,
    UploadPatch,
    /// `PUT <location>?digest=` closing an upload.
    UploadPut,
    /// `GET <location>`: upload status.
    UploadStatus,
    UploadDelete,
    TagsList,
    /// `GET /v2/<name>/referrers/<digest>` (any page).
    Referrers,
    /// The built-in token endpoint (bearer auth).
    Token,
    Other,
}

/// Authentication the server demands on `/v2/` (the redirect target never demands any).
#[derive(Clone, Debug, Default)]
pub enum Auth {
    #[default]
    None,
    /// `WWW-Authenticate: Basic realm="fault"`.
    Basic { username: String, password: String },
    /// `WWW-Authenticate: Bearer realm="http://<addr>/token",service="fault-registry",scope=...`.
    /// The token endpoint accepts GET with Basic credentials, and POST forms with
    /// `grant_type=password` or `grant_type=refresh_token` (`refresh_token` = `identity_token`).
    Bearer {
        username: String,
        password: String,
        identity_token: Option<String>,
    },
}

/// How the server behaves. Build with the chained setters; new behaviours become new fields.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    pub faults: Vec<Fault>,
    pub auth: Auth,
    /// Blob GETs answer `307` to the second listener, which serves the bytes without auth.
    pub redirect_blob_gets: bool,
    /// Every PATCH answers a new `Location`; a request to a stale one gets 404
    /// `BLOB_UPLOAD_INVALID` (as distribution does).
    pub rotate_upload_location: bool,
    /// `Location` headers as paths (`/v2/...`) instead of absolute URLs.
    pub relative_locations: bool,
    /// Sent as `OCI-Chunk-Min-Length` when an upload session is created; a `PATCH` with
    /// `Content-Range` and a smaller body is refused with 416.
    pub chunk_min_length: Option<u64>,
    /// Quirks of real registries (see [`Personality`]).
    pub quirks: Quirks,
}

impl FaultConfig {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    pub fn basic_auth(mut self, username: &str, password: &str) -> Self {
        self.auth = Auth::Basic {
            username: username.into(),
            password: password.into(),
        };
        self
    }

    pub fn bearer_auth(mut self, username: &str, password: &str, identity: Option<&str>) -> Self {
        self.auth = Auth::Bearer {
            username: username.into(),
            password: password.into(),
            identity_token: identity.map(Into::into),
        };
        self
    }

    pub fn redirect_blob_gets(mut self) -> Self {
        self.redirect_blob_gets = true;
        self
    }

    pub fn rotate_upload_location(mut self) -> Self {
        self.rotate_upload_location = true;
        self
    }

    pub fn relative_locations(mut self) -> Self {
        self.relative_locations = true;
        self
    }

    pub fn chunk_min_length(mut self, bytes: u64) -> Self {
        self.chunk_min_length = Some(bytes);
        self
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub kind: Kind,
    /// 0 when no answer was sent (connection dropped while reading the request).
    pub status: u16,
    /// Whether the request carried an `Authorization` header.
    pub authorization: bool,
    pub content_range: Option<String>,
    /// The request's `Range` header (blob GETs).
    pub range: Option<String>,
    /// The request's `Content-Length` header.
    pub content_length: Option<u64>,
    /// The request's `Content-Type` and `Accept` headers.
    pub content_type: Option<String>,
    pub accept: Option<String>,
    /// Request body bytes the server read.
    pub body_bytes: u64,
    /// True when it arrived at the redirect target.
    pub redirected: bool,
}

/// A running fault server; stopped when dropped.
pub struct FaultServer {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultServer {
    /// Starts listening on two loopback ports (API, redirect target) and returns at once.
    pub fn start(cfg: FaultConfig) -> FaultServer {
        super::registry::hermetic();
        let (shared, stop, thread) = serve::spawn(cfg);
        FaultServer {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The API listener.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.shared.addr.to_string()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.shared.addr)
    }

    /// The second listener, where redirected blob GETs land.
    pub fn redirect_addr(&self) -> SocketAddr {
        self.shared.redirect_addr
    }

    /// Adds a fault whose `nth` counts from now (requests already seen do not count).
    pub fn add_fault(&self, fault: Fault) {
        self.shared.add_fault(fault, true);
    }

    /// Stores a blob visible in every repository.
    pub fn put_blob(&self, bytes: impl Into<Bytes>) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        self.shared.data().store_blob(digest.clone(), bytes, None);
        digest
    }

    /// Stores a blob visible only in `repo`.
    pub fn put_blob_in(&self, repo: &str, bytes: impl Into<Bytes>) -> Digest {
        let bytes = bytes.into();
        let digest = Digest::of(&bytes);
        self.shared
            .data()
            .store_blob(digest.clone(), bytes, Some(repo));
        digest
    }

    /// Stores `bytes` under `digest` whatever they hash to (a wrong-digest source).
    pub fn put_blob_with_digest(&self, digest: &Digest, bytes: impl Into<Bytes>) {
        self.shared
            .data()
            .store_blob(digest.clone(), bytes.into(), None);
    }

    /// Stores `bytes` with the last byte flipped under the digest of `bytes`: same size,
    /// wrong content. Returns the (correct) digest of `bytes`.
    pub fn put_corrupt_blob(&self, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        let mut wrong = bytes.to_vec();
        if let Some(last) = wrong.last_mut() {
            *last ^= 0xff;
        }
        self.put_blob_with_digest(&digest, wrong);
        digest
    }

    /// Stores a manifest (exact bytes) and points `tag` at it; blobs are not checked.
    pub fn put_manifest(&self, repo: &str, tag: &str, bytes: &[u8], media_type: &str) -> Digest {
        let digest = self.put_manifest_untagged(repo, bytes, media_type);
        self.shared.data().set_tag(repo, tag, digest.clone());
        digest
    }

    /// Stores `bytes` as the manifest `key` (tagged `tag` if given), whose answers name
    /// `claimed` in `Docker-Content-Digest`: a registry that lies about a manifest.
    pub fn put_manifest_claiming(
        &self,
        repo: &str,
        key: &Digest,
        tag: Option<&str>,
        (bytes, media_type): (&[u8], &str),
        claimed: &Digest,
    ) {
        let mut data = self.shared.data();
        let bytes = Bytes::copy_from_slice(bytes);
        data.store_manifest(repo, key.clone(), bytes, media_type);
        let m = data
            .repos
            .get_mut(repo)
            .unwrap()
            .manifests
            .get_mut(key)
            .unwrap();
        m.claimed = Some(claimed.clone());
        if let Some(t) = tag {
            data.set_tag(repo, t, key.clone());
        }
    }

    /// Stores a manifest reachable by digest only.
    pub fn put_manifest_untagged(&self, repo: &str, bytes: &[u8], media_type: &str) -> Digest {
        let digest = Digest::of(bytes);
        let bytes = Bytes::copy_from_slice(bytes);
        self.shared
            .data()
            .store_manifest(repo, digest.clone(), bytes, media_type);
        digest
    }

    /// The bytes stored under `digest` in the content store (any repository).
    pub fn blob(&self, digest: &Digest) -> Option<Bytes> {
        self.shared.data().blobs.get(digest).cloned()
    }

    /// The bytes of `digest` if it is visible in `repo`.
    pub fn blob_in(&self, repo: &str, digest: &Digest) -> Option<Bytes> {
        let data = self.shared.data();
        data.visible(repo, digest)
            .then(|| data.blobs[digest].clone())
    }

    /// What `tag` of `repo` points at.
    pub fn tag(&self, repo: &str, tag: &str) -> Option<Digest> {
        self.shared.data().repos.get(repo)?.tags.get(tag).cloned()
    }

    /// Tags of `repo`, sorted.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let data = self.shared.data();
        data.repos
            .get(repo)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A manifest's exact bytes and media type.
    pub fn manifest(&self, repo: &str, digest: &Digest) -> Option<(Bytes, String)> {
        let data = self.shared.data();
        let m = data.repos.get(repo)?.manifests.get(digest)?;
        Some((m.bytes.clone(), m.media_type.clone()))
    }

    /// Another writer wins a race: right after the next manifest PUT that writes `tag` in
    /// `repo`, the tag is repointed to `digest` (a manifest stored there), once.
    pub fn rival_write_after_put(&self, repo: &str, tag: &str, digest: &Digest) {
        let rival = (repo.to_string(), tag.to_string(), digest.clone());
        self.shared.data().rival_writes.push(rival);
    }

    /// Upload sessions neither finished nor cancelled.
    pub fn open_uploads(&self) -> usize {
        self.shared.data().uploads.len()
    }

    /// Bytes held by each open upload session, once no request is writing to them (waits for
    /// a request still being read, e.g. from a client that was just killed).
    #[allow(dead_code)]
    pub fn open_upload_sizes(&self) -> Vec<u64> {
        let sessions: Vec<_> = self.shared.data().uploads.values().cloned().collect();
        sessions
            .iter()
            .map(|s| loop {
                if let Ok(up) = s.try_lock() {
                    break up.data.len() as u64;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            })
            .collect()
    }

    /// Authenticated requests of `kind` so far.
    pub fn count(&self, kind: Kind) -> u64 {
        self.shared.count(kind)
    }

    pub fn counts(&self) -> HashMap<Kind, u64> {
        self.shared.counts.lock().unwrap().clone()
    }

    /// Request body bytes received by upload requests (POST, PATCH, PUT), faulted ones included.
    pub fn upload_bytes(&self) -> u64 {
        self.shared.upload_bytes.load(Ordering::SeqCst)
    }

    /// Blob and manifest body bytes sent (both listeners).
    pub fn sent_bytes(&self) -> u64 {
        self.shared.sent_bytes.load(Ordering::SeqCst)
    }

    /// Requests refused with 401.
    pub fn unauthorized(&self) -> u64 {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }

    /// Requests at the redirect target that carried an `Authorization` header (should be 0).
    pub fn redirected_with_authorization(&self) -> u64 {
        self.shared.redirect_auth.load(Ordering::SeqCst)
    }

    /// Every request so far, in order of completion of its response headers.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
