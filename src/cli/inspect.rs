//! `ferry digest REF` (the digest a reference names: one HEAD on a registry) and `ferry inspect
//! REF`: what an image, index or artifact is (media type, digest, platforms, config summary,
//! layers), its exact manifest bytes (`--raw`) or config blob (`--config`).

use clap::Args;

use ferry::inspect::{self, ConfigSummary, Inspection, MAX_CONFIG_BYTES};
use ferry::manifest::{Children, Platform};
use ferry::{Error, Result};

use super::endpoints::AccessArgs;
use super::progress::human_bytes;
use super::settings::open_single;
use super::write_stdout;

const DIGEST_EXAMPLES: &str = "\
Examples:
  ferry digest ci.example.com/team/api:feature-x
  ferry digest --platform linux/arm64 ci.example.com/team/api:feature-x
  ferry digest oci:./mirror:3.20
  DIGEST=$(ferry digest ci.example.com/team/api:rc1) &&
    ferry promote --expect-digest \"$DIGEST\" ci.example.com/team/api:rc1 prod.example.com/team/api:1.4.2

A multi-platform image's digest is its index's; --platform gives that platform's manifest
digest instead. Prints the digest alone on one line; exit 4 when the image is absent.";

#[derive(Args)]
#[command(after_help = DIGEST_EXAMPLES)]
pub struct DigestArgs {
    /// The image (registry reference or oci:PATH[:TAG]).
    pub image: String,
    /// The digest of this platform's manifest within an index, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn digest(args: DigestArgs) -> Result<()> {
    let (_, store, target) = open_single(&args.image, &args.access)?;
    let desc = inspect::digest(store.as_ref(), &target, args.platform.as_ref()).await?;
    println!("{}", desc.digest);
    Ok(())
}

const EXAMPLES: &str = "\
Examples:
  ferry inspect ci.example.com/team/api:feature-x
  ferry inspect --raw ci.example.com/team/api:feature-x | sha256sum
  ferry inspect --platform linux/arm64 --config ci.example.com/team/api:feature-x
  ferry inspect --json oci:./mirror:3.20

--raw prints the manifest exactly as stored (its sha256 is the digest); --config prints the
config blob exactly; --json prints the summary as one JSON object.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct InspectArgs {
    /// The image (registry reference or oci:PATH[:TAG]).
    pub image: String,
    /// Inspect this platform's manifest within an index, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
    /// Print the manifest bytes exactly as stored.
    #[arg(long, conflicts_with_all = ["config", "json"])]
    pub raw: bool,
    /// Print the config blob exactly as stored (an image manifest's; use --platform for an index).
    #[arg(long, conflicts_with = "json")]
    pub config: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn run(args: InspectArgs) -> Result<()> {
    let (r, store, target) = open_single(&args.image, &args.access)?;
    let m = inspect::select(store.as_ref(), &target, args.platform.as_ref()).await?;
    if args.raw {
        return write_stdout(&m.bytes);
    }
    if args.config {
        let Children::Image { config, .. } = m.children()? else {
            return Err(Error::Usage {
                arg: "--config".into(),
                reason: format!("{r} is an index, which has no config: add --platform"),
            });
        };
        let bytes = inspect::read_blob(store.as_ref(), &config, MAX_CONFIG_BYTES).await?;
        return write_stdout(&bytes);
    }
    let summary = inspect::inspect(store.as_ref(), &m).await?;
    if args.json {
        let mut v = serde_json::to_value(&summary).expect("inspection serialises");
        v["reference"] = serde_json::Value::String(r.to_string());
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("JSON serialises")
        );
    } else {
        print!("{}", render(&r.to_string(), &summary));
    }
    Ok(())
}

/// The plain-text summary.
pub fn render(reference: &str, s: &Inspection) -> String {
    let mut o = String::new();
    let mut line = |k: &str, v: &str| o.push_str(&format!("{:<13}{v}\n", format!("{k}:")));
    line("reference", reference);
    line("kind", s.kind);
    line("media type", &s.media_type);
    line("digest", &s.digest.to_string());
    line("size", &format!("{} bytes", s.size));
    if let Some(t) = &s.artifact_type {
        line("artifact", t);
    }
    if let Some(sub) = &s.subject {
        line("subject", &sub.digest.to_string());
    }
    if let Some(c) = &s.config {
        render_config(&mut line, c);
    }
    for (k, v) in &s.annotations {
        line("annotation", &format!("{k}={v}"));
    }
    if !s.manifests.is_empty() {
        o.push_str(&format!("platforms ({}):\n", s.manifests.len()));
        for d in &s.manifests {
            let p = d.platform.as_ref().map_or("-".into(), |p| p.to_string());
            let size = human_bytes(d.size);
            o.push_str(&format!(
                "  {p:<16} {}  {size:>10}  {}\n",
                d.digest, d.media_type
            ));
        }
    }
    if !s.layers.is_empty() {
        let total: u64 = s.layers.iter().map(|l| l.size).sum();
        let n = s.layers.len();
        o.push_str(&format!("layers ({n}, {}):\n", human_bytes(total)));
        for l in &s.layers {
            let size = human_bytes(l.size);
            o.push_str(&format!("  {}  {size:>10}  {}\n", l.digest, l.media_type));
        }
    }
    o
}

fn render_config(line: &mut impl FnMut(&str, &str), c: &ConfigSummary) {
    let size = human_bytes(c.size);
    line(
        "config",
        &format!("{} ({size}, {})", c.digest, c.media_type),
    );
    if let Some(chart) = &c.chart {
        line("chart", chart);
    }
    if let Some(p) = &c.platform {
        line("platform", p);
    }
    if let Some(t) = &c.created {
        line("created", t);
    }
    let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings serialise");
    if let Some(e) = &c.entrypoint {
        line("entrypoint", &json(e));
    }
    if let Some(cmd) = &c.cmd {
        line("cmd", &json(cmd));
    }
    for (k, v) in &c.labels {
        line("label", &format!("{k}={v}"));
    }
}
