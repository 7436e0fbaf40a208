//! `ferry promote SRC DST:TAG[,TAG...]` and `ferry promote --plan FILE`: release tags for one
//! image or many, guarded (expected digest, existing tags), all-or-nothing by default.

mod bars;
mod charts;
mod open;
mod output;

use std::path::PathBuf;

use clap::Args;

use ferry::copy::RegistryLimits;
use ferry::promote::{Overwrite, Plan, PlannedImage, PromoteOptions, Promoter, Vars};
use ferry::reference::{ImageRef, Registry, Tag};
use ferry::{Digest, Error, Result};

use super::endpoints::TransportArgs;
use super::settings::{parse_ref, parse_tag, tag_names, Stores, TransportSettings};
pub use charts::ChartServerArgs;
use ferry::error::Side;
pub use open::split_tags;
use open::Opener;

const EXAMPLES: &str = "\
Examples:
  ferry promote ci.example.com/team/api:feature-x-3f2a1c prod.example.com/team/api:1.4.2,1.4,latest
  ferry promote --expect-digest sha256:3f2a... ci.example.com/team/api:feature-x prod.example.com/team/api:1.4.2
  ferry promote --plan release.yaml --var version=1.4.2 --dry-run
  ferry promote --plan release.yaml --var version=1.4.2 --json

Routes: same repository: tags only (no blob requests); same registry: blobs mounted (no blob
bytes move); other registry: copied, each blob once per plan, then mounted.
Guards: a tag that exists on another digest is not moved without --force (or an `overwrite`
rule in the plan): exit 7, nothing written. --expect-digest / `expect-digest:` refuse a source
that is not that digest: exit 6, nothing written.
Plans are all-or-nothing: every image is made present before any tag is written (--no-atomic
tags each image as soon as it is ready).

Plan file (YAML or JSON):
  vars: {version: 1.4.2}                 # --var NAME=VALUE overrides
  defaults:
    registry: prod.example.com           # destination registry
    prefix: team                         # destination repository prefix
    tags: [\"{version}\", \"{major}.{minor}\", latest]
    overwrite: [latest, \"{major}.{minor}\"]   # may move without --force (\"*\": any)
  limits: {prod.example.com: 8}          # blob transfers in flight per registry
  images:
    - source: ci.example.com/team/api:feature-x-3f2a1c
      destination: api                   # default: the source repository
      expect-digest: sha256:...
    - source: ci.example.com/team/web:feature-x-3f2a1c
      tags: [\"{version}\"]
  charts:                                # checked with the images, pushed after every tag
    - path: deploy/chart                 # a directory or a .tgz, relative to the plan
      destination: https://charts.example.com/team   # ChartMuseum, or oci://REGISTRY/PATH
      version: \"{version}\"
      app-version: \"{version}\"
A chart whose version exists with other bytes is refused (exit 7) before any tag is written.";

/// Flags shared by `promote` and `tag`.
#[derive(Args, Clone)]
pub struct GuardArgs {
    /// Refuse (exit 6, nothing written) unless the source resolves to this digest.
    #[arg(long, value_name = "sha256:HEX")]
    pub expect_digest: Option<Digest>,
    /// Move existing tags that point at another digest (otherwise refused, exit 7).
    #[arg(long)]
    pub force: bool,
    /// Print what would happen (blobs to copy/mount/skip, tags to create/leave/move/refuse);
    /// write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan or the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the destination's manifest digest to this file (atomically) once tagged; one
    /// image only (not with --plan), not written by --dry-run.
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
}

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct PromoteArgs {
    /// Source image (tag or digest).
    #[arg(required_unless_present = "plan", conflicts_with = "plan")]
    pub source: Option<String>,
    /// Destination repository and tags: REPO:TAG[,TAG...].
    #[arg(required_unless_present = "plan", conflicts_with = "plan")]
    pub destination: Option<String>,
    /// Another tag for the destination (repeatable).
    #[arg(long = "tag", value_name = "TAG", conflicts_with = "plan", value_parser = parse_tag)]
    pub tags: Vec<Tag>,
    /// Promote every image of a plan file (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// A template value for the plan, e.g. --var version=1.4.2 (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", requires = "plan")]
    pub vars: Vec<String>,
    /// Tag each image as soon as it is ready, instead of after every image is ready.
    #[arg(long)]
    pub no_atomic: bool,
    #[command(flatten)]
    pub guard: GuardArgs,
    /// Blob transfers in flight per image.
    #[arg(short, long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Images worked on at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub images: usize,
    /// Blob transfers in flight per registry, over all images (0: no limit). 16 keeps one
    /// registry's ingest busy; each transfer holds up to ~0.7 MiB of buffers (a 500-image
    /// plan peaks at ~30 MiB with 16, ~36 MiB with 32, no faster).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub registry_jobs: usize,
    /// A limit for one registry, HOST[:PORT]=N (repeatable; overrides the plan's `limits`).
    #[arg(long = "registry-limit", value_name = "HOST=N")]
    pub registry_limits: Vec<String>,
    #[command(flatten)]
    pub referrers: super::referrers::ReferrerArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
    #[command(flatten)]
    pub chart_servers: ChartServerArgs,
}

pub async fn run(args: PromoteArgs) -> Result<()> {
    let plan = match &args.plan {
        Some(path) => {
            if args.guard.digestfile.is_some() {
                return Err(Error::Usage {
                    arg: "--digestfile".into(),
                    reason: "holds one image's digest: not with --plan".into(),
                });
            }
            if args.guard.expect_digest.is_some() {
                return Err(Error::Usage {
                    arg: "--expect-digest".into(),
                    reason: "applies to one image; in a plan, use `expect-digest:` per image"
                        .into(),
                });
            }
            Plan::load(path, &cli_vars(&args.vars)?)?
        }
        None => single(&args)?,
    };
    let mut limits = RegistryLimits::new(args.registry_jobs);
    for (host, n) in plan
        .limits
        .iter()
        .cloned()
        .chain(parse_limits(&args.registry_limits)?)
    {
        limits.set(Registry::new(&host).api_host(), n);
    }
    let options = PromoteOptions {
        atomic: !args.no_atomic,
        force: args.guard.force,
        images: args.images.max(1),
        jobs: args.jobs.max(1),
        // On by default for promote: a release keeps its signatures and SBOMs.
        referrers: args.referrers.options(true),
    };
    // An explicit flag wins over the plan's `referrers:` keys.
    let mut plan = plan;
    if args.referrers.explicit().is_some() {
        for image in &mut plan.images {
            image.referrers = None;
        }
    }
    let endpoints = Endpoints {
        transport: &args.transport,
        chart_servers: &args.chart_servers,
        one_side: None,
    };
    execute(&plan, options, limits, &args.guard, endpoints).await
}

/// How a run reaches its registries and chart servers.
pub struct Endpoints<'a> {
    pub transport: &'a TransportArgs,
    pub chart_servers: &'a ChartServerArgs,
    /// `ferry tag`: one repository, through the destination side's client.
    pub one_side: Option<Side>,
}

/// Packages the plan's charts, opens the stores, runs (or dry-runs) the plan, prints the
/// report, returns the errors.
pub async fn execute(
    plan: &Plan,
    options: PromoteOptions,
    limits: RegistryLimits,
    guard: &GuardArgs,
    endpoints: Endpoints<'_>,
) -> Result<()> {
    let stores = Stores::new(
        TransportSettings::resolve(endpoints.transport)?,
        endpoints.one_side,
        guard.dry_run,
    );
    execute_in(&stores, plan, options, limits, guard, endpoints).await
}

/// [`execute`] with stores already opened (`ferry import` lists its archive through them
/// first, so the archive is read once).
pub async fn execute_in(
    stores: &Stores,
    plan: &Plan,
    options: PromoteOptions,
    limits: RegistryLimits,
    guard: &GuardArgs,
    endpoints: Endpoints<'_>,
) -> Result<()> {
    let loaded = charts::load(&plan.charts)?;
    let opener = Opener::new(stores);
    let jobs = plan
        .images
        .iter()
        .map(|p| opener.job(p))
        .collect::<Result<Vec<_>>>()?;
    let chart_jobs = charts::open(loaded, stores, endpoints.chart_servers, endpoints.transport)?;
    let quiet = guard.quiet || guard.json;
    let reporter = bars::plan_reporter(quiet, jobs.len(), chart_jobs.len());
    let ledger = super::settings::run_ledger(endpoints.transport);
    let promoter = Promoter::new(options, limits, reporter.clone()).with_ledger(ledger.clone());
    let mut report = if guard.dry_run {
        promoter.dry_run_plan(&jobs, &chart_jobs).await
    } else {
        promoter.run_plan(&jobs, &chart_jobs).await
    };
    super::settings::save_ledger(&ledger);
    reporter.clear();
    if guard.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else if !guard.quiet {
        output::print(&report);
    }
    Error::all(report.take_errors())?;
    write_digestfile(guard, &report)
}

/// `--digestfile`: the digest of the one image promoted (nothing on a dry run).
fn write_digestfile(guard: &GuardArgs, report: &ferry::promote::PlanReport) -> Result<()> {
    let (Some(path), false) = (&guard.digestfile, guard.dry_run) else {
        return Ok(());
    };
    match report.images.as_slice() {
        [image] => match &image.digest {
            Some(d) => super::digestfile::write(path, d),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The one-image plan of `ferry promote SRC DST:TAG[,TAG...]`.
fn single(args: &PromoteArgs) -> Result<Plan> {
    let (Some(src), Some(dst)) = (&args.source, &args.destination) else {
        return Err(Error::Usage {
            arg: "promote".into(),
            reason: "give SOURCE and DESTINATION, or --plan FILE".into(),
        });
    };
    let source = parse_ref(src)?;
    let (destination, mut tags) = split_tags(dst)?;
    for t in tag_names(&args.tags) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    one_image(source, destination, tags, &args.guard)
}

/// A plan of one image, labelled by its source.
pub fn one_image(
    source: ImageRef,
    destination: ImageRef,
    tags: Vec<String>,
    guard: &GuardArgs,
) -> Result<Plan> {
    if tags.is_empty() {
        return Err(Error::Usage {
            arg: destination.to_string(),
            reason: "no tag: write DESTINATION:TAG[,TAG...] or add --tag".into(),
        });
    }
    Ok(Plan {
        images: vec![PlannedImage {
            label: source.to_string(),
            source,
            destination,
            tags,
            expect_digest: guard.expect_digest.clone(),
            overwrite: Overwrite::Never,
            referrers: None,
        }],
        charts: Vec::new(),
        limits: Vec::new(),
    })
}

pub fn cli_vars(vars: &[String]) -> Result<Vars> {
    let mut v = Vars::new();
    for s in vars {
        let (name, value) = Vars::parse_assignment(s).map_err(|reason| Error::Usage {
            arg: "--var".into(),
            reason,
        })?;
        v.set(&name, &value);
    }
    Ok(v)
}

pub fn parse_limits(limits: &[String]) -> Result<Vec<(String, usize)>> {
    limits
        .iter()
        .map(|s| {
            let bad = || Error::Usage {
                arg: "--registry-limit".into(),
                reason: format!("{s:?}: expected HOST[:PORT]=N"),
            };
            let (host, n) = s.rsplit_once('=').ok_or_else(bad)?;
            Ok((host.to_string(), n.parse().map_err(|_| bad())?))
        })
        .collect()
}
