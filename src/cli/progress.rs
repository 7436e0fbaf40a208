//! Renders library progress events: indicatif bars on a terminal, one plain line per event otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use ferry::digest::Digest;
use ferry::progress::Reporter;
use ferry::store::BlobOutcome;

/// The one set of progress bars on stderr; log lines go through it so they do not tear the bars.
pub fn bars_target() -> MultiProgress {
    static MULTI: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    MULTI
        .get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        .clone()
}

/// A stderr writer for log lines that hides the bars while it writes.
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars_target().suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// How much the CLI says while working.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
}

/// Picks bars for a TTY on stderr, plain lines otherwise, nothing when quiet.
pub fn reporter(v: Verbosity) -> std::sync::Arc<dyn Reporter> {
    match v {
        Verbosity::Quiet => std::sync::Arc::new(ferry::progress::Silent),
        Verbosity::Normal if std::io::stderr().is_terminal() => std::sync::Arc::new(Bars::new()),
        Verbosity::Normal => std::sync::Arc::new(Lines),
    }
}

pub fn short(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn outcome_text(outcome: BlobOutcome, size: u64) -> String {
    match outcome {
        BlobOutcome::Skipped => format!("already present ({})", human_bytes(size)),
        BlobOutcome::Mounted => format!("mounted ({})", human_bytes(size)),
        BlobOutcome::Copied(n) => format!("copied {}", human_bytes(n)),
    }
}

/// One line on stderr per finished blob, manifest and tag.
struct Lines;

impl Reporter for Lines {
    fn blob_done(&self, digest: &Digest, size: u64, outcome: BlobOutcome) {
        eprintln!("blob     {} {}", short(digest), outcome_text(outcome, size));
    }
    fn manifest_done(&self, digest: &Digest, media_type: &str, existed: bool) {
        let what = if existed { "already present" } else { "pushed" };
        eprintln!("manifest {} {what} ({media_type})", short(digest));
    }
    fn tagged(&self, location: &str, tag: &str, digest: &Digest) {
        eprintln!("tag      {location}:{tag} -> {}", short(digest));
    }
}

/// A bar per blob in flight under a running total.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        Bars {
            multi: bars_target(),
            bars: Mutex::new(HashMap::new()),
        }
    }
}

impl Reporter for Bars {
    fn blob_started(&self, digest: &Digest, size: u64) {
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap()
        .progress_chars("=> ");
        let bar = self.multi.add(
            ProgressBar::new(size)
                .with_style(style)
                .with_prefix(short(digest)),
        );
        self.bars.lock().unwrap().insert(digest.clone(), bar);
    }
    fn blob_progress(&self, digest: &Digest, n: u64) {
        if let Some(b) = self.bars.lock().unwrap().get(digest) {
            b.inc(n);
        }
    }
    fn blob_done(&self, digest: &Digest, size: u64, outcome: BlobOutcome) {
        if let Some(b) = self.bars.lock().unwrap().remove(digest) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        let _ = self.multi.println(format!(
            "blob     {} {}",
            short(digest),
            outcome_text(outcome, size)
        ));
    }
    fn manifest_done(&self, digest: &Digest, media_type: &str, existed: bool) {
        let what = if existed { "already present" } else { "pushed" };
        let _ = self
            .multi
            .println(format!("manifest {} {what} ({media_type})", short(digest)));
    }
    fn tagged(&self, location: &str, tag: &str, digest: &Digest) {
        let _ = self
            .multi
            .println(format!("tag      {location}:{tag} -> {}", short(digest)));
    }
}
