//! `ferry copy SRC DST`: one image (all platforms by default) with its tags.

use clap::Args;

use ferry::convert::Format;
use ferry::copy::{Copier, CopyOptions, CopyReport, Selection};
use ferry::error::Side;
use ferry::manifest::Platform;
use ferry::reference::{ImageRef, Tag};
use ferry::store::Target;
use ferry::{Error, Result};

use super::endpoints::TransportArgs;
use super::progress::{human_bytes, reporter, short, Verbosity};
use super::settings::{parse_ref, parse_tag, tag_names, Stores, TransportSettings};

const EXAMPLES: &str = "\
Examples:
  ferry copy registry.example.com/team/api:feature-x prod.example.com/team/api:1.4.2 --tag latest
  ferry copy docker://alpine:3.20 oci:./mirror:3.20          # registry -> OCI layout
  ferry copy oci:./mirror:3.20 127.0.0.1:5000/alpine:3.20     # OCI layout -> registry
  ferry copy docker://alpine:3.20 oci-archive:./alpine.tar:3.20 # registry -> OCI archive
  ferry copy --platform linux/amd64 --platform linux/arm64 src.io/app:1 dst.io/app:1

References: [registry[:port]/]repo[:tag][@sha256:...] (docker:// prefix accepted; unqualified
names are Docker Hub), oci:PATH[:TAG] for an OCI image layout directory, or
oci-archive:FILE[:TAG] for a tar of one (plain or gzip'd; FILE alone reads its only image). A
destination without tag is tagged `latest`; one with only a digest is pushed by digest, untagged.

Archives: a source archive is extracted, every entry checked (no links, devices, `..` or
absolute names; each blob's bytes must be its digest), into a private spool under $TMPDIR
(needs as much free space as the archive holds). A destination archive is built in such a
spool, keeping the images FILE already holds, and written (temp file + rename) only when the
copy succeeded.

Platforms: without --platform every platform of an index is copied and the index keeps its
digest. With --platform, one matching platform copies that platform's own manifest (its digest
is kept; the destination is a single-platform image); several make a new index naming only
them (a new digest, printed in the result). A single-platform image is copied as it is when
--platform names its own platform (read from its config).";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct CopyArgs {
    /// Source image reference.
    pub source: String,
    /// Destination image reference.
    pub destination: String,
    /// Extra tag to point at the copied image (repeatable).
    #[arg(long = "tag", value_name = "TAG", value_parser = parse_tag)]
    pub tags: Vec<Tag>,
    /// Copy only this platform of a multi-platform index, OS/ARCH[/VARIANT] (repeatable).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    pub platforms: Vec<Platform>,
    /// Copy every platform (the default; accepted for skopeo compatibility).
    #[arg(long, conflicts_with = "platforms")]
    pub all: bool,
    /// Blob transfers in flight at once.
    #[arg(short, long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Write manifests as OCI (oci) or Docker schema 2 (v2s2), converting those that are not:
    /// converted manifests get NEW digests (blobs keep theirs). Default: as they are.
    #[arg(long, value_name = "oci|v2s2")]
    pub format: Option<Format>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the destination's manifest digest to this file (atomically) once the copy is done.
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub transport: TransportArgs,
}

pub async fn run(args: CopyArgs) -> Result<()> {
    let result = copy(&args).await;
    if let (Err(e), true) = (&result, args.json) {
        // As `promote --json` does: a script reading stdout learns what failed, too.
        let failure = serde_json::json!({
            "source": args.source,
            "destination": args.destination,
            "error": e.to_string(),
            "exit_code": super::exit_code(e),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&failure).expect("JSON serialises")
        );
    }
    result
}

async fn copy(args: &CopyArgs) -> Result<()> {
    let src_ref = parse_ref(&args.source)?;
    let dst_ref = parse_ref(&args.destination)?;
    let stores = Stores::new(TransportSettings::resolve(&args.transport)?, None, false)
        .with_archive_output();
    let (src, target) = stores.open(&src_ref, Side::Source)?;
    let (dst, dst_target) = stores.open(&dst_ref, Side::Destination)?;
    let mut tags = Vec::new();
    if let Target::Tag(t) = &dst_target {
        tags.push(t.clone());
    }
    for t in tag_names(&args.tags) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let verbosity = if args.quiet || args.json {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    };
    let copier = Copier::new(reporter(verbosity)).with_cancel(super::interrupt::token().clone());
    let opts = CopyOptions {
        platforms: args.platforms.clone(),
        jobs: args.jobs.max(1),
        format: args.format,
    };
    let prepared = copier
        .prepare(src.as_ref(), &target, dst.as_ref(), &tags, &opts)
        .await?;
    if let Target::Digest(want) = &dst_target {
        if want != &prepared.root.digest {
            return Err(Error::DestinationDigest {
                location: dst.location(),
                expected: want.clone(),
                actual: prepared.root.digest.clone(),
            });
        }
    }
    let report = copier.tag(dst.as_ref(), prepared, &tags).await?;
    // Destination archives are written only now that everything is in their spool.
    stores.finish().await?;
    if let Some(path) = &args.digestfile {
        super::digestfile::write(path, &report.destination_digest)?;
    }
    print_report(&report, args.json, args.quiet);
    if let (ImageRef::Layout(_), false) = (&dst_ref, args.quiet) {
        if let Some(w) = docker_types_warning(&report) {
            eprintln!("ferry: warning: {w}");
        }
    }
    Ok(())
}

/// An OCI layout that received Docker media types is valid, but skopeo and umoci read only OCI
/// types from a layout: say so rather than leave the user to find out.
fn docker_types_warning(r: &CopyReport) -> Option<String> {
    r.media_type
        .starts_with("application/vnd.docker.")
        .then(|| {
            format!(
                "{} now holds Docker media types ({}); skopeo and umoci read only OCI media \
                 types from a layout (a registry destination keeps either; --format oci \
                 converts, with a new digest)",
                r.destination, r.media_type
            )
        })
}

fn print_report(r: &CopyReport, json: bool, quiet: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(r).expect("report serialises")
        );
        return;
    }
    if quiet {
        return;
    }
    let what = match r.selection {
        Selection::Unchanged => "",
        Selection::SingleManifest => {
            " (one platform selected: single-platform manifest, digest kept)"
        }
        Selection::SubsetIndex => " (platform subset: NEW index digest)",
    };
    if r.unchanged {
        println!(
            "{} already at {} {}: nothing to do",
            r.destination,
            short(&r.destination_digest),
            r.tags.join(",")
        );
        return;
    }
    println!("copied {} -> {}{what}", r.source, r.destination);
    println!("  source digest:      {}", r.source_digest);
    println!("  destination digest: {}", r.destination_digest);
    if let Some(f) = r.converted_to {
        println!(
            "  converted to {}: manifests rewritten, so the destination digest is NEW (blobs unchanged)",
            match f {
                Format::Oci => "OCI",
                Format::V2s2 => "Docker schema 2",
            }
        );
    }
    if !r.tags.is_empty() {
        println!("  tags:               {}", r.tags.join(", "));
    }
    let b = &r.blobs;
    println!(
        "  blobs: {} copied ({}), {} mounted, {} already present; manifests: {} pushed, {} present; {:.2}s",
        b.copied,
        human_bytes(b.bytes_copied),
        b.mounted,
        b.skipped,
        r.manifests_pushed,
        r.manifests_present,
        r.seconds
    );
}
