//! The human-readable end of a sync: per repository in a dry run (what would be copied, skipped
//! and left, with bytes), then the summary table (tags, bytes, requests per registry) and the
//! failures.

use ferry::sync::{RepoReport, SyncReport, TagAction};

use crate::cli::progress::human_bytes;

pub fn print(r: &SyncReport) {
    if r.dry_run {
        for repo in &r.repositories {
            dry_run_repository(repo);
        }
    }
    let t = &r.totals;
    let verb = if r.dry_run { "would copy" } else { "copied" };
    println!(
        "\nsync{}{}: {} repositories, {} tags: {} {verb}, {} skipped (unchanged), {} failed, {} left out by filters{}",
        if r.dry_run { " (dry run)" } else { "" },
        if r.shard.count > 1 { format!(", shard {}", r.shard) } else { String::new() },
        t.repositories,
        t.tags,
        if r.dry_run { t.planned } else { t.copied },
        t.skipped,
        t.failed,
        t.left,
        if t.not_started > 0 { format!(", {} not started (--fail-fast)", t.not_started) } else { String::new() },
    );
    println!(
        "blobs: {} {verb} ({}), {} mounted ({}), {} present ({}); {:.1}s",
        t.blobs.copied,
        human_bytes(t.blobs.bytes_copied),
        t.blobs.mounted,
        human_bytes(t.blobs.bytes_mounted),
        t.blobs.skipped,
        human_bytes(t.blobs.bytes_skipped),
        r.seconds
    );
    requests(r);
    failures(r);
}

fn dry_run_repository(repo: &RepoReport) {
    let planned: Vec<&str> = repo
        .tags
        .iter()
        .filter(|t| t.action == TagAction::Planned)
        .map(|t| t.tag.as_str())
        .collect();
    let bytes: u64 = repo.tags.iter().map(|t| t.blobs.bytes_copied).sum();
    println!(
        "{} -> {}: copy {} ({}), skip {}, leave {}{}",
        repo.source,
        repo.destination,
        planned.len(),
        human_bytes(bytes),
        repo.count(TagAction::Skipped),
        repo.left.len(),
        if repo.failed() { ", FAILED" } else { "" }
    );
    if !planned.is_empty() {
        println!("  copy:  {}", planned.join(" "));
    }
    if !repo.left.is_empty() {
        println!("  leave: {}", repo.left.join(" "));
    }
}

fn requests(r: &SyncReport) {
    if r.requests.is_empty() {
        return;
    }
    println!(
        "\n{:<28} {:<12} {:>8} {:>6} {:>6} {:>6} {:>7} {:>6} {:>9} {:>10}",
        "registry", "side", "requests", "HEAD", "GET", "PUT", "blobs", "lists", "down", "up"
    );
    for q in &r.requests {
        let blobs = q.blob_heads + q.blob_gets + q.blob_uploads + q.mounts;
        println!(
            "{:<28} {:<12} {:>8} {:>6} {:>6} {:>6} {:>7} {:>6} {:>9} {:>10}",
            q.registry,
            q.side.to_string(),
            q.requests,
            q.manifest_heads,
            q.manifest_gets,
            q.manifest_puts,
            blobs,
            q.tag_list_pages + q.catalog_pages,
            human_bytes(q.bytes_downloaded),
            human_bytes(q.bytes_uploaded)
        );
    }
}

fn failures(r: &SyncReport) {
    let mut lines = Vec::new();
    for repo in &r.repositories {
        if let Some(e) = &repo.error {
            lines.push(format!("  {} ({}): {e}", repo.source, repo.label));
        }
        for t in repo.tags.iter().filter(|t| t.action == TagAction::Failed) {
            let sep = if t.tag.contains(':') { '@' } else { ':' };
            match &t.error {
                Some(e) => lines.push(format!("  {}{sep}{}: {e}", repo.source, t.tag)),
                None => lines.push(format!(
                    "  {}{sep}{}: same image as the tag above",
                    repo.source, t.tag
                )),
            }
        }
    }
    if !lines.is_empty() {
        println!("\nfailed ({}):", lines.len());
        for l in lines {
            println!("{l}");
        }
    }
}
