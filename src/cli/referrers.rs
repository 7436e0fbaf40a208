//! Referrer flags shared by every copying command (`--referrers`, `--no-referrers`,
//! `--referrers-type`), and `ferry referrers REF`: the tree of what refers to an image.

use clap::Args;

use ferry::referrers::{self, Node, ReferrerOptions, Subject};
use ferry::Result;

use super::endpoints::AccessArgs;
use super::progress::{human_bytes, short};
use super::settings::open_single;

/// The referrer flags; each command chooses its default (on for `promote`, off for `copy`).
#[derive(Args, Clone, Debug, Default)]
pub struct ReferrerArgs {
    /// Copy the image's referrers too: signatures, SBOMs, attestations (OCI 1.1 `subject`,
    /// the `sha256-<hex>` fallback tag, cosign's `.sig`/`.att`/`.sbom` tags).
    #[arg(long, conflicts_with = "no_referrers")]
    pub referrers: bool,
    /// Do not copy referrers.
    #[arg(long)]
    pub no_referrers: bool,
    /// Only referrers of this artifactType (repeatable; implies --referrers).
    #[arg(
        long = "referrers-type",
        value_name = "TYPE",
        conflicts_with = "no_referrers"
    )]
    pub types: Vec<String>,
}

impl ReferrerArgs {
    /// What the flags ask for, if they ask for anything.
    pub fn explicit(&self) -> Option<ReferrerOptions> {
        if self.no_referrers {
            return Some(ReferrerOptions::none());
        }
        (self.referrers || !self.types.is_empty()).then(|| ReferrerOptions {
            enabled: true,
            artifact_types: self.types.clone(),
        })
    }

    /// The options, `default_on` deciding when no flag is given.
    pub fn options(&self, default_on: bool) -> ReferrerOptions {
        self.explicit().unwrap_or(match default_on {
            true => ReferrerOptions::all(),
            false => ReferrerOptions::none(),
        })
    }
}

const EXAMPLES: &str = "\
Examples:
  ferry referrers ci.example.com/team/api:1.4.2
  ferry referrers --referrers-type application/vnd.dev.sigstore.bundle.v0.3+json ci.example.com/team/api:1.4.2
  ferry referrers --json oci:./mirror:1.4.2

Lists what refers to the image and to each manifest of its index: OCI 1.1 referrers (from the
referrers API, or the sha256-<hex> fallback tag where the registry has no API), what refers to
those in turn, and cosign's legacy sha256-<hex>.sig/.att/.sbom tags. Each line: artifactType,
digest, size, annotations.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct ReferrersCmdArgs {
    /// The image (registry reference or oci:PATH[:TAG]).
    pub image: String,
    /// Only referrers of this artifactType (repeatable).
    #[arg(long = "referrers-type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Print the tree as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn run(args: ReferrersCmdArgs) -> Result<()> {
    let (_, store, target) = open_single(&args.image, &args.access)?;
    let root = store.get_manifest(&target).await?;
    let tree = referrers::tree(store.as_ref(), &root, &args.types).await?;
    if args.json {
        let doc = serde_json::json!({
            "reference": args.image,
            "digest": root.digest,
            "manifests": tree,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON serialises")
        );
        return Ok(());
    }
    print!("{}", render(&args.image, &tree));
    Ok(())
}

/// The tree as text: the image, its platform manifests, and under each what refers to it.
fn render(image: &str, tree: &[Subject]) -> String {
    let mut out = String::new();
    for (i, s) in tree.iter().enumerate() {
        let label = match (&s.platform, i) {
            (_, 0) => format!("{image}@{}", s.digest),
            (Some(p), _) => format!("  {p} {}", s.digest),
            (None, _) => format!("  {}", s.digest),
        };
        let indent = if i == 0 { 1 } else { 2 };
        if i > 0 && s.referrers.is_empty() {
            continue;
        }
        out.push_str(&label);
        out.push('\n');
        if i == 0 && tree.iter().all(|s| s.referrers.is_empty()) {
            out.push_str("  (no referrers)\n");
        }
        nodes(&mut out, &s.referrers, indent);
    }
    out
}

fn nodes(out: &mut String, list: &[Node], depth: usize) {
    for n in list {
        let r = &n.referrer;
        let kind = r.artifact_type.as_deref().unwrap_or(&r.media_type);
        out.push_str(&format!(
            "{}└─ {kind} {} {}",
            "  ".repeat(depth),
            short(&r.digest),
            human_bytes(r.size)
        ));
        if let Some(t) = &n.tag {
            out.push_str(&format!(" (tag {t})"));
        }
        for (k, v) in &r.annotations {
            out.push_str(&format!(" {k}={v}"));
        }
        out.push('\n');
        nodes(out, &n.referrers, depth + 1);
    }
}
