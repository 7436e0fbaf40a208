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

/// A blob's bar: the bar takes what the terminal has left, so that a line fits in 60 columns
/// (the prefix is the digest's first 12 hex digits).
pub const BLOB_BAR: &str = "{prefix} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}";

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
        let style = ProgressStyle::with_template(BLOB_BAR)
            .unwrap()
            .progress_chars("=> ");
        let bar = self.multi.add(
            ProgressBar::new(size)
                .with_style(style)
                .with_prefix(digest.hex()[..12].to_string()),
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

/// A terminal of a given width that records every line drawn, for tests of bar layouts.
#[cfg(test)]
pub mod testterm {
    use std::sync::{Arc, Mutex};

    #[derive(Debug, Clone)]
    pub struct Recorder {
        pub width: u16,
        pub lines: Arc<Mutex<Vec<String>>>,
        current: Arc<Mutex<String>>,
    }

    impl Recorder {
        pub fn new(width: u16) -> Recorder {
            Recorder {
                width,
                lines: Arc::default(),
                current: Arc::default(),
            }
        }

        /// The widest line drawn, in characters.
        pub fn widest(&self) -> (usize, String) {
            let lines = self.lines.lock().unwrap();
            let current = self.current.lock().unwrap().clone();
            lines
                .iter()
                .chain(std::iter::once(&current))
                .map(|l| (l.trim_end().chars().count(), l.trim_end().to_string()))
                .max()
                .unwrap_or_default()
        }
    }

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            let mut cur = self.current.lock().unwrap();
            cur.push_str(s);
            self.lines.lock().unwrap().push(std::mem::take(&mut *cur));
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            // Padding to clear the rest of a line is not drawn text.
            if !s.trim().is_empty() {
                self.current.lock().unwrap().push_str(s);
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.current.lock().unwrap().clear();
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Draws `template` with a worst-case prefix and byte counts at `width`; the widest line.
    pub fn widest(template: &str, prefix: &str, msg: &str, width: u16) -> (usize, String) {
        use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
        let rec = Recorder::new(width);
        let bar = ProgressBar::with_draw_target(
            Some(1023 << 20),
            ProgressDrawTarget::term_like(Box::new(rec.clone())),
        )
        .with_style(ProgressStyle::with_template(template).unwrap())
        .with_prefix(prefix.to_string())
        .with_message(msg.to_string());
        bar.set_position(1000 << 20);
        bar.tick();
        bar.abandon();
        rec.widest()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn blob_bars_fit_in_60_columns() {
        for width in [60u16, 80, 120] {
            let (w, line) = super::testterm::widest(super::BLOB_BAR, "40dd7bdc555a", "", width);
            assert!(w <= width as usize, "{w} > {width}: {line:?}");
            assert!(w > 40, "nothing drawn? {line:?}");
        }
    }
}
