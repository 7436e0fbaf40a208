//! `ferry chart package DIR` and `ferry chart push CHART DEST`: Helm charts without Helm, to an
//! OCI registry (`oci://`) or a ChartMuseum-API server (`https://`), guarded like tags.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use ferry::chart::museum::{MuseumAuth, MuseumClient, MuseumOptions};
use ferry::chart::{
    oci, Chart, ChartError, ChartTarget, PackageOptions, PushOptions, PushOutcome, PushReport,
};
use ferry::reference::ImageRef;
use ferry::{Error, Result};

use super::endpoints::TransportArgs;
use super::exit;
use super::settings::{Stores, TransportSettings};
use ferry::error::Side;

const EXAMPLES: &str = "\
Examples:
  ferry chart package ./deploy/chart --version 1.4.2 --app-version 1.4.2 -o dist/
  ferry chart push dist/api-1.4.2.tgz oci://prod.example.com/charts
  ferry chart push ./deploy/chart https://charts.example.com/team --version 1.4.2
  HELM_REPO_USERNAME=ci HELM_REPO_PASSWORD=... ferry chart push api-1.4.2.tgz https://charts.example.com

Destinations:
  oci://REGISTRY[/PATH]   the chart goes to PATH/<name>:<version> (+ written as _), in Helm's format
  https://HOST[/PATH]     ChartMuseum API (POST <contextPath>/api/<PATH>/charts); http:// on loopback
Guard: a version that exists with the same bytes is left alone (unchanged, exit 0); one that
exists with other bytes is refused (exit 7, nothing written) unless --force.";

#[derive(Args)]
pub struct ChartArgs {
    #[command(subcommand)]
    pub command: ChartCommand,
}

#[derive(Subcommand)]
pub enum ChartCommand {
    /// Package a chart directory into <name>-<version>.tgz, like `helm package`, byte-reproducibly.
    Package(PackageArgs),
    /// Publish a chart (.tgz or directory) to oci://REGISTRY/PATH or a ChartMuseum URL.
    #[command(after_help = EXAMPLES)]
    Push(Box<PushArgs>),
}

/// `--version` / `--app-version`, shared by package and push.
#[derive(Args, Clone)]
pub struct VersionArgs {
    /// Set `version` in the packaged Chart.yaml (chart directories only).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Set `appVersion` in the packaged Chart.yaml (chart directories only).
    #[arg(long, value_name = "VERSION")]
    pub app_version: Option<String>,
}

#[derive(Args)]
pub struct PackageArgs {
    /// The chart directory (with Chart.yaml).
    pub dir: PathBuf,
    /// Output directory, or a file name ending in .tgz (default: the current directory).
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PushArgs {
    /// A chart archive (.tgz, pushed byte for byte) or a chart directory (packaged first).
    pub chart: PathBuf,
    /// oci://REGISTRY[/PATH], https://HOST[/PATH] or http://127.0.0.1:PORT[/PATH].
    pub destination: String,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Provenance file to publish beside the chart (default: CHART.tgz.prov when it exists).
    #[arg(long, value_name = "FILE")]
    pub prov: Option<PathBuf>,
    /// Replace a version that exists with other bytes (ChartMuseum ?force; OCI: move the tag).
    #[arg(long)]
    pub force: bool,
    /// Say what would happen (created / unchanged / replaced / refused); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Credentials as USER:PASS (ChartMuseum Basic auth; for oci:// the same as --dest-creds).
    /// Else HELM_REPO_USERNAME/HELM_REPO_PASSWORD, else the bearer token HELM_REPO_ACCESS_TOKEN.
    #[arg(
        long,
        value_name = "USER:PASS",
        env = "FERRY_CHART_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<String>,
    /// Client certificate (PEM) for ChartMuseum servers that require mutual TLS.
    #[arg(long, value_name = "PATH", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// Key (PEM) of --cert-file.
    #[arg(long, value_name = "PATH", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// ChartMuseum context path (default: serverInfo.contextPath of the repository's index.yaml).
    #[arg(long, value_name = "PATH", env = "HELM_REPO_CONTEXT_PATH")]
    pub context_path: Option<String>,
    /// Timeout of each ChartMuseum request.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    #[command(flatten)]
    pub transport: TransportArgs,
}

pub async fn run(args: ChartArgs) -> Result<()> {
    match args.command {
        ChartCommand::Package(a) => package(a),
        ChartCommand::Push(a) => push(*a).await,
    }
}

/// Exit code of a chart error: refusals are the tag-guard code, bad input is usage.
pub fn exit_code(e: &ChartError) -> u8 {
    match e {
        ChartError::Refused { .. } => exit::REFUSED,
        ChartError::Unauthorized { .. } => exit::AUTH,
        ChartError::Invalid { .. }
        | ChartError::FileTooLarge { .. }
        | ChartError::ChartTooLarge { .. }
        | ChartError::Symlink { .. }
        | ChartError::Destination { .. }
        | ChartError::Settings(_) => exit::USAGE,
        _ => exit::FAILED,
    }
}

/// Entry mtimes of packaged charts: `SOURCE_DATE_EPOCH`, else 0.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.trim().parse().map_err(|_| Error::Usage {
            arg: "SOURCE_DATE_EPOCH".into(),
            reason: format!("{s:?} is not a number of seconds"),
        }),
        Err(_) => Ok(0),
    }
}

fn package_options(v: &VersionArgs) -> Result<PackageOptions> {
    Ok(PackageOptions {
        version: v.version.clone(),
        app_version: v.app_version.clone(),
        mtime: source_date_epoch()?,
    })
}

fn package(args: PackageArgs) -> Result<()> {
    let chart = ferry::chart::package_dir(&args.dir, &package_options(&args.versions)?)?;
    let out = match &args.output {
        Some(p) if p.extension().is_some_and(|e| e == "tgz") => p.clone(),
        Some(dir) => dir.join(chart.file_name()),
        None => PathBuf::from(chart.file_name()),
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ChartError::io(parent, e))?;
    }
    write_atomically(&out, &chart.archive)?;
    if args.json {
        let doc = serde_json::json!({
            "chart": chart.meta.name, "version": chart.meta.version,
            "file": out, "digest": chart.digest, "size": chart.archive.len(),
        });
        println!("{doc:#}");
    } else {
        println!(
            "packaged {} {} → {} ({}, {} bytes)",
            chart.meta.name,
            chart.meta.version,
            out.display(),
            chart.digest,
            chart.archive.len()
        );
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let io = |e: std::io::Error| Error::from(ChartError::io(path, e));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

async fn push(args: PushArgs) -> Result<()> {
    let chart = Chart::load(&args.chart, &package_options(&args.versions)?)?;
    let options = PushOptions {
        force: args.force,
        dry_run: args.dry_run,
        prov: read_prov(&args)?,
    };
    let mut transport = args.transport.clone();
    if transport.dest_creds.is_none() {
        transport.dest_creds = args.creds.clone();
    }
    let stores = Stores::new(TransportSettings::resolve(&transport)?, None, false);
    let client_cert = args.cert_file.clone().zip(args.key_file.clone());
    let museum = museum_options(
        args.creds.as_deref(),
        client_cert,
        args.context_path.clone(),
        args.timeout,
        &args.transport,
    )?;
    let target = open_target(&args.destination, &chart, &args.chart, &stores, museum)?;
    let report = target.push(&chart, &options).await?;
    print_report(&report, &args);
    match report.refusal() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Opens where a chart goes: `oci://` through the store cache (destination side), else a
/// ChartMuseum client. `path` is the chart's file or directory (an archive's mtime is the OCI
/// `created` annotation, as with Helm).
pub fn open_target(
    destination: &str,
    chart: &Chart,
    path: &Path,
    stores: &Stores,
    museum: MuseumOptions,
) -> Result<ChartTarget> {
    if !destination.starts_with("oci://") {
        return Ok(ChartTarget::Museum(MuseumClient::new(destination, museum)?));
    }
    let reference = oci::reference(destination, &chart.meta)?;
    let tag = reference.tag.clone().expect("a chart reference has a tag");
    let (store, _) = stores.open(&ImageRef::Registry(reference), Side::Destination)?;
    let created = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.modified().unwrap_or_else(|_| SystemTime::now()),
        _ => SystemTime::now(),
    };
    Ok(ChartTarget::oci(store, tag, created))
}

/// `--prov FILE`, else `CHART.prov` beside an archive.
fn read_prov(args: &PushArgs) -> Result<Option<bytes::Bytes>> {
    let path = match &args.prov {
        Some(p) => p.clone(),
        None if args.chart.is_file() => {
            let mut p = args.chart.clone().into_os_string();
            p.push(".prov");
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Ok(None);
            }
            p
        }
        None => return Ok(None),
    };
    let bytes = std::fs::read(&path).map_err(|e| ChartError::io(&path, e))?;
    Ok(Some(bytes.into()))
}

/// ChartMuseum settings: `creds` (USER:PASS), else `HELM_REPO_USERNAME`/`HELM_REPO_PASSWORD`,
/// else the bearer token `HELM_REPO_ACCESS_TOKEN`; TLS from the destination side's flags.
pub fn museum_options(
    creds: Option<&str>,
    client_cert: Option<(PathBuf, PathBuf)>,
    context_path: Option<String>,
    timeout: u64,
    transport: &TransportArgs,
) -> Result<MuseumOptions> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let auth = match (creds, env("HELM_REPO_USERNAME"), env("HELM_REPO_PASSWORD")) {
        (Some(c), _, _) => {
            let (user, password) = c.split_once(':').ok_or_else(|| Error::Credentials {
                reason: "--creds: expected USER:PASS".into(),
            })?;
            MuseumAuth::Basic {
                user: user.into(),
                password: password.into(),
            }
        }
        (None, Some(user), Some(password)) => MuseumAuth::Basic { user, password },
        _ => match env("HELM_REPO_ACCESS_TOKEN") {
            Some(token) => MuseumAuth::Bearer(token),
            None => MuseumAuth::None,
        },
    };
    Ok(MuseumOptions {
        auth,
        ca_file: transport.ca_file.clone(),
        client_cert,
        tls_verify: transport.dest_tls_verify,
        allow_http: transport.dest_plain_http,
        context_path,
        timeout: Duration::from_secs(timeout.max(1)),
    })
}

fn print_report(r: &PushReport, args: &PushArgs) {
    if args.json {
        println!(
            "{:#}",
            serde_json::to_value(r).expect("a report serialises")
        );
        return;
    }
    if args.quiet {
        return;
    }
    let verb = match (r.result, r.dry_run) {
        (PushOutcome::Created, true) => "would create",
        (PushOutcome::Replaced, true) => "would replace",
        (PushOutcome::Unchanged, _) => "unchanged",
        (PushOutcome::Created, false) => "created",
        (PushOutcome::Replaced, false) => "replaced",
        (PushOutcome::Refused, _) => "refused",
    };
    println!("{verb} {} {} → {}", r.chart, r.version, r.destination);
    println!("  digest: {}", r.digest);
    if let Some(p) = r.previous.as_ref().filter(|p| **p != r.digest) {
        println!("  was:    {p}");
    }
    if let Some(m) = &r.manifest {
        println!("  manifest: {m}");
    }
}
