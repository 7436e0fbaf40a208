//! Progress of a promotion: on a terminal, a bar per image being pushed above a total bar; on
//! anything else, one plain line per image milestone (and per blob for a single image).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use ferry::digest::Digest;
use ferry::progress::{Reporter, Silent};
use ferry::promote::{ChartReport, ImageReport, ImageStatus, PlanReporter};
use ferry::store::BlobOutcome;

use super::output::{chart_line, image_line, summary_of_blobs};
use crate::cli::progress::{reporter, Verbosity};

/// The CLI's plan reporter.
pub struct CliReporter {
    images: usize,
    charts: usize,
    mode: Mode,
}

enum Mode {
    Quiet,
    Lines,
    Bars(Bars),
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    bytes: Mutex<HashMap<usize, u64>>,
    active: Mutex<HashMap<usize, ProgressBar>>,
    finished: Mutex<usize>,
}

/// Bars on a TTY (stderr), lines otherwise, nothing when quiet.
pub fn plan_reporter(quiet: bool, images: usize, charts: usize) -> Arc<CliReporter> {
    let mode = if quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        Mode::Bars(Bars::new(images))
    } else {
        Mode::Lines
    };
    Arc::new(CliReporter {
        images,
        charts,
        mode,
    })
}

/// The running total and one bar per image: the bars take what the terminal has left, so a
/// line fits in 60 columns.
const TOTAL_BAR: &str = "{prefix:>9} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}";
const IMAGE_BAR: &str = "{prefix:>9} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

impl Bars {
    fn new(images: usize) -> Bars {
        let multi = crate::cli::progress::bars_target();
        let total = multi.add(ProgressBar::new(0).with_style(style(TOTAL_BAR)));
        total.set_prefix(format!("0/{images} images"));
        Bars {
            multi,
            total,
            bytes: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            finished: Mutex::new(0),
        }
    }

    fn drop_bar(&self, index: usize) {
        if let Some(b) = self.active.lock().unwrap().remove(&index) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
    }
}

impl CliReporter {
    /// Removes the bars before the final report is printed.
    pub fn clear(&self) {
        if let Mode::Bars(b) = &self.mode {
            for (_, bar) in b.active.lock().unwrap().drain() {
                bar.finish_and_clear();
            }
            b.total.finish_and_clear();
        }
    }

    fn counter(&self, index: usize) -> String {
        format!("[{}/{}]", index + 1, self.images)
    }
}

impl PlanReporter for CliReporter {
    fn image(&self, index: usize) -> Arc<dyn Reporter> {
        match &self.mode {
            Mode::Quiet => Arc::new(Silent),
            Mode::Lines if self.images == 1 => reporter(Verbosity::Normal),
            Mode::Lines => Arc::new(Silent),
            Mode::Bars(b) => {
                let len = b.bytes.lock().unwrap().get(&index).copied().unwrap_or(0);
                let bar = b
                    .multi
                    .insert_before(&b.total, ProgressBar::new(len).with_style(style(IMAGE_BAR)));
                bar.set_prefix(format!("image {}", index + 1));
                b.active.lock().unwrap().insert(index, bar.clone());
                Arc::new(ImageBar {
                    bar,
                    total: b.total.clone(),
                })
            }
        }
    }

    fn image_resolved(&self, index: usize, _image: &ImageReport, bytes: u64) {
        if let Mode::Bars(b) = &self.mode {
            b.bytes.lock().unwrap().insert(index, bytes);
            b.total.inc_length(bytes);
        }
    }

    fn image_prepared(&self, index: usize, image: &ImageReport) {
        let line = format!(
            "{} ready    {}: {}",
            self.counter(index),
            image.label,
            summary_of_blobs(&image.blobs)
        );
        match &self.mode {
            Mode::Lines if self.images > 1 => eprintln!("{line}"),
            Mode::Bars(b) => b.drop_bar(index),
            _ => {}
        }
    }

    fn image_finished(&self, index: usize, image: &ImageReport) {
        let line = format!("{} {}", self.counter(index), image_line(image));
        match &self.mode {
            Mode::Lines if self.images > 1 => eprintln!("{line}"),
            Mode::Bars(b) => {
                b.drop_bar(index);
                let mut n = b.finished.lock().unwrap();
                *n += 1;
                b.total.set_prefix(format!("{n}/{} images", self.images));
                if image.status != ImageStatus::Promoted || self.images > 1 {
                    let _ = b.multi.println(line);
                }
            }
            _ => {}
        }
    }

    fn chart_finished(&self, index: usize, chart: &ChartReport) {
        self.chart_milestone(index, chart);
    }
}

impl CliReporter {
    /// A chart's milestone, on its own line (plain output, or above the bars).
    fn chart_milestone(&self, index: usize, chart: &ChartReport) {
        let line = format!(
            "[chart {}/{}] {}",
            index + 1,
            self.charts,
            chart_line(chart, chart.status == ferry::promote::ChartStatus::Planned)
        );
        match &self.mode {
            Mode::Lines if self.images + self.charts > 1 => eprintln!("{line}"),
            Mode::Bars(b) => {
                let _ = b.multi.println(line);
            }
            _ => {}
        }
    }
}

/// Feeds one image's bar and the total.
struct ImageBar {
    bar: ProgressBar,
    total: ProgressBar,
}

impl Reporter for ImageBar {
    fn blob_progress(&self, _digest: &Digest, n: u64) {
        self.bar.inc(n);
        self.total.inc(n);
    }
    fn blob_done(&self, _digest: &Digest, size: u64, outcome: BlobOutcome) {
        if !matches!(outcome, BlobOutcome::Copied(_)) {
            self.bar.inc(size);
            self.total.inc(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::progress::testterm::widest;

    #[test]
    fn promotion_bars_fit_in_60_columns() {
        for width in [60u16, 80] {
            for (template, prefix, msg) in [
                (super::TOTAL_BAR, "128/128 images", ""),
                (super::IMAGE_BAR, "image 128", ""),
            ] {
                let (w, line) = widest(template, prefix, msg, width);
                assert!(w <= width as usize, "{w} > {width}: {line:?}");
                assert!(w > 40, "nothing drawn? {line:?}");
            }
        }
    }
}
