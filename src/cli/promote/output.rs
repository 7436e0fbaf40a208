//! Human-readable promotion reports: per image (digest, route, tags, blobs) and the totals.

use ferry::chart::PushOutcome;
use ferry::promote::{
    BlobSummary, ChartReport, ChartStatus, ImageReport, ImageStatus, Outcome, PlanReport, Route,
    TagAction, TagResult,
};

use crate::cli::progress::{human_bytes, short};

fn route_name(r: Option<Route>) -> &'static str {
    match r {
        Some(Route::SameRepository) => "same repository",
        Some(Route::SameRegistry) => "same registry",
        Some(Route::CrossRegistry) => "cross-registry",
        Some(Route::Local) => "OCI layout",
        None => "unresolved",
    }
}

/// `2 copied (3.0 MiB), 3 mounted (20.0 MiB), 0 present (0 B)` (in a dry run: to copy...).
pub fn summary_of_blobs(b: &BlobSummary) -> String {
    blob_counts(
        b,
        |verb, n, bytes| format!("{n} {verb} ({bytes})"),
        ["copied", "mounted", "present"],
    )
}

fn planned_blobs(b: &BlobSummary) -> String {
    blob_counts(
        b,
        |verb, n, bytes| format!("{verb} {n} ({bytes})"),
        ["copy", "mount", "skip"],
    )
}

/// Copied, mounted and skipped blobs with their bytes, each phrased by `item`.
fn blob_counts(
    b: &BlobSummary,
    item: impl Fn(&str, usize, String) -> String,
    verbs: [&str; 3],
) -> String {
    let parts = [
        item(verbs[0], b.copied, human_bytes(b.bytes_copied)),
        item(verbs[1], b.mounted, human_bytes(b.bytes_mounted)),
        item(verbs[2], b.skipped, human_bytes(b.bytes_skipped)),
    ];
    parts.join(", ")
}

fn tag_text(t: &TagResult, dry_run: bool) -> String {
    let was = t
        .previous
        .as_ref()
        .map(|p| format!(" (was {})", short(p)))
        .unwrap_or_default();
    match (t.action, dry_run) {
        (TagAction::Created, true) => format!("create {}", t.tag),
        (TagAction::Unchanged, true) => format!("leave {}", t.tag),
        (TagAction::Moved, true) => format!("move {}{was}", t.tag),
        (TagAction::Refused, true) => format!("REFUSE {}{was}", t.tag),
        (TagAction::Created, false) if !t.written => {
            format!("{} not written (would create)", t.tag)
        }
        (TagAction::Moved, false) if !t.written => {
            format!("{} not written (would move){was}", t.tag)
        }
        (TagAction::Created, false) => format!("{} created", t.tag),
        (TagAction::Unchanged, false) => format!("{} unchanged", t.tag),
        (TagAction::Moved, false) => format!("{} moved{was}", t.tag),
        (TagAction::Refused, false) => format!("{} REFUSED{was}", t.tag),
    }
}

fn tags_text(tags: &[TagResult], dry_run: bool) -> String {
    let parts: Vec<String> = tags.iter().map(|t| tag_text(t, dry_run)).collect();
    parts.join(", ")
}

fn status_word(s: ImageStatus) -> &'static str {
    match s {
        ImageStatus::Planned => "plan",
        ImageStatus::Promoted => "promoted",
        ImageStatus::Prepared => "prepared (not tagged)",
        ImageStatus::Skipped => "skipped",
        ImageStatus::Refused => "REFUSED",
        ImageStatus::Failed => "FAILED",
    }
}

/// One line for an image: status, source, destination, digest, route, time; the error if any.
pub fn image_line(i: &ImageReport) -> String {
    let digest = i.digest.as_ref().map(short).unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{} {} -> {} @ {digest} ({}, {:.2}s)",
        status_word(i.status),
        i.source,
        i.destination,
        route_name(i.route),
        i.seconds
    );
    if i.label != i.source {
        line = format!("{}: {line}", i.label);
    }
    if let Some(e) = &i.error {
        line.push_str(&format!("\n    error: {e}"));
    }
    line
}

/// What happened to an image's blobs, when there is something to say.
fn blob_line(i: &ImageReport, dry_run: bool) -> Option<String> {
    let worked = matches!(
        i.status,
        ImageStatus::Planned | ImageStatus::Promoted | ImageStatus::Prepared
    );
    if !worked || i.route == Some(Route::SameRepository) {
        return None;
    }
    let b = &i.blobs;
    if !dry_run && b.copied + b.mounted + b.skipped == 0 && i.manifests_pushed == 0 {
        return Some("none pushed: the image was already at the destination".into());
    }
    Some(match dry_run {
        true => planned_blobs(b),
        false => summary_of_blobs(b),
    })
}

/// The image's referrers: each that moves (or would) by type and digest, how many were
/// already there, and the referrer tags written.
fn referrers_line(i: &ImageReport, dry_run: bool) -> Option<String> {
    if i.referrers.is_empty() {
        return None;
    }
    let moving: Vec<String> = i
        .referrers
        .iter()
        .filter(|f| !f.present)
        .map(|f| {
            let kind = f
                .referrer
                .artifact_type
                .as_deref()
                .unwrap_or(&f.referrer.media_type);
            match &f.tag {
                Some(t) => format!("{t} ({kind})"),
                None => format!("{kind} {}", short(&f.referrer.digest)),
            }
        })
        .collect();
    let present = i.referrers.len() - moving.len();
    let verb = if dry_run { "would copy" } else { "copied" };
    let mut line = match moving.is_empty() {
        true => format!("{present} already present"),
        false => format!(
            "{verb} {}: {}; {present} already present",
            moving.len(),
            moving.join(", ")
        ),
    };
    if !i.referrer_tags.is_empty() {
        line.push_str(&format!("; tags written: {}", i.referrer_tags.join(", ")));
    }
    Some(line)
}

/// One line for a chart of a plan: what happened (or would), name, version, destination and
/// digest; what the destination held before and the error, if any.
pub fn chart_line(c: &ChartReport, dry_run: bool) -> String {
    use PushOutcome::*;
    let word = match (c.status, c.action, dry_run) {
        (ChartStatus::Failed, _, _) => "FAILED",
        (_, Some(Refused), _) | (ChartStatus::Refused, _, _) => "REFUSED",
        (_, Some(Unchanged), _) => "unchanged",
        (_, Some(Created), true) => "would create",
        (_, Some(Replaced), true) => "would replace",
        (ChartStatus::Published, Some(Created), false) => "created",
        (ChartStatus::Published, Some(Replaced), false) => "replaced",
        (_, Some(Created), false) => "not written (would create)",
        (_, Some(Replaced), false) => "not written (would replace)",
        (_, None, _) => "not written",
    };
    let mut line = format!(
        "{}: {word} chart {} {} -> {} @ {}",
        c.label, c.chart, c.version, c.destination, c.digest
    );
    if let Some(p) = c.previous.as_ref().filter(|p| **p != c.digest) {
        line.push_str(&format!("\n    was:   {p}"));
    }
    if let Some(e) = &c.error {
        line.push_str(&format!("\n    error: {e}"));
    }
    line
}

/// What a stopped plan did not write: images not promoted, charts not written.
fn not_written(r: &PlanReport) -> String {
    let images = r
        .images
        .iter()
        .filter(|i| i.status != ImageStatus::Promoted)
        .map(|i| i.label.clone());
    let charts = r
        .charts
        .iter()
        .filter(|c| !c.written && c.action.is_some_and(|a| a.writes()))
        .map(|c| format!("chart {} {}", c.chart, c.version));
    images.chain(charts).collect::<Vec<_>>().join(", ")
}

/// Prints the report on stdout.
pub fn print(r: &PlanReport) {
    for i in &r.images {
        println!("{}", image_line(i));
        if !i.tags.is_empty() {
            println!("    tags:  {}", tags_text(&i.tags, r.dry_run));
        }
        if let Some(blobs) = blob_line(i, r.dry_run) {
            println!("    blobs: {blobs}");
        }
        if let Some(line) = referrers_line(i, r.dry_run) {
            println!("    referrers: {line}");
        }
    }
    for c in &r.charts {
        println!("{}", chart_line(c, r.dry_run));
    }
    let t = &r.totals;
    let charts = match t.charts {
        0 => String::new(),
        n => format!(
            "; {n} chart(s): {} published, {} written, {} failed",
            t.charts_published, t.charts_written, t.charts_failed
        ),
    };
    if r.images.len() + r.charts.len() > 1 {
        println!(
            "{} images: {} promoted, {} failed; tags: {} created, {} unchanged, {} moved, {} refused; blobs: {}{charts}; {:.2}s",
            t.images, t.promoted, t.failed, t.tags_created, t.tags_unchanged, t.tags_moved,
            t.tags_refused, summary_of_blobs(&t.blobs), r.seconds
        );
    }
    let charts_failed = match t.charts {
        0 => String::new(),
        _ => format!(" and {} chart(s)", t.charts_failed),
    };
    match r.outcome {
        Outcome::Planned => println!("dry run: nothing was written"),
        Outcome::NoTagsWritten if !r.ok() => println!(
            "nothing was written: {} image(s){charts_failed} failed or were refused{}",
            t.failed,
            if r.atomic { " (all-or-nothing)" } else { "" }
        ),
        Outcome::Partial => println!(
            "PARTIAL: {} tag(s) and {} chart(s) written; {} image(s){charts_failed} failed; not written: {}",
            t.tags_written,
            t.charts_written,
            t.failed,
            not_written(r)
        ),
        _ => {}
    }
}
