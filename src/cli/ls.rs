//! `ferry ls REPO`: a repository's tags (every `Link` page, sorted), or a layout's images.

use clap::Args;
use regex::Regex;
use serde_json::json;

use ferry::reference::ImageRef;
use ferry::store::StoredImage;
use ferry::{Error, Result};

use super::endpoints::AccessArgs;
use super::settings::open_single;

const EXAMPLES: &str = "\
Examples:
  ferry ls ci.example.com/team/api
  ferry ls --filter '^feature-' ci.example.com/team/api
  ferry ls --json 127.0.0.1:5000/team/api
  ferry ls oci:./mirror

A registry repository lists its tags, one per line, sorted (every page the registry sends is
followed). An OCI layout lists its images: tag (or <none>), digest and media type.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct LsArgs {
    /// A registry repository ([registry[:port]/]repo) or an OCI layout (oci:PATH).
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
    let (r, store, _) = open_single(&args.repository, &args.access)?;
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
        print_images(&store.location(), &images, args.json);
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

fn print_images(location: &str, images: &[StoredImage], json: bool) {
    if json {
        let doc = json!({"location": location, "images": images});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON serialises")
        );
        return;
    }
    for i in images {
        let tag = i.tag.as_deref().unwrap_or("<none>");
        let d = &i.descriptor;
        println!("{tag}\t{}\t{}", d.digest, d.media_type);
    }
}
