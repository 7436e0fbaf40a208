//! The charts of a plan on the command line: the ChartMuseum flags, every chart packaged (or
//! read) before any request, each destination opened (`oci://` through the one store cache).

use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;

use ferry::chart::Chart;
use ferry::promote::{ChartJob, PlannedChart};
use ferry::Result;

use crate::cli::chart::{museum_options, open_target, source_date_epoch};
use crate::cli::endpoints::TransportArgs;
use crate::cli::settings::Stores;

/// How to reach the ChartMuseum servers of a plan's `charts:` (`oci://` charts use the
/// destination registry flags, e.g. --dest-creds).
#[derive(Args, Clone, Default)]
pub struct ChartServerArgs {
    /// ChartMuseum credentials USER:PASS for the plan's charts; else HELM_REPO_USERNAME and
    /// HELM_REPO_PASSWORD, else the bearer token HELM_REPO_ACCESS_TOKEN.
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "FERRY_CHART_CREDS",
        hide_env_values = true
    )]
    pub chart_creds: Option<String>,
    /// Client certificate (PEM) for ChartMuseum servers that require mutual TLS.
    #[arg(long, value_name = "PATH", requires = "chart_key_file")]
    pub chart_cert_file: Option<PathBuf>,
    /// Key (PEM) of --chart-cert-file.
    #[arg(long, value_name = "PATH", requires = "chart_cert_file")]
    pub chart_key_file: Option<PathBuf>,
}

/// A plan chart, packaged (or read) with its provenance.
pub struct Loaded {
    planned: PlannedChart,
    chart: Chart,
    prov: Option<Bytes>,
}

/// Packages or reads every chart of the plan: no request is sent yet, and a chart Helm would
/// refuse is a plan problem with its line.
pub fn load(charts: &[PlannedChart]) -> Result<Vec<Loaded>> {
    if charts.is_empty() {
        return Ok(Vec::new());
    }
    let mtime = source_date_epoch()?;
    charts
        .iter()
        .map(|p| {
            let (chart, prov) = p.load(mtime)?;
            Ok(Loaded {
                planned: p.clone(),
                chart,
                prov,
            })
        })
        .collect()
}

/// Opens each chart's destination.
pub fn open(
    loaded: Vec<Loaded>,
    stores: &Stores,
    args: &ChartServerArgs,
    transport: &TransportArgs,
) -> Result<Vec<ChartJob>> {
    let context_path = std::env::var("HELM_REPO_CONTEXT_PATH")
        .ok()
        .filter(|c| !c.is_empty());
    let client_cert = args
        .chart_cert_file
        .clone()
        .zip(args.chart_key_file.clone());
    loaded
        .into_iter()
        .map(|l| {
            let museum = museum_options(
                args.chart_creds.as_deref(),
                client_cert.clone(),
                context_path.clone(),
                30,
                transport,
            )?;
            let p = &l.planned;
            let target = open_target(&p.destination, &l.chart, &p.path, stores, museum)?;
            Ok(ChartJob {
                label: p.label.clone(),
                source: p.path.display().to_string(),
                chart: l.chart,
                prov: l.prov,
                target,
            })
        })
        .collect()
}
