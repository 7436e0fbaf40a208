//! One error type for the library, carrying the context (where, what, which side) of every failure.

use std::path::PathBuf;

use crate::digest::{Digest, DigestParseError};
use crate::manifest::ManifestError;
use crate::reference::ReferenceError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operation that failed, for messages and retry logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ping,
    Auth,
    GetManifest,
    HeadManifest,
    PutManifest,
    HeadBlob,
    GetBlob,
    UploadBlob,
    MountBlob,
    ListTags,
    ReadLayout,
    WriteLayout,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Op::Ping => "ping",
            Op::Auth => "authenticate",
            Op::GetManifest => "get manifest",
            Op::HeadManifest => "check manifest",
            Op::PutManifest => "put manifest",
            Op::HeadBlob => "check blob",
            Op::GetBlob => "get blob",
            Op::UploadBlob => "upload blob",
            Op::MountBlob => "mount blob",
            Op::ListTags => "list tags",
            Op::ReadLayout => "read layout",
            Op::WriteLayout => "write layout",
        };
        f.write_str(s)
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
    Chart(#[from] crate::chart::ChartError),

    /// The registry answered with an error status.
    #[error("{op} {target} at {registry}/{repository}: HTTP {status}{}{}", fmt_codes(.codes), fmt_attempts(*.attempts))]
    Registry {
        op: Op,
        registry: String,
        repository: String,
        target: String,
        status: u16,
        codes: Vec<RegistryErrorCode>,
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

    /// An OCI layout directory could not be read or written.
    #[error("{op} {path}: {message}")]
    Layout {
        op: Op,
        path: PathBuf,
        message: String,
    },

    /// A request that makes no sense (e.g. a subset of platforms of a non-index).
    #[error("{0}")]
    Invalid(String),

    /// Release guard: the source is not the digest that was tested.
    #[error("source {source_ref} resolves to {actual}, not the expected {expected}")]
    UnexpectedDigest {
        source_ref: String,
        expected: Digest,
        actual: Digest,
    },

    /// Release guard: a destination tag points at another digest and may not be moved.
    #[error("{location}:{tag} points at {current}, not {wanted}: not moved (use --force or an overwrite rule)")]
    TagRefused {
        location: String,
        tag: String,
        current: Digest,
        wanted: Digest,
    },

    /// A promotion plan is invalid; nothing was sent. Every problem found is listed.
    #[error("plan {file} is invalid:{}", fmt_problems(.file, .problems))]
    Plan {
        file: String,
        problems: Vec<PlanProblem>,
    },

    /// Several independent failures (e.g. several blobs of one copy).
    #[error("{} operations failed; first: {}", .0.len(), .0[0])]
    Many(Vec<Error>),
}

/// One problem in a plan file, with the line and column (1-based) it was found at.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn fmt_problems(file: &str, problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  {file}:{}:{}: {}", p.line, p.column, p.message))
        .collect()
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

fn fmt_attempts(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

impl Error {
    /// Whether the same request could succeed if tried again (408, 429, 5xx, connection errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Registry { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Error::Transport { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status, when this is a registry answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this says the thing looked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. }) || self.status() == Some(404)
    }

    /// Records how many attempts were made (for the final error after retries).
    pub fn with_attempts(mut self, n: u32) -> Self {
        if let Error::Registry { attempts, .. } | Error::Transport { attempts, .. } = &mut self {
            *attempts = n;
        }
        self
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
            attempts: 3,
        };
        let s = e.to_string();
        assert!(s.contains("put manifest 1.0 at r.io/team/api: HTTP 400 (MANIFEST_BLOB_UNKNOWN: blob unknown) after 3 attempts"), "{s}");
        assert!(!e.is_retryable());
    }
}
