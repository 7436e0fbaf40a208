//! `ferry import ARCHIVE --to REGISTRY/PREFIX`: every image of an archive (or layout) pushed
//! under a prefix, keeping each image's repository path, through promote's all-or-nothing tag
//! phase (no tag before every blob of every image is verified at the destination).

use std::path::PathBuf;

use clap::Args;

use ferry::copy::RegistryLimits;
use ferry::promote::{Overwrite, Plan, PlannedImage, PromoteOptions};
use ferry::reference::{ImageRef, LayoutKind, LayoutRef, RegistryRef};
use ferry::store::archive::{self, ArchiveFormat, Compress};
use ferry::{Error, Result};

use super::endpoints::TransportArgs;
use super::promote::{execute_in, ChartServerArgs, Endpoints, GuardArgs};
use super::settings::{conversion_note, parse_ref, Stores, TransportSettings};

const EXAMPLES: &str = "\
Examples:
  ferry import mirror.tar --to registry.internal/mirror
  ferry import mirror.tar --to registry.internal/mirror --dry-run
  ferry import docker-archive:saved.tar --to 127.0.0.1:5000/team --map app=apps/app
  ferry import oci-archive:- --to registry.internal/mirror < mirror.tar

Every tagged image of the archive is pushed: an image named team/api:1.4 (its ref name in an
oci-archive, its RepoTags in a docker-archive) goes to REGISTRY/PREFIX/team/api:1.4. A bare tag
(an archive skopeo wrote: 1.4) goes to REGISTRY/PREFIX:1.4. --map FROM=TO renames a repository
path (or every path under FROM/) before the prefix is added; the first matching rule wins.
Untagged images are skipped.

All or nothing, as promote: every image is resolved and guarded (an existing tag on another
digest is refused, exit 7, unless --force), every blob and manifest of every image is pushed
and verified, and only then is any tag written. --dry-run says what would happen.

Digests: an oci-archive's images keep their digests. A docker-archive's uncompressed layers are
compressed (--dest-compress, gzip by default), so their digests and the manifest's are NEW;
ferry says so for each image. A FILE without transport prefix is detected by its entries;
standard input needs the prefix (oci-archive:- or docker-archive:-) and is spooled to $TMPDIR.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct ImportArgs {
    /// The archive: oci-archive:FILE, docker-archive:FILE, oci:DIR, or a FILE or DIR
    /// (detected).
    pub archive: String,
    /// Destination registry and repository prefix: REGISTRY[:PORT][/PREFIX].
    #[arg(long, value_name = "REGISTRY[/PREFIX]")]
    pub to: String,
    /// Rename a repository path (or the paths under it) before the prefix: FROM=TO
    /// (repeatable; the first match wins).
    #[arg(long = "map", value_name = "FROM=TO")]
    pub maps: Vec<String>,
    /// How a docker-archive's uncompressed layers are pushed: gzip, zstd or none.
    #[arg(long, value_name = "gzip|zstd|none", default_value = "gzip")]
    pub dest_compress: Compress,
    /// Move existing tags that point at another digest (otherwise refused, exit 7).
    #[arg(long)]
    pub force: bool,
    /// Print what would happen; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan or the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// Blob transfers in flight per image.
    #[arg(short, long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Images worked on at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub images: usize,
    #[command(flatten)]
    pub referrers: super::referrers::ReferrerArgs,
    #[command(flatten)]
    pub transport: TransportArgs,
}

/// The archive reference, with the format detected when no transport prefix says it.
fn archive_ref(text: &str) -> Result<LayoutRef> {
    let has_prefix = ["oci:", "oci-archive:", "docker-archive:"]
        .iter()
        .any(|p| text.starts_with(p));
    let l = if has_prefix {
        match parse_ref(text)? {
            ImageRef::Layout(l) => l,
            ImageRef::Registry(_) => unreachable!("a transport prefix was given"),
        }
    } else {
        let path = PathBuf::from(text);
        if text == "-" {
            return Err(Error::Usage {
                arg: text.into(),
                reason: "standard input needs its format: oci-archive:- or docker-archive:-".into(),
            });
        }
        let kind = if path.is_dir() {
            LayoutKind::Directory
        } else {
            match archive::detect(&path)? {
                ArchiveFormat::Oci => LayoutKind::Archive,
                ArchiveFormat::Docker => LayoutKind::DockerArchive,
            }
        };
        LayoutRef {
            path,
            tag: None,
            digest: None,
            kind,
        }
    };
    if l.tag.is_some() || l.digest.is_some() {
        return Err(Error::Usage {
            arg: text.into(),
            reason: "import pushes every image of the archive: drop the :REF".into(),
        });
    }
    Ok(l)
}

/// `FROM=TO` rules.
fn parse_maps(maps: &[String]) -> Result<Vec<(String, String)>> {
    maps.iter()
        .map(|m| {
            let (from, to) = m.split_once('=').ok_or_else(|| Error::Usage {
                arg: "--map".into(),
                reason: format!("{m:?}: expected FROM=TO"),
            })?;
            let (from, to) = (from.trim_matches('/'), to.trim_matches('/'));
            if from.is_empty() {
                return Err(Error::Usage {
                    arg: "--map".into(),
                    reason: format!("{m:?}: FROM is empty"),
                });
            }
            Ok((from.to_string(), to.to_string()))
        })
        .collect()
}

/// `repo` after the first matching rule.
fn mapped(repo: &str, maps: &[(String, String)]) -> String {
    for (from, to) in maps {
        if repo == from {
            return to.clone();
        }
        if let Some(rest) = repo.strip_prefix(&format!("{from}/")) {
            return if to.is_empty() {
                rest.to_string()
            } else {
                format!("{to}/{rest}")
            };
        }
    }
    repo.to_string()
}

/// The repository path and tag an archive's image name means; `None` repository for a bare tag.
pub fn split_name(name: &str) -> Result<(Option<String>, String)> {
    if !name.contains('/') && !name.contains(':') {
        return Ok((None, name.to_string()));
    }
    let r: RegistryRef = name
        .parse()
        .map_err(|e: ferry::reference::ReferenceError| Error::Usage {
            arg: name.into(),
            reason: format!(
                "an image name in the archive is not a reference: {}",
                e.reason
            ),
        })?;
    Ok((Some(r.repository), r.tag.unwrap_or_else(|| "latest".into())))
}

pub async fn run(args: ImportArgs) -> Result<()> {
    let archive = archive_ref(&args.archive)?;
    let to = args
        .to
        .strip_prefix("docker://")
        .unwrap_or(&args.to)
        .trim_end_matches('/');
    // `REGISTRY/PREFIX` parses as a reference; a bare `REGISTRY[:PORT]` is the registry alone.
    let (registry, base) = if to.contains('/') {
        let prefix: RegistryRef = to.parse()?;
        if prefix.tag.is_some() || prefix.digest.is_some() {
            return Err(Error::Usage {
                arg: args.to.clone(),
                reason: "--to is a registry and repository prefix: drop the :TAG or @DIGEST".into(),
            });
        }
        (prefix.registry, Some(prefix.repository))
    } else {
        (to.to_string(), None)
    };
    let maps = parse_maps(&args.maps)?;
    let stores = Stores::new(
        TransportSettings::resolve(&args.transport)?,
        None,
        args.dry_run,
    )
    .with_compress(args.dest_compress);
    // Opened (indexed) once: the jobs below reuse it.
    let (source, _) = stores.open_one(&ImageRef::Layout(archive.clone()))?;
    let images = source.list_images().await?.unwrap_or_default();
    let mut planned: Vec<PlannedImage> = Vec::new();
    let mut skipped = 0;
    for image in images {
        let Some(name) = image.tag else {
            skipped += 1;
            continue;
        };
        let (repo, tag) = split_name(&name)?;
        let repo = repo.map(|r| mapped(&r, &maps));
        let repository = match (&base, repo) {
            (Some(b), Some(r)) if !r.is_empty() => format!("{b}/{r}"),
            (Some(b), _) => b.clone(),
            (None, Some(r)) if !r.is_empty() => r,
            (None, _) => {
                return Err(Error::Usage {
                    arg: args.to.clone(),
                    reason: format!(
                        "image {name:?} has no repository path in the archive: give --to REGISTRY/REPOSITORY"
                    ),
                })
            }
        };
        let destination = ImageRef::Registry(RegistryRef {
            registry: registry.clone(),
            repository,
            tag: None,
            digest: None,
        });
        let mut source = archive.clone();
        source.tag = Some(name.clone());
        planned.push(PlannedImage {
            label: name,
            source: ImageRef::Layout(source),
            destination,
            tags: vec![tag],
            expect_digest: None,
            overwrite: Overwrite::Never,
            referrers: None,
        });
    }
    if planned.is_empty() {
        return Err(Error::Usage {
            arg: args.archive.clone(),
            reason: format!("holds no tagged image to import ({skipped} untagged)"),
        });
    }
    if skipped > 0 && !args.quiet {
        eprintln!(
            "ferry: note: {skipped} untagged image(s) of {} skipped",
            args.archive
        );
    }
    let plan = Plan {
        images: planned,
        charts: Vec::new(),
        limits: Vec::new(),
    };
    let options = PromoteOptions {
        atomic: true,
        force: args.force,
        images: args.images.max(1),
        jobs: args.jobs.max(1),
        // The archive's signatures and SBOMs go with their images, as a promotion takes them.
        referrers: args.referrers.options(true),
    };
    let guard = GuardArgs {
        expect_digest: None,
        force: args.force,
        dry_run: args.dry_run,
        json: args.json,
        quiet: args.quiet,
        digestfile: None,
    };
    let endpoints = Endpoints {
        transport: &args.transport,
        chart_servers: &ChartServerArgs::default(),
        one_side: None,
    };
    let result = execute_in(
        &stores,
        &plan,
        options,
        RegistryLimits::new(32),
        &guard,
        endpoints,
    )
    .await;
    if !args.quiet && !args.json {
        for c in stores.conversions() {
            eprintln!("ferry: note: {}", conversion_note(&c));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_map() {
        assert_eq!(split_name("1.4").unwrap(), (None, "1.4".into()));
        assert_eq!(
            split_name("team/api:1.4").unwrap(),
            (Some("team/api".into()), "1.4".into())
        );
        assert_eq!(
            split_name("alpine:3").unwrap(),
            (Some("library/alpine".into()), "3".into())
        );
        assert_eq!(
            split_name("127.0.0.1:5000/team/api:2").unwrap(),
            (Some("team/api".into()), "2".into())
        );
        let maps = parse_maps(&["team=apps".into(), "library/alpine=base/alpine".into()]).unwrap();
        assert_eq!(mapped("team/api", &maps), "apps/api");
        assert_eq!(mapped("library/alpine", &maps), "base/alpine");
        assert_eq!(mapped("teamx/api", &maps), "teamx/api");
    }
}
