//! `ferry export SRC... --to oci-archive:FILE|oci:DIR|docker-archive:FILE`: many images into
//! one archive or layout, each blob stored once, every platform by default, each image named by
//! its repository path and tag so `ferry import` can put it back under a prefix.

use std::path::PathBuf;

use clap::Args;
use futures::StreamExt;
use serde::Serialize;

use ferry::copy::{BlobCounts, Copier, CopyOptions, CopyReport, Prepared};
use ferry::error::Side;
use ferry::manifest::Platform;
use ferry::reference::{ImageRef, LayoutKind};
use ferry::{Error, Result};

use super::endpoints::TransportArgs;
use super::progress::{human_bytes, reporter, short, Verbosity};
use super::settings::{docker_name, parse_ref, writes_stdout, Stores, TransportSettings};

const EXAMPLES: &str = "\
Examples:
  ferry export registry.example.com/team/api:1.4 registry.example.com/team/web:1.4 --to oci-archive:mirror.tar
  ferry export --from-file images.txt --to oci:./mirror          # a layout directory
  ferry export --plan release.yaml --var version=1.4.2 --to oci-archive:release.tar
  ferry export 127.0.0.1:5000/app:1 --to docker-archive:app.tar   # for docker load
  ferry export 127.0.0.1:5000/app:1 --to oci-archive:- | ssh diode 'cat > mirror.tar'

Each image is stored under its repository path and tag (team/api:1.4 as the ref name of an
oci-archive or layout; registry/team/api:1.4 in a docker-archive's RepoTags), every platform
by default, each blob once however many images share it. An existing layout or oci-archive
keeps what it holds: blobs already present (verified when they were written) are not copied
again. An oci-archive or docker-archive is written (temp file + rename) only when every image
was exported; `-` writes it to standard output (the report then goes to stderr; the tar is
first written to a temp file under $TMPDIR, as blobs arrive out of order). A
docker-archive holds one platform per image (the host's, or --platform) and uncompressed
layers. --from-file reads one reference per line (# comments and blank lines skipped); --plan
takes the source image of each entry of a promotion plan.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct ExportArgs {
    /// Images to export (tags; a digest may follow the tag).
    pub sources: Vec<String>,
    /// The archive or layout: oci-archive:FILE, oci:DIR or docker-archive:FILE.
    #[arg(long, value_name = "DEST")]
    pub to: String,
    /// Read more image references from this file, one per line.
    #[arg(long, value_name = "LIST")]
    pub from_file: Option<PathBuf>,
    /// Export the source images of a promotion plan (see ferry promote --help).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// A template value for the plan, e.g. --var version=1.4.2 (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", requires = "plan")]
    pub vars: Vec<String>,
    /// Export only this platform of multi-platform images, OS/ARCH[/VARIANT] (repeatable).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]")]
    pub platforms: Vec<Platform>,
    /// Blob transfers in flight per image.
    #[arg(short, long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Images worked on at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub images: usize,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub referrers: super::referrers::ReferrerArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
}

#[derive(Serialize)]
struct ExportReport {
    destination: String,
    images: Vec<CopyReport>,
    blobs: BlobCounts,
}

/// The name an image gets in the archive.
fn name_in(src: &ImageRef, kind: LayoutKind) -> Result<String> {
    match src {
        ImageRef::Registry(r) => {
            let Some(tag) = &r.tag else {
                return Err(Error::Usage {
                    arg: src.to_string(),
                    reason: "export names each image by its tag: give REPO:TAG".into(),
                });
            };
            Ok(match kind {
                LayoutKind::DockerArchive => format!("{}:{tag}", docker_name(r)),
                _ => format!("{}:{tag}", r.repository),
            })
        }
        ImageRef::Layout(l) => l.tag.clone().ok_or_else(|| Error::Usage {
            arg: src.to_string(),
            reason: "export names each image by its tag: give a :TAG".into(),
        }),
    }
}

fn read_list(path: &PathBuf) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Usage {
        arg: format!("--from-file {}", path.display()),
        reason: e.to_string(),
    })?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

pub async fn run(args: ExportArgs) -> Result<()> {
    let mut sources = args.sources.clone();
    if let Some(p) = &args.from_file {
        sources.extend(read_list(p)?);
    }
    if let Some(p) = &args.plan {
        let plan = ferry::promote::Plan::load(p, &super::promote::cli_vars(&args.vars)?)?;
        sources.extend(plan.images.iter().map(|i| i.source.to_string()));
    }
    if sources.is_empty() {
        return Err(Error::Usage {
            arg: "export".into(),
            reason: "no image: give SRC..., --from-file LIST or --plan FILE".into(),
        });
    }
    let dst_ref = parse_ref(&args.to)?;
    let kind = match &dst_ref {
        ImageRef::Layout(l) if l.tag.is_none() && l.digest.is_none() => l.kind,
        _ => {
            return Err(Error::Usage {
                arg: args.to.clone(),
                reason: "--to is oci-archive:FILE, oci:DIR or docker-archive:FILE (no tag: each image keeps its name)".into(),
            })
        }
    };
    let mut named = Vec::new();
    for s in &sources {
        let r = parse_ref(s)?;
        let name = name_in(&r, kind)?;
        if let Some((_, other)) = named.iter().find(|(n, _): &&(String, ImageRef)| n == &name) {
            return Err(Error::Usage {
                arg: s.clone(),
                reason: format!("{other} is exported under the same name {name}"),
            });
        }
        named.push((name, r));
    }
    let stores = Stores::new(TransportSettings::resolve(&args.transport)?, None, false)
        .with_archive_output();
    let (dst, _) = stores.open(&dst_ref, Side::Destination)?;
    let to_stdout = writes_stdout(&dst_ref);
    let quiet = args.quiet || args.json || to_stdout;
    let copier = Copier::new(reporter(if quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    }));
    let opts = CopyOptions {
        platforms: args.platforms.clone(),
        jobs: args.jobs.max(1),
        // Signatures and SBOMs cross the air gap with their images, as a promotion takes them.
        referrers: args.referrers.options(true),
        format: None,
    };
    // Every image is made present first (in parallel), then tagged in the order given: the
    // archive's index lists them in that order, and a failure leaves no tag.
    let results: Vec<(usize, Result<Prepared>)> = futures::stream::iter(named.iter().enumerate())
        .map(|(i, (name, r))| {
            let (stores, copier, opts, dst) = (&stores, &copier, &opts, dst.clone());
            async move {
                let one = async {
                    let (src, target) = stores.open(r, Side::Source)?;
                    copier
                        .prepare(
                            src.as_ref(),
                            &target,
                            dst.as_ref(),
                            std::slice::from_ref(name),
                            opts,
                        )
                        .await
                };
                (i, one.await)
            }
        })
        .buffer_unordered(args.images.max(1))
        .collect()
        .await;
    let mut results = results;
    results.sort_by_key(|(i, _)| *i);
    let mut prepared = Vec::new();
    let mut errors = Vec::new();
    for (_, r) in results {
        match r {
            Ok(p) => prepared.push(p),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        // Nothing is written: the archive (if any) stays as it was.
        return Err(if errors.len() == 1 {
            errors.remove(0)
        } else {
            Error::Many(errors)
        });
    }
    let mut reports = Vec::new();
    for (p, (name, _)) in prepared.into_iter().zip(&named) {
        reports.push(
            copier
                .tag(dst.as_ref(), p, std::slice::from_ref(name))
                .await?,
        );
    }
    stores.finish().await?;
    let mut total = BlobCounts::default();
    for r in &reports {
        let b = &r.blobs;
        total.copied += b.copied;
        total.skipped += b.skipped;
        total.mounted += b.mounted;
        total.bytes_copied += b.bytes_copied;
        total.bytes_skipped += b.bytes_skipped;
        total.bytes_avoided += b.bytes_avoided;
    }
    let report = ExportReport {
        destination: dst.location(),
        images: reports,
        blobs: total,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report).expect("report serialises");
        if to_stdout {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    } else if !args.quiet {
        let mut lines = Vec::new();
        for (r, (name, _)) in report.images.iter().zip(&named) {
            lines.push(format!(
                "exported {} -> {name} {} ({} blobs copied, {}; {} present)",
                r.source,
                short(&r.destination_digest),
                r.blobs.copied,
                human_bytes(r.blobs.bytes_copied),
                r.blobs.skipped
            ));
        }
        lines.push(format!(
            "{} image(s) in {}: {} blobs copied ({}), {} already present",
            report.images.len(),
            report.destination,
            total.copied,
            human_bytes(total.bytes_copied),
            total.skipped
        ));
        for l in lines {
            if to_stdout {
                eprintln!("{l}");
            } else {
                println!("{l}");
            }
        }
    }
    Ok(())
}
