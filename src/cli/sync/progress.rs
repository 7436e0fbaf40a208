//! Progress of a sync: on a terminal, repositories done / total and the bytes crossing with
//! their rate (copied and failed tags printed above); otherwise one line per tag on stderr.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use ferry::digest::Digest;
use ferry::progress::{Reporter, Silent};
use ferry::sync::{RepoReport, SyncReporter, TagAction, TagReport};

use crate::cli::progress::{bars_target, human_bytes, short};

pub struct SyncProgress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Lines,
    Bars {
        multi: MultiProgress,
        repos: ProgressBar,
        bytes: ProgressBar,
    },
}

/// Bars on a TTY (stderr), lines otherwise, nothing when quiet.
pub fn reporter(quiet: bool) -> Arc<SyncProgress> {
    let mode = if quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        let multi = bars_target();
        let style = |t: &str| ProgressStyle::with_template(t).expect("valid template");
        let repos = multi.add(
            ProgressBar::new(0)
                .with_style(
                    style("{prefix:>12} [{bar:30}] {pos}/{len} {elapsed}").progress_chars("=> "),
                )
                .with_prefix("repositories"),
        );
        let bytes = multi.add(
            ProgressBar::new(0)
                .with_style(style("{prefix:>12} {bytes} {bytes_per_sec}"))
                .with_prefix("copied"),
        );
        Mode::Bars {
            multi,
            repos,
            bytes,
        }
    } else {
        Mode::Lines
    };
    Arc::new(SyncProgress { mode })
}

impl SyncProgress {
    pub fn clear(&self) {
        if let Mode::Bars { repos, bytes, .. } = &self.mode {
            repos.finish_and_clear();
            bytes.finish_and_clear();
        }
    }
}

/// `SRC:TAG` or `SRC@DIGEST`.
fn at(location: &str, tag: &str) -> String {
    match tag.contains(':') {
        true => format!("{location}@{tag}"),
        false => format!("{location}:{tag}"),
    }
}

fn digest(d: &Option<Digest>) -> String {
    d.as_ref().map(short).unwrap_or_else(|| "-".into())
}

/// One line per tag: what happened, where, which digest, how many bytes.
pub fn tag_line(source: &str, destination: &str, t: &TagReport) -> String {
    let b = &t.blobs;
    // Blobs are counted on the first tag of an image; its other tags moved nothing more.
    let moved = match b.copied + b.mounted + b.skipped {
        0 => String::new(),
        _ => format!(
            " ({} copied, {} mounted)",
            human_bytes(b.bytes_copied),
            human_bytes(b.bytes_mounted)
        ),
    };
    match t.action {
        TagAction::Copied => format!(
            "copied   {} -> {} {}{moved}",
            at(source, &t.tag),
            at(destination, &t.tag),
            digest(&t.destination_digest)
        ),
        TagAction::Planned => format!(
            "to copy  {} -> {} {} (would move {})",
            at(source, &t.tag),
            at(destination, &t.tag),
            digest(&t.destination_digest),
            human_bytes(b.bytes_copied)
        ),
        TagAction::Skipped => format!(
            "skipped  {} {} (already at {})",
            at(source, &t.tag),
            digest(&t.source_digest),
            destination
        ),
        TagAction::NotStarted => {
            format!("stopped  {} (not started: --fail-fast)", at(source, &t.tag))
        }
        TagAction::Failed => match &t.error {
            Some(e) => format!("failed   {}: {e}", at(source, &t.tag)),
            None => format!(
                "failed   {} (with the tag above: same image)",
                at(source, &t.tag)
            ),
        },
    }
}

struct Bytes(ProgressBar);
impl Reporter for Bytes {
    fn blob_progress(&self, _digest: &Digest, n: u64) {
        self.0.inc(n);
    }
}

impl SyncReporter for SyncProgress {
    fn planned(&self, repositories: usize) {
        if let Mode::Bars { repos, .. } = &self.mode {
            repos.set_length(repositories as u64);
        }
    }

    fn blobs(&self) -> Arc<dyn Reporter> {
        match &self.mode {
            Mode::Bars { bytes, .. } => Arc::new(Bytes(bytes.clone())),
            _ => Arc::new(Silent),
        }
    }

    fn tag_finished(&self, source: &str, destination: &str, t: &TagReport) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => eprintln!("{}", tag_line(source, destination, t)),
            Mode::Bars { multi, .. } => {
                if t.action != TagAction::Skipped {
                    let _ = multi.println(tag_line(source, destination, t));
                }
            }
        }
    }

    fn repository_finished(&self, r: &RepoReport) {
        match &self.mode {
            Mode::Bars { repos, multi, .. } => {
                repos.inc(1);
                if let Some(e) = &r.error {
                    let _ = multi.println(format!("failed   {}: {e}", r.source));
                }
            }
            Mode::Lines => {
                if let Some(e) = &r.error {
                    eprintln!("failed   {}: {e}", r.source);
                }
            }
            Mode::Quiet => {}
        }
    }
}
