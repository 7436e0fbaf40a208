//! `ferry sync CONFIG.yaml`: mirror many repositories from a config file, incrementally, shardable
//! across processes (`--shard K/N`, `--shard auto` in a Kubernetes Indexed Job).

mod output;
mod progress;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use clap::Args;

use ferry::copy::RegistryLimits;
use ferry::error::Side;
use ferry::reference::{ImageRef, Registry};
use ferry::store::registry::CATALOG_PAGE;
use ferry::store::Store;
use ferry::sync::{Endpoints, RegistryRequests, Shard, SyncOptions, SyncPlan, Syncer};
use ferry::{Error, Result};

use super::endpoints::TransportArgs;
use super::settings::{Stores, TransportSettings};

const EXAMPLES: &str = "\
Examples:
  ferry sync mirror.yaml --dry-run
  ferry sync mirror.yaml --json > report.json
  ferry sync mirror.yaml --shard 2/4                 # the third of four processes
  JOB_COMPLETION_INDEX=0 ferry sync mirror.yaml --shard auto --shard-count 4

Config (YAML or JSON):
  limits: {mirror.internal: 8}            # blob transfers in flight per registry
  sync:
    - source: registry.example.com/team   # registry[/namespace]
      repositories: [api, web]            # or [\"*\"], [\"web-*\"]: the catalog, matched
      destination: mirror.internal/team   # registry[/prefix]; or oci:DIR, oci-archive:DIR
      mapping: {web: frontend}            # another path below the prefix
      tags:                               # no tags: every tag; a list: exactly those
        allow: ['^1\\.']                   # regexes; a tag must match one
        deny: ['-rc']                     # and none of these
        semver: '>=1.2 <2'                # tags that read as versions in the range
        latest: 5                         # then only the newest 5 versions
        digests: [sha256:...]             # manifests copied by digest, untagged
      platforms: [linux/amd64]            # default: all (digests preserved)
    - images: [registry.example.com/base/alpine:3.20]
      destination: mirror.internal/base

A tag whose destination digest equals the source's is skipped after one HEAD on each side.
Failures do not stop the run (--keep-going, the default): they are listed at the end and the
exit code is non-zero. --fail-fast stops starting work after the first.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct SyncArgs {
    /// The sync config (YAML or JSON).
    pub config: PathBuf,
    /// List per repository what would be copied, skipped and left out (with bytes); write
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Copy everything that can be copied, then report the failures (the default).
    #[arg(long, conflicts_with = "fail_fast")]
    pub keep_going: bool,
    /// Stop starting work after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Work on shard K of N (K from 0): a stable split by source repository. `auto` takes K from
    /// JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) and N from --shard-count.
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<String>,
    /// The number of shards for `--shard auto` (the Job's completions).
    #[arg(long, value_name = "N", env = "FERRY_SHARD_COUNT")]
    pub shard_count: Option<u64>,
    /// Repositories worked on at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub repositories: usize,
    /// Tags checked and images copied at once per repository.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub images: usize,
    /// Blob transfers in flight per image.
    #[arg(short, long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Blob transfers in flight per registry, over all repositories (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub registry_jobs: usize,
    /// A limit for one registry, HOST[:PORT]=N (repeatable; overrides the config's `limits`).
    #[arg(long = "registry-limit", value_name = "HOST=N")]
    pub registry_limits: Vec<String>,
    #[command(flatten)]
    pub referrers: super::referrers::ReferrerArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// The CLI's store cache, as the sync engine reaches it.
struct CliEndpoints {
    stores: Stores,
    dry_run: bool,
}

#[async_trait]
impl Endpoints for CliEndpoints {
    fn open(&self, r: &ImageRef, side: Side) -> Result<Arc<dyn Store>> {
        // A destination below the config's directory: its parents are made on the way.
        if let (ImageRef::Layout(l), Side::Destination, false) = (r, side, self.dry_run) {
            if let Some(parent) = l.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| Error::Output {
                    path: parent.to_path_buf(),
                    reason: format!("cannot create the destination directory: {e}"),
                })?;
            }
        }
        self.stores.open(r, side).map(|(s, _)| s)
    }

    async fn catalog(&self, registry: &str) -> Result<Vec<String>> {
        let client = self.stores.client(registry, Side::Source)?;
        client
            .catalog(CATALOG_PAGE)
            .await
            .map_err(|e| e.on(Side::Source))
    }

    fn requests(&self) -> Vec<RegistryRequests> {
        let mut out: Vec<RegistryRequests> = self
            .stores
            .clients()
            .into_iter()
            .map(|(side, name, c)| RegistryRequests::new(&name, side, &c.stats()))
            .collect();
        out.sort_by(|a, b| (&a.registry, a.side as u8).cmp(&(&b.registry, b.side as u8)));
        out
    }
}

pub async fn run(args: SyncArgs) -> Result<()> {
    let plan = SyncPlan::load(&args.config)?;
    let shard = shard(&args)?;
    let mut limits = RegistryLimits::new(args.registry_jobs);
    let cli_limits = super::promote::parse_limits(&args.registry_limits)?;
    for (host, n) in plan.limits.iter().cloned().chain(cli_limits) {
        limits.set(Registry::new(&host).api_host(), n);
    }
    let options = SyncOptions {
        dry_run: args.dry_run,
        fail_fast: args.fail_fast,
        shard,
        repositories: args.repositories.max(1),
        images: args.images.max(1),
        jobs: args.jobs.max(1),
        // On by default, as for promote; a flag overrides every entry's `referrers:`.
        referrers: args.referrers.options(true),
        referrers_override: args.referrers.explicit().is_some(),
    };
    let settings = TransportSettings::resolve(&args.transport)?;
    let ends = CliEndpoints {
        stores: Stores::new(settings, None, args.dry_run).with_archive_output(),
        dry_run: args.dry_run,
    };
    let quiet = args.quiet || args.json;
    let reporter = progress::reporter(quiet);
    let ledger = super::settings::run_ledger(&args.transport);
    let syncer = Syncer::new(options, limits, reporter.clone()).with_ledger(ledger.clone());
    let mut report = syncer.run(&plan, &ends).await;
    super::settings::save_ledger(&ledger);
    reporter.clear();
    if !args.dry_run {
        ends.stores.finish().await?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    } else if !args.quiet {
        output::print(&report);
    }
    Error::all(report.take_errors())
}

/// `--shard K/N`, `--shard auto` (JOB_COMPLETION_INDEX and --shard-count), or everything.
fn shard(args: &SyncArgs) -> Result<Shard> {
    match args.shard.as_deref() {
        None => Ok(Shard::WHOLE),
        Some("auto") => {
            let index = std::env::var("JOB_COMPLETION_INDEX").ok();
            Shard::auto(index.as_deref(), args.shard_count)
        }
        Some(k_of_n) => Shard::parse(k_of_n),
    }
}
