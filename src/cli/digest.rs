//! `ferry digest REF`: the manifest digest a reference names (one HEAD on a registry).

use clap::Args;

use ferry::inspect;
use ferry::manifest::Platform;
use ferry::Result;

use super::endpoints::AccessArgs;
use super::settings::open_single;

const EXAMPLES: &str = "\
Examples:
  ferry digest ci.example.com/team/api:feature-x
  ferry digest --platform linux/arm64 ci.example.com/team/api:feature-x
  ferry digest oci:./mirror:3.20
  DIGEST=$(ferry digest ci.example.com/team/api:rc1) &&
    ferry promote --expect-digest \"$DIGEST\" ci.example.com/team/api:rc1 prod.example.com/team/api:1.4.2

A multi-platform image's digest is its index's; --platform gives that platform's manifest
digest instead. Prints the digest alone on one line; exit 4 when the image is absent.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct DigestArgs {
    /// The image (registry reference or oci:PATH[:TAG]).
    pub image: String,
    /// The digest of this platform's manifest within an index, OS/ARCH[/VARIANT].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<Platform>,
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn run(args: DigestArgs) -> Result<()> {
    let (_, store, target) = open_single(&args.image, &args.access)?;
    let desc = inspect::digest(store.as_ref(), &target, args.platform.as_ref()).await?;
    println!("{}", desc.digest);
    Ok(())
}
