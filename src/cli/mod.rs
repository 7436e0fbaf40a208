//! Command-line interface: clap arguments → resolved settings → library calls; exit codes.

mod chart;
mod copy;
mod delete;
mod digestfile;
mod docs;
mod endpoints;
mod export;
mod import;
mod inspect;
pub mod interrupt;
mod ls;
pub mod progress;
mod promote;
pub mod referrers;
mod settings;
mod sync;
mod tag;

use clap::{Parser, Subcommand};

use ferry::error::{Side, DIGEST_INVALID};
use ferry::promote::PromoteError;
use ferry::Error;

/// Exit codes (documented in `ferry --help` and the README).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const VERIFY: u8 = 5;
    pub const UNEXPECTED_DIGEST: u8 = 6;
    pub const REFUSED: u8 = 7;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  failure (network, registry error, I/O)
  2  bad input: invalid reference, flag, credentials file or plan; a refused archive
  3  authentication failed
  4  image not found: the source of copy/promote/tag, the image of digest/inspect/delete
     (a destination's 404 is a failure, exit 1)
  5  verification failed: bytes did not match their digest
  6  the source is not the --expect-digest digest (nothing written)
  7  a tag guard refused to move an existing tag, or delete refused to remove a tag that
     would take other tags with it (nothing written)";

#[derive(Parser)]
#[command(name = "ferry", version, about = "Copy OCI/Docker images between registries and OCI layouts, without a daemon", after_help = AFTER_HELP)]
pub struct Cli {
    /// More logging on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Copy one image (all platforms by default) between registries and OCI layouts.
    Copy(copy::CopyArgs),
    /// Publish an image (or a plan of images) under release tags, guarded and all-or-nothing.
    Promote(promote::PromoteArgs),
    /// Mirror many repositories from a config: tag filters, incremental, shardable.
    Sync(sync::SyncArgs),
    /// Point more tags of the same repository at an image (no blob requests).
    Tag(tag::TagArgs),
    /// Package a Helm chart, or publish one to an OCI registry or ChartMuseum (guarded).
    Chart(chart::ChartArgs),
    /// Export many images into one oci-archive, docker-archive or OCI layout (each blob once).
    Export(export::ExportArgs),
    /// Push every image of an archive or layout under a registry prefix, all-or-nothing.
    Import(import::ImportArgs),
    /// Print the manifest digest an image reference names (an index's for a multi-platform image).
    Digest(inspect::DigestArgs),
    /// Show what an image, index or artifact is (platforms, config, layers), or its exact bytes.
    Inspect(inspect::InspectArgs),
    /// List the tags of a repository (sorted, every page), or the images of a layout or archive.
    Ls(ls::LsArgs),
    /// Show what refers to an image (signatures, SBOMs, attestations) as a tree.
    Referrers(referrers::ReferrersCmdArgs),
    /// Delete a tag or a manifest (a tag never takes a manifest that other tags still name).
    Delete(delete::DeleteArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions(docs::CompletionsArgs),
    /// Print the man page (or write one page per command with --dir).
    Man(docs::ManArgs),
}

impl Cli {
    /// Runs the command; SIGINT/SIGTERM stop it cleanly ([`interrupt`]).
    pub async fn run(self) -> Result<(), Error> {
        interrupt::listen();
        interrupt::token().run(self.command.run()).await
    }
}

impl Command {
    async fn run(self) -> Result<(), Error> {
        match self {
            Command::Chart(args) => chart::run(args).await,
            Command::Copy(args) => copy::run(args).await,
            Command::Promote(args) => promote::run(args).await,
            Command::Sync(args) => sync::run(args).await,
            Command::Tag(args) => tag::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Import(args) => import::run(args).await,
            Command::Digest(args) => inspect::digest(args).await,
            Command::Inspect(args) => inspect::run(args).await,
            Command::Ls(args) => ls::run(args).await,
            Command::Delete(args) => delete::run(args).await,
            Command::Referrers(args) => referrers::run(args).await,
            Command::Completions(args) => docs::completions(args),
            Command::Man(args) => docs::man(args),
        }
    }
}

/// Writes bytes to stdout exactly. A reader that went away (`| head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output {
            path: "<stdout>".into(),
            reason: e.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Maps an error to the documented exit code. Several errors give the most decisive one
/// (bad input, then verification, authentication, guards, not found, other failures), so the
/// same failure exits the same way whichever error finished first.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Many(errors) => errors
            .iter()
            .map(exit_code)
            .max_by_key(|c| rank(*c))
            .unwrap_or(exit::FAILED),
        Error::OnSide { side, error } => match (side, error.root()) {
            // Only the source can be "not found": a destination's 404 is a failed write.
            (Side::Destination, e) if exit_code(e) == exit::NOT_FOUND => exit::FAILED,
            (_, e) => exit_code(e),
        },
        Error::Reference(_)
        | Error::Digest(_)
        | Error::Credentials { .. }
        | Error::Usage { .. }
        | Error::BadTag { .. }
        | Error::BadRegistry { .. }
        | Error::CaFile { .. }
        | Error::ClientCert { .. }
        | Error::Conversion { .. }
        | Error::Archive { .. }
        | Error::Platform { .. } => exit::USAGE,
        Error::Auth { .. } => exit::AUTH,
        // The registry found that uploaded bytes do not hash to their digest.
        e @ Error::Registry { .. } if e.has_code(DIGEST_INVALID) => exit::VERIFY,
        Error::Registry { status, .. } => match status {
            401 | 403 => exit::AUTH,
            404 => exit::NOT_FOUND,
            _ => exit::FAILED,
        },
        Error::NotFound { .. } => exit::NOT_FOUND,
        Error::DigestMismatch { .. }
        | Error::SizeMismatch { .. }
        | Error::BlobSizeMismatch { .. }
        | Error::DestinationDigest { .. } => exit::VERIFY,
        Error::Promote(p) => match **p {
            PromoteError::Plan { .. } => exit::USAGE,
            PromoteError::UnexpectedDigest { .. } => exit::UNEXPECTED_DIGEST,
            PromoteError::TagRefused { .. } => exit::REFUSED,
            PromoteError::TagMovedConcurrently { .. } => exit::FAILED,
        },
        Error::DeleteRefused { .. } => exit::REFUSED,
        Error::Sync(s) => match **s {
            ferry::sync::SyncError::Config { .. } => exit::USAGE,
            ferry::sync::SyncError::MissingTag { .. } => exit::NOT_FOUND,
        },
        Error::Interrupted { .. } => interrupt::exit_code(),
        Error::Chart(c) => chart::exit_code(c),
        Error::Manifest(_) | Error::ManifestTooLarge { .. } | Error::TooLarge { .. } => {
            exit::FAILED
        }
        Error::Transport { .. }
        | Error::Layout { .. }
        | Error::Cache { .. }
        | Error::HttpClient { .. }
        | Error::BadAnswer { .. }
        | Error::Upload { .. }
        | Error::Unsupported { .. }
        | Error::Referrers { .. }
        | Error::Output { .. } => exit::FAILED,
    }
}

/// How decisive an exit code is among several errors: the higher, the more it says.
fn rank(code: u8) -> u8 {
    match code {
        128.. => 8,
        exit::USAGE => 7,
        exit::VERIFY => 6,
        exit::AUTH => 5,
        exit::UNEXPECTED_DIGEST => 4,
        exit::REFUSED => 3,
        exit::NOT_FOUND => 2,
        _ => 1,
    }
}
