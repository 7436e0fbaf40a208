//! Walks a manifest graph at the source: every manifest (children first) and every unique blob.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::manifest::{Children, Descriptor, Platform, RawManifest};
use crate::store::{Store, Target};

/// Media types of layers that are not distributed by registries (Windows foreign layers).
const FOREIGN: [&str; 3] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
];

/// Everything one copy has to move, in push order.
#[derive(Debug, Default)]
pub struct Graph {
    /// Non-root manifests, children before the indexes that name them.
    pub manifests: Vec<RawManifest>,
    /// Unique blobs, largest first.
    pub blobs: Vec<Descriptor>,
    /// Referrer manifests (and their children) the destination lacks, pushed after the root,
    /// each after its subject.
    pub referrers: Vec<RawManifest>,
    /// What the tag phase writes so that the referrers are found from their subjects.
    pub links: super::referrers::Links,
    /// Every referrer found (present at the destination or not), for reports.
    pub found: Vec<super::referrers::FoundReferrer>,
}

/// Collects the graph under `root`, fetching child manifests from `src` with `jobs` in flight.
pub async fn collect(src: &dyn Store, root: &RawManifest, jobs: usize) -> Result<Graph> {
    let mut graph = Graph::default();
    let mut seen_blobs = HashSet::new();
    let mut seen_manifests = HashSet::new();
    walk(
        src,
        root,
        jobs,
        &mut graph,
        &mut seen_blobs,
        &mut seen_manifests,
    )
    .await?;
    graph.blobs.sort_by_key(|d| std::cmp::Reverse(d.size));
    Ok(graph)
}

fn walk<'a>(
    src: &'a dyn Store,
    m: &'a RawManifest,
    jobs: usize,
    graph: &'a mut Graph,
    seen_blobs: &'a mut HashSet<crate::Digest>,
    seen_manifests: &'a mut HashSet<crate::Digest>,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        refuse_unsupported(m)?;
        match m.children()? {
            Children::Image { config, layers } => {
                for d in std::iter::once(config).chain(layers) {
                    if !FOREIGN.contains(&d.media_type.as_str())
                        && seen_blobs.insert(d.digest.clone())
                    {
                        graph.blobs.push(d);
                    }
                }
            }
            Children::Index { manifests } => {
                let wanted: Vec<Descriptor> = manifests
                    .into_iter()
                    .filter(|d| seen_manifests.insert(d.digest.clone()))
                    .collect();
                let children: Vec<RawManifest> = futures::stream::iter(wanted)
                    .map(|d| fetch_child(src, d))
                    .buffered(jobs.max(1))
                    .try_collect()
                    .await?;
                for child in children {
                    walk(src, &child, jobs, graph, seen_blobs, seen_manifests).await?;
                    graph.manifests.push(child);
                }
            }
        }
        Ok(())
    })
}

async fn fetch_child(src: &dyn Store, d: Descriptor) -> Result<RawManifest> {
    let m = src.get_manifest(&Target::Digest(d.digest.clone())).await?;
    if m.bytes.len() as u64 != d.size {
        return Err(Error::SizeMismatch {
            location: src.location(),
            digest: d.digest,
            expected: d.size,
            actual: m.bytes.len() as u64,
        });
    }
    Ok(RawManifest {
        media_type: if d.media_type.is_empty() {
            m.media_type
        } else {
            d.media_type
        },
        ..m
    })
}

/// What a platform selection turned the root into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// No selection: the root as it is (digest preserved).
    Unchanged,
    /// One platform matched: that platform's own manifest (digest preserved).
    SingleManifest,
    /// Several platforms matched: a new index naming only them (new digest).
    SubsetIndex,
}

/// Applies `--platform` choices to a root manifest.
pub async fn select_platforms(
    src: &dyn Store,
    root: RawManifest,
    platforms: &[Platform],
) -> Result<(RawManifest, Selection)> {
    refuse_unsupported(&root)?;
    if platforms.is_empty() {
        return Ok((root, Selection::Unchanged));
    }
    let manifests = match root.children()? {
        Children::Index { manifests } => manifests,
        Children::Image { config, .. } => {
            single_platform(src, &root, &config, platforms).await?;
            return Ok((root, Selection::Unchanged));
        }
    };
    for p in platforms {
        if !manifests
            .iter()
            .any(|d| d.platform.as_ref().is_some_and(|e| p.selects(e)))
        {
            let available: Vec<String> = manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect();
            return Err(Error::Platform {
                reason: format!(
                    "platform {p} is not in index {}; available: {}",
                    root.digest,
                    available.join(", ")
                ),
            });
        }
    }
    let keep = |d: &Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|e| platforms.iter().any(|p| p.selects(e)))
    };
    let chosen: Vec<&Descriptor> = manifests.iter().filter(|d| keep(d)).collect();
    if chosen.len() == 1 {
        let one = fetch_child(src, chosen[0].clone()).await?;
        return Ok((one, Selection::SingleManifest));
    }
    Ok((root.filter_index(keep)?, Selection::SubsetIndex))
}

/// Docker schema 1 manifests (signed, with v1 history) are refused as unusable input, before
/// anything is sent: ferry copies schema 2 and OCI only.
fn refuse_unsupported(m: &RawManifest) -> Result<()> {
    if m.is_schema1() {
        return Err(Error::Usage {
            arg: format!("manifest {} ({})", m.digest, m.media_type),
            reason: "Docker schema 1 manifests are not supported".into(),
        });
    }
    Ok(())
}

/// Largest image config read to learn a single-platform image's platform.
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// `--platform` on a single-platform image: accepted when every platform asked for is the
/// image's own (read from its config), so the image is copied as it is.
async fn single_platform(
    src: &dyn Store,
    root: &RawManifest,
    config: &Descriptor,
    platforms: &[Platform],
) -> Result<()> {
    let own = config_platform(src, config).await?;
    let Some(own) = own else {
        return Err(Error::Platform {
            reason: format!(
                "--platform was given but {} ({}) is a single-platform manifest whose config \
                 ({}) names no os/architecture",
                root.digest, root.media_type, config.media_type
            ),
        });
    };
    if let Some(p) = platforms.iter().find(|p| !p.selects(&own)) {
        return Err(Error::Platform {
            reason: format!(
                "platform {p} is not in {}: it is a single-platform image for {own}",
                root.digest
            ),
        });
    }
    Ok(())
}

/// The `os`/`architecture`/`variant` of an image config; `None` when it names none (an
/// artifact's config, say).
async fn config_platform(src: &dyn Store, config: &Descriptor) -> Result<Option<Platform>> {
    if config.size > MAX_CONFIG_BYTES {
        return Ok(None);
    }
    let mut stream = src.open_blob(config, 0).await?;
    let mut bytes = Vec::with_capacity(config.size as usize);
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() as u64 > config.size {
            break;
        }
    }
    let actual = crate::Digest::of(&bytes);
    if actual != config.digest || bytes.len() as u64 != config.size {
        return Err(Error::DigestMismatch {
            location: src.location(),
            expected: config.digest.clone(),
            expected_size: config.size,
            actual,
            actual_size: bytes.len() as u64,
        });
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let Ok(p) = serde_json::from_slice::<Probe>(&bytes) else {
        return Ok(None);
    };
    Ok(match (p.os, p.architecture) {
        (Some(os), Some(architecture)) if !os.is_empty() && !architecture.is_empty() => {
            Some(Platform {
                os,
                architecture,
                variant: p.variant.filter(|v| !v.is_empty()),
            })
        }
        _ => None,
    })
}
