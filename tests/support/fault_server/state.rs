//! The fault server's memory: content, repositories, upload sessions, counters, fault rules.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use ferry::digest::DigestHasher;
use ferry::Digest;

use super::{Action, Fault, FaultConfig, Kind, Logged};

/// Everything the server threads share.
pub(super) struct Shared {
    pub cfg: FaultConfig,
    pub addr: SocketAddr,
    pub redirect_addr: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    data: Mutex<Data>,
    pub counts: Mutex<HashMap<Kind, u64>>,
    pub upload_bytes: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub unauthorized: AtomicU64,
    pub redirect_auth: AtomicU64,
    pub log: Mutex<Vec<Logged>>,
    pub tokens: Mutex<HashSet<String>>,
}

/// A fault with absolute request numbers.
struct Rule {
    kind: Kind,
    first: u64,
    last: u64,
    action: Action,
    /// Only requests whose URI contains this; counted in `seen`.
    path: Option<String>,
    seen: u64,
}

#[derive(Default)]
pub(super) struct Data {
    pub blobs: HashMap<Digest, Bytes>,
    /// Blobs visible in every repository.
    pub global: HashSet<Digest>,
    /// Repository → blobs uploaded or mounted there.
    pub links: HashMap<String, HashSet<Digest>>,
    pub repos: HashMap<String, Repo>,
    pub uploads: HashMap<String, Arc<tokio::sync::Mutex<Upload>>>,
    next_upload: u64,
    /// Another writer: (repository, tag, digest) repointed right after the next manifest PUT
    /// that writes that tag, once.
    pub rival_writes: Vec<(String, String, Digest)>,
}

#[derive(Default)]
pub(super) struct Repo {
    pub manifests: HashMap<Digest, Manifest>,
    pub tags: BTreeMap<String, Digest>,
}

pub(super) struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    /// The digest answers name instead of the real one (a lying registry).
    pub claimed: Option<Digest>,
}

/// An open upload session.
pub(super) struct Upload {
    pub id: String,
    pub repo: String,
    pub data: Vec<u8>,
    pub hasher: DigestHasher,
    /// Bumped on every PATCH; part of the `Location`.
    pub state: u64,
    /// Where the first PATCH ended (for a stale `Range` quirk).
    pub first_patch_end: Option<u64>,
    /// A body request reached this session (for the proxy-drop quirk).
    pub body_seen: bool,
}

impl Upload {
    pub fn append(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        self.hasher.update(bytes);
    }

    /// Drops everything after `len` bytes (a rejected chunk), rehashing what stays.
    pub fn truncate(&mut self, len: usize) {
        self.data.truncate(len);
        self.hasher = DigestHasher::new();
        self.hasher.update(&self.data);
    }
}

impl Shared {
    pub fn new(cfg: FaultConfig, addr: SocketAddr, redirect_addr: SocketAddr) -> Shared {
        let shared = Shared {
            cfg: cfg.clone(),
            addr,
            redirect_addr,
            rules: Mutex::new(Vec::new()),
            data: Mutex::new(Data::default()),
            counts: Mutex::new(HashMap::new()),
            upload_bytes: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            redirect_auth: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(HashSet::new()),
        };
        for f in cfg.faults {
            shared.add_fault(f, false);
        }
        shared
    }

    pub fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self, kind: Kind) -> u64 {
        self.counts.lock().unwrap().get(&kind).copied().unwrap_or(0)
    }

    /// Adds a rule; with `from_now`, `nth` counts from the current number of `kind` requests.
    pub fn add_fault(&self, f: Fault, from_now: bool) {
        let offset = if from_now && f.path.is_none() {
            self.count(f.kind)
        } else {
            0
        };
        let first = offset + f.nth.max(1);
        let last = first.saturating_add(f.times.max(1) - 1);
        self.rules.lock().unwrap().push(Rule {
            kind: f.kind,
            first,
            last,
            action: f.action,
            path: f.path,
            seen: 0,
        });
    }

    /// Counts one request of `kind` and returns the fault action aimed at it, if any.
    pub fn arrive(&self, kind: Kind, uri: &str) -> Option<Action> {
        let n = {
            let mut counts = self.counts.lock().unwrap();
            let c = counts.entry(kind).or_insert(0);
            *c += 1;
            *c
        };
        let mut rules = self.rules.lock().unwrap();
        let mut hit = None;
        for r in rules.iter_mut().filter(|r| r.kind == kind) {
            let nth = match &r.path {
                Some(p) if uri.contains(p.as_str()) => {
                    r.seen += 1;
                    r.seen
                }
                Some(_) => continue,
                None => n,
            };
            if hit.is_none() && (r.first..=r.last).contains(&nth) {
                hit = Some(r.action.clone());
            }
        }
        hit
    }

    pub fn record(&self, entry: Logged) {
        if entry.redirected && entry.authorization {
            self.redirect_auth.fetch_add(1, Ordering::SeqCst);
        }
        self.log.lock().unwrap().push(entry);
    }

    /// `Location` for `path`: absolute unless configured relative.
    pub fn location(&self, path: &str) -> String {
        if let Some(query) = &self.cfg.quirks.uploads_elsewhere {
            if path.contains("/blobs/uploads/") {
                let sep = if path.contains('?') { '&' } else { '?' };
                return format!("http://{}{path}{sep}{query}", self.redirect_addr);
            }
        }
        if self.cfg.relative_locations {
            path.to_string()
        } else {
            format!("http://{}{path}", self.addr)
        }
    }
}

impl Data {
    /// Stores content; `repo` links it there, `None` makes it visible everywhere.
    pub fn store_blob(&mut self, digest: Digest, bytes: Bytes, repo: Option<&str>) {
        self.blobs.insert(digest.clone(), bytes);
        match repo {
            Some(r) => self.link(r, &digest),
            None => {
                self.global.insert(digest);
            }
        }
    }

    pub fn link(&mut self, repo: &str, digest: &Digest) {
        self.links
            .entry(repo.to_string())
            .or_default()
            .insert(digest.clone());
    }

    pub fn visible(&self, repo: &str, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
            && (self.global.contains(digest)
                || self.links.get(repo).is_some_and(|l| l.contains(digest)))
    }

    pub fn store_manifest(&mut self, repo: &str, digest: Digest, bytes: Bytes, media_type: &str) {
        let m = Manifest {
            bytes,
            media_type: media_type.to_string(),
            claimed: None,
        };
        self.repos
            .entry(repo.to_string())
            .or_default()
            .manifests
            .insert(digest, m);
    }

    pub fn set_tag(&mut self, repo: &str, tag: &str, digest: Digest) {
        self.repos
            .entry(repo.to_string())
            .or_default()
            .tags
            .insert(tag.to_string(), digest);
    }

    /// A manifest by tag or digest string.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<(Digest, &Manifest)> {
        let r = self.repos.get(repo)?;
        let digest = match reference.parse::<Digest>() {
            Ok(d) => d,
            Err(_) => r.tags.get(reference)?.clone(),
        };
        let m = r.manifests.get(&digest)?;
        Some((digest, m))
    }

    pub fn new_upload(&mut self, repo: &str) -> Arc<tokio::sync::Mutex<Upload>> {
        self.next_upload += 1;
        let id = format!("upload-{}", self.next_upload);
        let up = Arc::new(tokio::sync::Mutex::new(Upload {
            id: id.clone(),
            repo: repo.to_string(),
            data: Vec::new(),
            hasher: DigestHasher::new(),
            state: 0,
            first_patch_end: None,
            body_seen: false,
        }));
        self.uploads.insert(id, up.clone());
        up
    }

    /// What a manifest names that `repo` lacks: blobs (config, layers) and child manifests.
    pub fn missing_references(&self, repo: &str, manifest: &serde_json::Value) -> Vec<String> {
        let digest_of = |v: &serde_json::Value| v.get("digest")?.as_str().map(String::from);
        let list = |name: &str| -> Vec<String> {
            manifest
                .get(name)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(digest_of).collect())
                .unwrap_or_default()
        };
        let mut blobs = list("layers");
        blobs.extend(manifest.get("config").and_then(digest_of));
        let mut missing: Vec<String> = blobs
            .into_iter()
            .filter(|d| !d.parse().is_ok_and(|d| self.visible(repo, &d)))
            .collect();
        let has_manifest = |d: &str| {
            let r = self.repos.get(repo);
            d.parse()
                .is_ok_and(|d: Digest| r.is_some_and(|r| r.manifests.contains_key(&d)))
        };
        missing.extend(list("manifests").into_iter().filter(|d| !has_manifest(d)));
        missing
    }
}
