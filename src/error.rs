//! One error type for the library, carrying the context (where, what, which side) of every failure.

use std::path::PathBuf;

use crate::digest::{Digest, DigestParseError};
use crate::manifest::ManifestError;
use crate::reference::ReferenceError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

mod op;
pub use op::Op;

/// Which end of a copy an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Destination,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// One entry of a registry's `{"errors":[{code,message,detail}]}` body.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
pub struct RegistryErrorCode {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// The error code a registry answers a committed upload with when its bytes do not hash to the
/// digest given (the distribution spec's `DIGEST_INVALID`).
pub const DIGEST_INVALID: &str = "DIGEST_INVALID";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    #[error(transparent)]
    Digest(#[from] DigestParseError),

    #[error(transparent)]
    Manifest(#[from] ManifestError),

    /// Packaging or publishing a Helm chart failed.
    #[error(transparent)]
    Chart(Box<crate::chart::ChartError>),

    /// The registry answered with an error status.
    #[error("{op} {target} at {registry}/{repository}: HTTP {status}{}{}{}", fmt_codes(.codes), fmt_body(.body), fmt_attempts(*.attempts))]
    Registry {
        op: Op,
        registry: String,
        repository: String,
        target: String,
        status: u16,
        codes: Vec<RegistryErrorCode>,
        /// The start of a body that was not the OCI error envelope (a proxy's page).
        body: Option<Box<str>>,
        attempts: u32,
    },

    /// The request did not get an answer (connection refused or dropped, timeout, TLS).
    #[error("{op} {target} at {registry}/{repository}: {message}{}", fmt_attempts(*.attempts))]
    Transport {
        op: Op,
        registry: String,
        repository: String,
        target: String,
        message: String,
        attempts: u32,
        /// The HTTP client's error (its URL removed), for callers walking `source()`.
        #[source]
        cause: Option<Box<reqwest::Error>>,
    },

    /// Authentication failed or credentials were refused.
    #[error("authentication with {registry} failed: {reason}")]
    Auth { registry: String, reason: String },

    /// Credentials configuration could not be read.
    #[error("credentials: {reason}")]
    Credentials { reason: String },

    /// Bytes did not hash to what their descriptor says.
    #[error("digest mismatch for blob from {location}: expected {expected} ({expected_size} bytes), got {actual} ({actual_size} bytes)")]
    DigestMismatch {
        location: String,
        expected: Digest,
        expected_size: u64,
        actual: Digest,
        actual_size: u64,
    },

    /// A manifest or blob does not exist where it was looked for.
    #[error("{what} not found in {location}")]
    NotFound { what: String, location: String },

    #[error("manifest {target} from {location} is larger than the {limit}-byte limit")]
    ManifestTooLarge {
        location: String,
        target: String,
        limit: usize,
    },

    /// Something read whole (a config blob) is larger than what is read whole.
    #[error("{what} in {location} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        what: String,
        location: String,
        size: u64,
        limit: u64,
    },

    /// An OCI layout directory could not be read or written.
    #[error("{op} {path}: {message}")]
    Layout {
        op: Op,
        path: PathBuf,
        message: String,
    },

    /// An `oci-archive:` file was refused: malformed, truncated or hostile (an entry escaping the
    /// archive, a link, a device, a blob whose bytes are not its name). Nothing was written
    /// outside ferry's private spool directory.
    #[error("archive {}{}: {reason}", .path.display(), fmt_entry(.entry))]
    Archive {
        path: PathBuf,
        /// The tar entry at fault, when one is.
        entry: Option<String>,
        reason: String,
    },

    /// A file the user asked for (`--digestfile`, generated docs) or stdout could not be written.
    #[error("write {}: {reason}", .path.display())]
    Output { path: PathBuf, reason: String },

    /// A command-line argument or option is unusable; nothing was sent.
    #[error("{arg}: {reason}")]
    Usage { arg: String, reason: String },

    /// A tag name that the distribution spec does not allow.
    #[error("{tag:?} is not a valid tag ({context})")]
    BadTag { tag: String, context: String },

    /// A registry name that cannot be reached as `host[:port]`.
    #[error("registry {registry:?}: {reason}")]
    BadRegistry { registry: String, reason: String },

    /// The `--ca-file` could not be used.
    #[error("CA file {}: {reason}", .path.display())]
    CaFile { path: PathBuf, reason: String },

    /// A TLS client certificate or its key (`--*-cert-file`, `--*-key-file`, docker's
    /// `certs.d/HOST/client.{cert,key}`) could not be used.
    #[error("client certificate {}: {reason}", .path.display())]
    ClientCert { path: PathBuf, reason: String },

    /// The HTTP client could not be built.
    #[error("HTTP client: {reason}")]
    HttpClient { reason: String },

    /// `--platform` asked for something the image does not have.
    #[error("{reason}")]
    Platform { reason: String },

    /// A blob's source gave another number of bytes than its descriptor says (found while
    /// counting what is uploaded; with `--verify always` it is a [`Error::DigestMismatch`]).
    #[error("blob {digest} for {location}: the source gave {actual} bytes but the descriptor says {expected}")]
    BlobSizeMismatch {
        location: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    /// The blob-location cache could not be saved (a run still succeeds without it).
    #[error("blob-location cache {}: {reason}", .path.display())]
    Cache { path: PathBuf, reason: String },

    /// A manifest's size differs from the size its parent's descriptor gives.
    #[error("manifest {digest} in {location} is {actual} bytes but its parent says {expected}")]
    SizeMismatch {
        location: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    /// The copied image is not the digest the destination reference names.
    #[error("destination {location} names digest {expected} but the copied image is {actual}")]
    DestinationDigest {
        location: String,
        expected: Digest,
        actual: Digest,
    },

    /// A registry's answer could not be used (unreadable, too large).
    #[error("{op} {target} at {registry}/{repository}: {reason}")]
    BadAnswer {
        op: Op,
        registry: String,
        repository: String,
        target: String,
        reason: String,
    },

    /// An upload cannot go on with any strategy the registry takes.
    #[error("upload blob {digest} to {location}: {reason}")]
    Upload {
        location: String,
        digest: Digest,
        reason: String,
    },

    /// `--format` asked for a conversion the manifest cannot take (something the target
    /// format cannot say); nothing was written.
    #[error("convert {digest} from {location} to {format}: {reason}")]
    Conversion {
        location: String,
        digest: Digest,
        format: crate::convert::Format,
        reason: String,
    },

    /// A failure at one end of a copy: `source` or `destination`.
    #[error("{side}: {error}")]
    OnSide {
        side: Side,
        #[source]
        error: Box<Error>,
    },

    /// A promotion's guards or plan refused (see [`crate::promote::PromoteError`]).
    #[error(transparent)]
    Promote(Box<crate::promote::PromoteError>),

    /// A sync's config or tags refused (see [`crate::sync::SyncError`]).
    #[error(transparent)]
    Sync(Box<crate::sync::SyncError>),

    /// The store cannot do this (a registry with deletion disabled, a tag that cannot be
    /// deleted apart from its manifest); nothing was changed.
    #[error("{op} {target} at {location}: not supported here: {reason}")]
    Unsupported {
        op: Op,
        location: String,
        target: String,
        reason: String,
    },

    /// Deleting a tag would take other tags with it (the registry deletes only whole manifests).
    #[error("{location}:{tag} cannot be deleted alone: the registry deletes whole manifests, and {digest} is also tagged {}; nothing deleted (delete {location}@{digest} to remove the manifest with all its tags)", .others.join(", "))]
    DeleteRefused {
        location: String,
        tag: String,
        digest: Digest,
        others: Vec<String>,
    },

    /// The referrers of an image could not be listed or linked at a store: a fallback tag that
    /// is not an index, or another writer that kept changing it.
    #[error("referrers of {subject} at {location}: {reason}")]
    Referrers {
        location: String,
        subject: Digest,
        reason: String,
    },

    /// The run was cancelled (SIGINT/SIGTERM in the CLI) and stopped where it stood: open
    /// upload sessions were cancelled (`unfinished_cleanups` of them did not answer in time)
    /// and temp files removed; no tag was written after the request.
    #[error("interrupted ({reason}): open upload sessions cancelled, temporary files removed{}", fmt_unfinished(*.unfinished_cleanups))]
    Interrupted {
        reason: String,
        unfinished_cleanups: usize,
    },

    /// Several independent failures (e.g. several blobs of one copy).
    #[error("{} operations failed; first: {}", .0.len(), .0[0])]
    Many(Vec<Error>),
}

impl From<crate::promote::PromoteError> for Error {
    fn from(e: crate::promote::PromoteError) -> Self {
        Error::Promote(Box::new(e))
    }
}

impl From<crate::sync::SyncError> for Error {
    fn from(e: crate::sync::SyncError) -> Self {
        Error::Sync(Box::new(e))
    }
}

impl From<crate::chart::ChartError> for Error {
    fn from(e: crate::chart::ChartError) -> Self {
        Error::Chart(Box::new(e))
    }
}

fn fmt_codes(codes: &[RegistryErrorCode]) -> String {
    if codes.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = codes
        .iter()
        .map(|c| {
            if c.message.is_empty() {
                c.code.clone()
            } else {
                format!("{}: {}", c.code, c.message)
            }
        })
        .collect();
    format!(" ({})", parts.join("; "))
}

fn fmt_body(body: &Option<Box<str>>) -> String {
    match body {
        Some(b) => format!(": {b:?}"),
        None => String::new(),
    }
}

fn fmt_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(", entry {e:?}"),
        None => String::new(),
    }
}

fn fmt_unfinished(n: usize) -> String {
    match n {
        0 => String::new(),
        n => {
            format!(" ({n} cancellation requests got no answer in time; the registry expires them)")
        }
    }
}

fn fmt_attempts(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

impl Error {
    /// The HTTP status, when this is a registry answer.
    /// Several independent failures as one result: `Ok` when there are none, the error itself
    /// when there is one, [`Error::Many`] otherwise.
    pub fn all(mut errors: Vec<Error>) -> Result<(), Error> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.pop().expect("one error")),
            _ => Err(Error::Many(errors)),
        }
    }

    /// Whether the registry's error envelope carries `code` (e.g. [`DIGEST_INVALID`]).
    pub fn has_code(&self, code: &str) -> bool {
        match self.root() {
            Error::Registry { codes, .. } => codes.iter().any(|c| c.code == code),
            _ => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.root() {
            Error::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this says the thing looked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.root(), Error::NotFound { .. }) || self.status() == Some(404)
    }

    /// Marks the end of a copy this came from (kept when it already has one).
    pub fn on(self, side: Side) -> Error {
        match self {
            e @ Error::OnSide { .. } => e,
            Error::Many(v) => Error::Many(v.into_iter().map(|e| e.on(side)).collect()),
            e => Error::OnSide {
                side,
                error: Box::new(e),
            },
        }
    }

    /// The promotion failure this is, if it is one.
    pub fn promotion(&self) -> Option<&crate::promote::PromoteError> {
        match self.root() {
            Error::Promote(p) => Some(p),
            _ => None,
        }
    }

    /// The end of a copy this came from, when known.
    pub fn side(&self) -> Option<Side> {
        match self {
            Error::OnSide { side, .. } => Some(*side),
            _ => None,
        }
    }

    /// The error without its side.
    pub fn root(&self) -> &Error {
        match self {
            Error::OnSide { error, .. } => error.root(),
            e => e,
        }
    }

    /// Records how many attempts were made (for the final error after retries).
    pub fn with_attempts(self, n: u32) -> Self {
        match self {
            Error::OnSide { side, error } => Error::OnSide {
                side,
                error: Box::new((*error).with_attempts(n)),
            },
            mut e => {
                if let Error::Registry { attempts, .. } | Error::Transport { attempts, .. } = &mut e
                {
                    *attempts = n;
                }
                e
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_message_has_context() {
        let e = Error::Registry {
            op: Op::PutManifest,
            registry: "r.io".into(),
            repository: "team/api".into(),
            target: "1.0".into(),
            status: 400,
            codes: vec![RegistryErrorCode {
                code: "MANIFEST_BLOB_UNKNOWN".into(),
                message: "blob unknown".into(),
                detail: None,
            }],
            body: None,
            attempts: 3,
        };
        let s = e.to_string();
        assert!(s.contains("put manifest 1.0 at r.io/team/api: HTTP 400 (MANIFEST_BLOB_UNKNOWN: blob unknown) after 3 attempts"), "{s}");
        let on = e.on(Side::Destination);
        assert!(
            on.to_string().starts_with("destination: put manifest 1.0"),
            "{on}"
        );
        assert_eq!(
            (on.side(), on.status()),
            (Some(Side::Destination), Some(400))
        );
        // A side is given once: the innermost one that knew it wins.
        assert_eq!(on.on(Side::Source).side(), Some(Side::Destination));
    }
}
