//! `ferry copy SRC DST`: one image (all platforms by default) with its tags.

use clap::Args;

use std::sync::Arc;

use ferry::convert::Format;
use ferry::copy::{BlobLedger, Copier, CopyOptions, CopyReport, Selection};
use ferry::error::Side;
use ferry::manifest::Platform;
use ferry::reference::{ImageRef, Tag};
use ferry::store::archive::Compress;
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
  ferry copy docker-archive:./saved.tar:app:1 127.0.0.1:5000/app:1 # docker save -> registry
  ferry copy 127.0.0.1:5000/app:1 docker-archive:./app.tar:app:1  # registry -> docker load
  ferry copy oci-archive:-:1 127.0.0.1:5000/app:1 < app.tar      # standard input
  ferry copy --platform linux/amd64 --platform linux/arm64 src.io/app:1 dst.io/app:1

References: [registry[:port]/]repo[:tag][@sha256:...] (docker:// prefix accepted; unqualified
names are Docker Hub), oci:PATH[:TAG] for an OCI image layout directory,
oci-archive:FILE[:REF] for a tar of one (plain, gzip'd or zstd'd; REF may be a tag or a
repo/path:tag ref name), docker-archive:FILE[:NAME[:TAG]|:@N] for the docker save format. FILE
alone reads its only image. A destination without tag is tagged `latest`; one with only a
digest is pushed by digest, untagged.

Archives: a source archive is indexed in one pass over its tar headers, every entry checked
(no links leaving the archive, devices, `..` or absolute names), and read in place: each
manifest and blob is verified against its digest as it is read. FILE `-` is standard input; it,
and a gzip/zstd-wrapped archive, are spooled (decompressed) to a temp file under $TMPDIR
first, since a tar cannot be read out of order from a pipe. A destination oci-archive is
written in place: each blob streams into its slot of a temp file beside FILE (images FILE
already holds are kept), index.json goes last, and the file is renamed over FILE only when the
copy succeeded; for `-` that temp file is under $TMPDIR and copied to standard output at the
end (a pipe cannot be written out of order). A docker-archive is built in a spool under
$TMPDIR (its layers are decompressed, so their sizes are unknown until then) and written the
same way.

Digests: oci-archive keeps every digest. A docker-archive holds uncompressed layers: into a
registry they are compressed (--dest-compress, gzip by default), so layer and manifest digests
are NEW (ferry says so); into a layout or archive they stay uncompressed (digests kept when the
archive carries its own OCI manifest, Docker 25+). Writing a docker-archive stores layers
uncompressed and one platform per image (the host's, or --platform): its digests are docker's.

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
    /// How a docker-archive's uncompressed layers are stored at the destination: gzip, zstd
    /// or none (default: gzip into a registry, none into a layout or archive).
    #[arg(long, value_name = "gzip|zstd|none")]
    pub dest_compress: Option<Compress>,
    #[command(flatten)]
    pub referrers: super::referrers::ReferrerArgs,
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
    let ledger = super::settings::run_ledger(&args.transport);
    let result = copy_with(args, ledger.clone()).await;
    super::settings::save_ledger(&ledger);
    result
}

async fn copy_with(args: &CopyArgs, ledger: Arc<BlobLedger>) -> Result<()> {
    let src_ref = parse_ref(&args.source)?;
    let dst_ref = parse_ref(&args.destination)?;
    let compress = args.dest_compress.unwrap_or(match dst_ref {
        ImageRef::Registry(_) => Compress::Gzip,
        ImageRef::Layout(_) => Compress::None,
    });
    let stores = Stores::new(TransportSettings::resolve(&args.transport)?, None, false)
        .with_archive_output()
        .with_compress(compress);
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
    let mut copier =
        Copier::new(reporter(verbosity)).with_cancel(super::interrupt::token().clone());
    copier.ledger = ledger;
    let opts = CopyOptions {
        platforms: args.platforms.clone(),
        jobs: args.jobs.max(1),
        // Opt-in for copy, as peers do (promote copies them by default).
        referrers: args.referrers.options(false),
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
    // A tar on standard output leaves stdout to the tar: the report goes to stderr.
    let to_stdout = super::settings::writes_stdout(&dst_ref);
    if to_stdout && !args.quiet {
        eprintln!("{}", report_text(&report));
    } else {
        print_report(&report, args.json, args.quiet);
    }
    if !args.quiet {
        for c in stores.conversions() {
            eprintln!("ferry: note: {}", super::settings::conversion_note(&c));
        }
    }
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
    println!("{}", report_text(r));
}

fn report_text(r: &CopyReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let what = match r.selection {
        Selection::Unchanged => "",
        Selection::SingleManifest => {
            " (one platform selected: single-platform manifest, digest kept)"
        }
        Selection::SubsetIndex => " (platform subset: NEW index digest)",
    };
    if r.unchanged {
        return format!(
            "{} already at {} {}: nothing to do",
            r.destination,
            short(&r.destination_digest),
            r.tags.join(",")
        );
    }
    let _ = writeln!(out, "copied {} -> {}{what}", r.source, r.destination);
    let _ = writeln!(out, "  source digest:      {}", r.source_digest);
    let _ = writeln!(out, "  destination digest: {}", r.destination_digest);
    if let Some(f) = r.converted_to {
        let _ = writeln!(
            out,
            "  converted to {}: manifests rewritten, so the destination digest is NEW (blobs unchanged)",
            match f {
                Format::Oci => "OCI",
                Format::V2s2 => "Docker schema 2",
            }
        );
    }
    if !r.tags.is_empty() {
        let _ = writeln!(out, "  tags:               {}", r.tags.join(", "));
    }
    let b = &r.blobs;
    let _ = write!(
        out,
        "  blobs: {} copied ({}), {} mounted, {} already present; manifests: {} pushed, {} present; {:.2}s",
        b.copied,
        human_bytes(b.bytes_copied),
        b.mounted,
        b.skipped,
        r.manifests_pushed,
        r.manifests_present,
        r.seconds
    );
    if !r.referrers.is_empty() {
        let moved = r.referrers.iter().filter(|f| !f.present).count();
        let _ = write!(
            out,
            "\n  referrers: {} found, {moved} copied; referrer tags written: {}",
            r.referrers.len(),
            if r.referrer_tags.is_empty() {
                "none".to_string()
            } else {
                r.referrer_tags.join(", ")
            }
        );
    }
    out
}
