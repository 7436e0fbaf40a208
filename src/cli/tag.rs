//! `ferry tag IMAGE TAG...`: point more tags of the same repository at an image (manifest
//! requests only), with the same guards as `promote`.

use clap::Args;

use ferry::copy::RegistryLimits;
use ferry::error::Side;
use ferry::promote::PromoteOptions;
use ferry::reference::{ImageRef, Tag};
use ferry::Result;

use super::endpoints::AccessArgs;
use super::promote::{execute, one_image, ChartServerArgs, Endpoints, GuardArgs};
use super::settings::{parse_ref, parse_tag, tag_names};

const EXAMPLES: &str = "\
Examples:
  ferry tag prod.example.com/team/api:1.4.2 1.4 latest
  ferry tag --expect-digest sha256:3f2a... prod.example.com/team/api:rc1 1.4.2
  ferry tag --force prod.example.com/team/api@sha256:3f2a... latest

Same as `ferry promote IMAGE REPO:TAG,...` with REPO the image's own repository: no blob is
touched. An existing tag on another digest is refused (exit 7) unless --force.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct TagArgs {
    /// The image to tag (by tag or digest).
    pub image: String,
    /// Tags to point at it.
    #[arg(required = true, value_parser = parse_tag)]
    pub tags: Vec<Tag>,
    #[command(flatten)]
    pub guard: GuardArgs,
    /// Only what reaching one registry takes: no upload flags, one set of credentials.
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn run(args: TagArgs) -> Result<()> {
    let source = parse_ref(&args.image)?;
    let destination = match &source {
        ImageRef::Registry(r) => ImageRef::Registry(ferry::reference::RegistryRef {
            tag: None,
            digest: None,
            ..r.clone()
        }),
        ImageRef::Layout(l) => ImageRef::Layout(ferry::reference::LayoutRef {
            tag: None,
            digest: None,
            ..l.clone()
        }),
    };
    let plan = one_image(source, destination, tag_names(&args.tags), &args.guard)?;
    let options = PromoteOptions {
        force: args.guard.force,
        ..PromoteOptions::default()
    };
    let limits = RegistryLimits::unlimited();
    let side = Some(Side::Destination);
    let transport = args.access.transport();
    let endpoints = Endpoints {
        transport: &transport,
        chart_servers: &ChartServerArgs::default(),
        one_side: side,
    };
    execute(&plan, options, limits, &args.guard, endpoints).await
}
