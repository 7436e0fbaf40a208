//! Errors of chart packaging and publishing, each naming the chart, file or server involved.

use std::path::PathBuf;

/// A chart could not be read, packaged or published.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// A file or directory could not be read or written.
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },

    /// The chart breaks a rule of Helm's loader (Chart.yaml fields, archive layout).
    #[error("chart {chart}: {reason}")]
    Invalid { chart: String, reason: String },

    /// One file is over Helm's per-file limit.
    #[error(
        "chart {chart}: file {file} is {size} bytes, over Helm's limit of {limit} bytes per file"
    )]
    FileTooLarge {
        chart: String,
        file: String,
        size: u64,
        limit: u64,
    },

    /// The files together are over Helm's limit for a whole chart.
    #[error("chart {chart}: its files add up to more than Helm's limit of {limit} bytes (reached at {file})")]
    ChartTooLarge {
        chart: String,
        file: String,
        limit: u64,
    },

    /// A symbolic link that leaves the chart directory, or that cannot be followed.
    #[error("chart {chart}: symbolic link {file} {problem}")]
    Symlink {
        chart: String,
        file: String,
        problem: String,
    },

    /// A destination that is neither `oci://` nor `http(s)://`, or is malformed.
    #[error("invalid chart destination {destination:?}: {reason}")]
    Destination { destination: String, reason: String },

    /// The chart repository server answered with an error status.
    #[error("{op} {url}: HTTP {status}{}", fmt_body(.body))]
    Server {
        op: &'static str,
        url: String,
        status: u16,
        body: String,
    },

    /// The server refused the credentials (or none were given).
    #[error("{op} {url}: HTTP {status}: authentication failed{}", fmt_body(.body))]
    Unauthorized {
        op: &'static str,
        url: String,
        status: u16,
        body: String,
    },

    /// Every `/api` route answers 404: ChartMuseum runs with `DISABLE_API` (its Helm chart's
    /// default).
    #[error("{url}: HTTP 404 {{\"error\":\"not found\"}}: the ChartMuseum API is disabled on {server} (DISABLE_API=true, the default of ChartMuseum's Helm chart) or the repository path is wrong; enable the API (env DISABLE_API=false) to push")]
    ApiDisabled { server: String, url: String },

    /// No answer from the server (connection refused, TLS, timeout).
    #[error("{op} {url}: {message}")]
    Transport {
        op: &'static str,
        url: String,
        message: String,
    },

    /// TLS or credential settings for a chart server are unusable.
    #[error("{0}")]
    Settings(String),

    /// The version exists at the destination with other bytes; not replaced without force.
    #[error("{location}: {name} {version} already exists with digest {current}, not {wanted}: not replaced (use --force)")]
    Refused {
        location: String,
        name: String,
        version: String,
        current: String,
        wanted: String,
    },
}

impl ChartError {
    pub fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        ChartError::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }

    pub fn invalid(chart: impl Into<String>, reason: impl Into<String>) -> Self {
        ChartError::Invalid {
            chart: chart.into(),
            reason: reason.into(),
        }
    }
}

fn fmt_body(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// The first 300 characters of a response body, on one line, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}
