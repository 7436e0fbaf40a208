//! `ferry ls REPO`: a repository's tags (every `Link` page, sorted), or the images of a layout
//! or archive (read in place, not extracted) with their platforms and sizes.

use clap::Args;
use regex::Regex;
use serde_json::json;

use ferry::inspect::inspect;
use ferry::manifest::{Children, Descriptor};
use ferry::reference::ImageRef;
use ferry::store::{Store, StoredImage, Target};
use ferry::{Error, Result};

use super::endpoints::AccessArgs;
use super::progress::human_bytes;
use super::settings::open_single;

const EXAMPLES: &str = "\
Examples:
  ferry ls ci.example.com/team/api
  ferry ls --filter '^feature-' ci.example.com/team/api
  ferry ls --json 127.0.0.1:5000/team/api
  ferry ls oci:./mirror
  ferry ls mirror.tar                  # an oci-archive or docker-archive (detected)

A registry repository lists its tags, one per line, sorted (every page the registry sends is
followed). An OCI layout or archive lists its images: tag (or <none>), digest, media type,
platforms and size (manifests, configs and layers, each blob once). An archive is indexed in
place, not extracted (a compressed one, or standard input, is spooled to $TMPDIR).";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct LsArgs {
    /// A registry repository ([registry[:port]/]repo), an OCI layout (oci:PATH), an archive
    /// (oci-archive:FILE, docker-archive:FILE), or a path to a layout or archive.
    pub repository: String,
    /// Only tags matching this regular expression (unanchored: use ^ and $).
    #[arg(long, value_name = "REGEX")]
    pub filter: Option<Regex>,
    /// Print one JSON object: the location and its tags (or images).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn run(args: LsArgs) -> Result<()> {
    let text = local_path(&args.repository)?;
    let (r, store, _) = open_single(&text, &args.access)?;
    let named = match &r {
        ImageRef::Registry(rr) => rr.tag.is_some() || rr.digest.is_some(),
        ImageRef::Layout(l) => l.tag.is_some() || l.digest.is_some(),
    };
    if named {
        return Err(Error::Usage {
            arg: args.repository.clone(),
            reason: "ls lists a repository or layout: drop the :TAG or @DIGEST".into(),
        });
    }
    let keep = |tag: Option<&str>| match (&args.filter, tag) {
        (None, _) => true,
        (Some(re), Some(t)) => re.is_match(t),
        (Some(_), None) => false,
    };
    if let Some(mut images) = store.list_images().await? {
        images.retain(|i| keep(i.tag.as_deref()));
        images.sort_by(|a, b| a.tag.cmp(&b.tag));
        let mut listed = Vec::with_capacity(images.len());
        for i in images {
            let (platforms, size) = summary(store.as_ref(), &i.descriptor).await?;
            listed.push(Listed {
                image: i,
                platforms,
                size,
            });
        }
        print_images(&store.location(), &listed, args.json);
        return Ok(());
    }
    let mut tags = store.list_tags().await?;
    tags.retain(|t| keep(Some(t)));
    tags.sort();
    tags.dedup();
    if args.json {
        let doc = json!({"location": store.location(), "tags": tags});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON serialises")
        );
    } else {
        for t in tags {
            println!("{t}");
        }
    }
    Ok(())
}

/// A path given without transport: a directory is a layout, a file an archive of the format
/// its entries say.
fn local_path(text: &str) -> Result<String> {
    let known = ["oci:", "oci-archive:", "docker-archive:", "docker://"];
    let path = std::path::Path::new(text);
    if known.iter().any(|p| text.starts_with(p)) || !path.exists() {
        return Ok(text.to_string());
    }
    if path.is_dir() {
        return Ok(format!("oci:{text}"));
    }
    Ok(match ferry::store::archive::detect(path)? {
        ferry::store::archive::ArchiveFormat::Oci => format!("oci-archive:{text}"),
        ferry::store::archive::ArchiveFormat::Docker => format!("docker-archive:{text}"),
    })
}

/// One listed image with what it holds.
#[derive(serde::Serialize)]
struct Listed {
    #[serde(flatten)]
    image: StoredImage,
    platforms: Vec<String>,
    /// Bytes of its manifests, configs and layers, each blob once.
    size: u64,
}

/// The platforms and total size of an image or index.
async fn summary(store: &dyn Store, desc: &Descriptor) -> Result<(Vec<String>, u64)> {
    let m = store
        .get_manifest(&Target::Digest(desc.digest.clone()))
        .await?;
    let mut seen = std::collections::HashSet::new();
    let mut size = m.bytes.len() as u64;
    let mut platforms = Vec::new();
    let mut images = Vec::new();
    match m.children()? {
        Children::Index { manifests } => {
            for c in manifests {
                if let Some(p) = &c.platform {
                    platforms.push(p.to_string());
                }
                let child = store
                    .get_manifest(&Target::Digest(c.digest.clone()))
                    .await?;
                size += child.bytes.len() as u64;
                images.push(child);
            }
        }
        Children::Image { .. } => {
            let seen_platform = inspect(store, &m).await?.config.and_then(|c| c.platform);
            platforms.extend(seen_platform);
            images.push(m);
        }
    }
    for i in images {
        if let Children::Image { config, layers } = i.children()? {
            for b in std::iter::once(config).chain(layers) {
                if seen.insert(b.digest.clone()) {
                    size += b.size;
                }
            }
        }
    }
    Ok((platforms, size))
}

fn print_images(location: &str, images: &[Listed], json: bool) {
    if json {
        let doc = json!({"location": location, "images": images});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON serialises")
        );
        return;
    }
    for l in images {
        let tag = l.image.tag.as_deref().unwrap_or("<none>");
        let d = &l.image.descriptor;
        let platforms = if l.platforms.is_empty() {
            "-".to_string()
        } else {
            l.platforms.join(",")
        };
        println!(
            "{tag}\t{}\t{}\t{platforms}\t{}",
            d.digest,
            d.media_type,
            human_bytes(l.size)
        );
    }
}
