//! Referrers in the copy graph: what refers to each manifest copied (the index and every
//! platform manifest), followed to referrers of referrers, plus cosign's legacy
//! `sha256-<hex>.sig|.att|.sbom` tags. Their blobs and manifests join the graph (pushed after
//! their subject); what makes them findable at the destination (the fallback tag, legacy tags)
//! is written in the tag phase by [`link`].

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::graph::{collect, Graph, Selection};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Children, RawManifest};
use crate::referrers::{cosign_tags, Referrer, ReferrerOptions};
use crate::store::{Linked, Store, Target};

/// Fallback tags written at once in the tag phase.
const LINKS_IN_FLIGHT: usize = 4;

/// Levels of referrers of referrers followed (a signature on an SBOM on an image is 2).
const MAX_DEPTH: usize = 8;

/// One referrer found at the source, for reports.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FoundReferrer {
    /// The manifest it refers to.
    pub subject: Digest,
    #[serde(flatten)]
    pub referrer: Referrer,
    /// The cosign legacy tag it was found under (`sha256-<hex>.sig`), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Already at the destination (nothing to push).
    pub present: bool,
}

/// What the tag phase writes for referrers.
#[derive(Debug, Default)]
pub struct Links {
    /// Per subject, the referrers the destination must list.
    pub subjects: Vec<(Digest, Vec<Referrer>)>,
    /// Legacy cosign tags whose destination tag does not already name the manifest.
    pub legacy_tags: Vec<(String, RawManifest)>,
}

impl Links {
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.legacy_tags.is_empty()
    }
}

/// The manifests whose referrers travel: the root (unless it is a new subset index, which
/// nothing can refer to yet) and every manifest under it (`graph`, when collected; else the
/// root's own entries).
pub fn subjects(root: &RawManifest, selection: Selection, graph: Option<&Graph>) -> Vec<Digest> {
    let mut out = Vec::new();
    if selection != Selection::SubsetIndex {
        out.push(root.digest.clone());
    }
    match graph {
        Some(g) if !g.manifests.is_empty() => {
            out.extend(g.manifests.iter().map(|m| m.digest.clone()))
        }
        _ => {
            if let Ok(Children::Index { manifests }) = root.children() {
                out.extend(manifests.into_iter().map(|d| d.digest));
            }
        }
    }
    out
}

/// Finds the referrers of `subjects` at `src` (and theirs, down to [`MAX_DEPTH`]) and the
/// legacy cosign tags, and adds to `graph` what `dst` lacks: blobs, child manifests and the
/// referrer manifests themselves (subjects first), plus the links for the tag phase.
pub async fn add(
    src: &dyn Store,
    dst: &dyn Store,
    graph: &mut Graph,
    subjects: Vec<Digest>,
    opts: &ReferrerOptions,
    jobs: usize,
) -> Result<()> {
    if !opts.enabled || subjects.is_empty() {
        return Ok(());
    }
    let jobs = jobs.max(1);
    let types = opts.artifact_types.as_slice();
    let mut seen: HashSet<Digest> = subjects.iter().cloned().collect();
    let mut all_subjects = subjects.clone();
    let mut level = subjects;
    let mut found: Vec<(Digest, Referrer)> = Vec::new();
    let mut links: Vec<(Digest, Vec<Digest>)> = Vec::new();
    // One tags list serves the fallback tags (not asked for when not listed) and cosign's.
    let tags: HashSet<String> = src.list_tags().await?.into_iter().collect();
    let tags = &tags;
    for _ in 0..MAX_DEPTH {
        if level.is_empty() {
            break;
        }
        let lists: Vec<(Digest, Vec<Referrer>)> = futures::stream::iter(level)
            .map(|s| async move {
                let l = src.find_referrers(&s, types, Some(tags)).await?;
                Ok::<_, Error>((s, l))
            })
            .buffered(jobs)
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for (subject, list) in lists {
            let mut wanted: Vec<Digest> = Vec::new();
            for r in list.into_iter().filter(|r| opts.wants(r)) {
                if !wanted.contains(&r.digest) {
                    wanted.push(r.digest.clone());
                }
                found.push((subject.clone(), r.clone()));
                if seen.insert(r.digest.clone()) {
                    next.push(r.digest.clone());
                }
            }
            if !wanted.is_empty() {
                links.push((subject, wanted));
            }
        }
        all_subjects.extend(next.iter().cloned());
        level = next;
    }
    // Each referrer manifest once, in discovery order (subjects before their referrers).
    let mut unique: Vec<(Digest, Referrer)> = Vec::new();
    for (s, r) in found {
        if !unique.iter().any(|(_, u)| u.digest == r.digest) {
            unique.push((s, r));
        }
    }
    let fetched: Vec<Option<(RawManifest, bool)>> = futures::stream::iter(&unique)
        .map(|(_, r)| fetch(src, dst, r))
        .buffered(jobs)
        .try_collect()
        .await?;
    // A list entry whose manifest is gone from the source (a stale fallback index) is skipped.
    let (unique, fetched): (Vec<_>, Vec<_>) = unique
        .into_iter()
        .zip(fetched)
        .filter_map(|(u, f)| f.map(|f| (u, f)))
        .unzip();
    // The destination lists each referrer as its manifest says (artifactType hoisted,
    // annotations copied), whatever the source's list said.
    let entries: HashMap<Digest, Referrer> = fetched
        .iter()
        .map(|(m, _)| (m.digest.clone(), Referrer::of(m)))
        .collect();
    for (subject, digests) in links {
        let list: Vec<Referrer> = digests
            .iter()
            .filter_map(|d| entries.get(d).cloned())
            .collect();
        if !list.is_empty() {
            graph.links.subjects.push((subject, list));
        }
    }
    for ((subject, r), (m, present)) in unique.into_iter().zip(fetched) {
        graph.found.push(FoundReferrer {
            subject,
            referrer: entries[&r.digest].clone(),
            tag: None,
            present,
        });
        if !present {
            absorb(src, graph, m, jobs).await?;
        }
    }
    legacy_tags(src, dst, graph, &all_subjects, tags, opts, jobs).await
}

/// A referrer's manifest from `src` (its size checked against the list's) and whether `dst`
/// has it; `None` when the source lists it but does not have it.
async fn fetch(
    src: &dyn Store,
    dst: &dyn Store,
    r: &Referrer,
) -> Result<Option<(RawManifest, bool)>> {
    let target = Target::Digest(r.digest.clone());
    let (m, present) = futures::join!(src.get_manifest(&target), dst.resolve(&target));
    let m = match m {
        Ok(m) => m,
        Err(e) if e.is_not_found() => {
            tracing::warn!(location = %src.location(), digest = %r.digest, "a referrers list names a manifest the source does not have; skipped");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let present = present?;
    if m.bytes.len() as u64 != r.size {
        return Err(Error::SizeMismatch {
            location: src.location(),
            digest: r.digest.clone(),
            expected: r.size,
            actual: m.bytes.len() as u64,
        });
    }
    Ok(Some((m, present.is_some())))
}

/// Adds `m` (a manifest the destination lacks) to the graph: its blobs and children not yet
/// in it, then `m` itself, to be pushed after the root.
async fn absorb(src: &dyn Store, graph: &mut Graph, m: RawManifest, jobs: usize) -> Result<()> {
    let sub = collect(src, &m, jobs).await?;
    let mut blobs: HashSet<Digest> = graph.blobs.iter().map(|b| b.digest.clone()).collect();
    for b in sub.blobs {
        if blobs.insert(b.digest.clone()) {
            graph.blobs.push(b);
        }
    }
    graph.blobs.sort_by_key(|d| std::cmp::Reverse(d.size));
    let mut manifests: HashSet<Digest> = graph
        .manifests
        .iter()
        .chain(&graph.referrers)
        .map(|m| m.digest.clone())
        .collect();
    for c in sub.manifests.into_iter().chain(std::iter::once(m)) {
        if manifests.insert(c.digest.clone()) {
            graph.referrers.push(c);
        }
    }
    Ok(())
}

/// cosign's `sha256-<hex>.sig|.att|.sbom` tags of every subject (among the source's `tags`).
async fn legacy_tags(
    src: &dyn Store,
    dst: &dyn Store,
    graph: &mut Graph,
    subjects: &[Digest],
    tags: &HashSet<String>,
    opts: &ReferrerOptions,
    jobs: usize,
) -> Result<()> {
    let wanted: Vec<(Digest, String)> = subjects
        .iter()
        .flat_map(|s| cosign_tags(s).into_iter().map(move |t| (s.clone(), t)))
        .filter(|(_, t)| tags.contains(t))
        .collect();
    let fetched: Vec<(Digest, String, RawManifest, Option<Digest>)> = futures::stream::iter(wanted)
        .map(|(s, t)| async move {
            let target = Target::Tag(t.clone());
            let (m, at) = futures::try_join!(src.get_manifest(&target), dst.resolve(&target))?;
            Ok::<_, Error>((s, t, m, at.map(|d| d.digest)))
        })
        .buffered(jobs.max(1))
        .try_collect()
        .await?;
    let mut absent: HashMap<Digest, bool> = HashMap::new();
    for (subject, tag, m, at) in fetched {
        let r = Referrer::of(&m);
        if !opts.wants(&r) {
            continue;
        }
        let current = at.as_ref() == Some(&m.digest);
        graph.found.push(FoundReferrer {
            subject,
            referrer: r,
            tag: Some(tag.clone()),
            present: current,
        });
        if current {
            continue;
        }
        let missing = match absent.get(&m.digest) {
            Some(v) => *v,
            None => {
                let v = dst
                    .resolve(&Target::Digest(m.digest.clone()))
                    .await?
                    .is_none();
                absent.insert(m.digest.clone(), v);
                v
            }
        };
        if missing && !graph.referrers.iter().any(|x| x.digest == m.digest) {
            absorb(src, graph, m.clone(), jobs).await?;
        }
        graph.links.legacy_tags.push((tag, m));
    }
    Ok(())
}

/// The tag phase for referrers: each subject's list made findable at `dst` (its fallback tag
/// merged and written where the registry does not list referrers itself), then each legacy
/// tag. Returns the tags written.
pub async fn link(dst: &dyn Store, links: &Links) -> Result<Vec<String>> {
    // Each subject has its own fallback tag: they are written side by side.
    let linked: Vec<(&Digest, Linked)> = futures::stream::iter(&links.subjects)
        .map(|(subject, referrers)| async move {
            dst.link_referrers(subject, referrers)
                .await
                .map(|l| (subject, l))
        })
        .buffered(LINKS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut written: Vec<String> = linked
        .into_iter()
        .filter(|(_, l)| *l == Linked::Updated)
        .map(|(s, _)| crate::referrers::fallback_tag(s))
        .collect();
    for (tag, m) in &links.legacy_tags {
        dst.put_manifest(m, std::slice::from_ref(tag)).await?;
        written.push(tag.clone());
    }
    Ok(written)
}
