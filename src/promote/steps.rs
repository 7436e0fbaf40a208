//! The steps of one image: resolve and guard (phase 1), make every blob and manifest present
//! (phase 2), look the tags up again, write them and read them back (phase 3).

use super::error::PromoteError;
use super::guard;
use super::report::Route;
use super::run::{reference, route, Resolved, Slot};
use super::survey;
use super::{Job, Promoter};
use crate::copy::referrers::{self, subjects};
use crate::copy::{collect, Graph, Pushed, RootKnown, Selection};
use crate::error::Result;
use crate::store::Target;

impl Promoter {
    /// Phase 1: the source manifest, the expected digest, the tag guards, the graph to push.
    pub(super) async fn resolve(&self, job: &Job, dry_run: bool) -> Result<Resolved> {
        let (src, dst) = (job.source.as_ref(), job.destination.as_ref());
        let root = match &job.manifest {
            Some(m) => m.clone(),
            None => src.get_manifest(&job.target).await?,
        };
        if let Some(want) = &job.expect_digest {
            if want != &root.digest {
                return Err(PromoteError::UnexpectedDigest {
                    source_ref: reference(src, &job.target),
                    expected: want.clone(),
                    actual: root.digest.clone(),
                }
                .into());
            }
        }
        let route = route(src, dst);
        let force = self.options.force;
        let root_target = Target::Digest(root.digest.clone());
        let (tags, present) = futures::try_join!(
            guard::classify(
                dst,
                &root.digest,
                &job.tags,
                &job.seen_tags,
                &job.overwrite,
                force
            ),
            async {
                match route {
                    Route::SameRepository => Ok(true),
                    _ => dst.resolve(&root_target).await.map(|d| d.is_some()),
                }
            }
        )?;
        let refused = tags.iter().any(|t| t.action == guard::TagAction::Refused);
        let mut resolved = Resolved {
            root,
            route,
            graph: None,
            tags,
            presence: Vec::new(),
            found: Vec::new(),
            root_present: present,
        };
        let jobs = self.options.jobs;
        let referrers = job.referrers.as_ref().unwrap_or(&self.options.referrers);
        let with_referrers = referrers.enabled && route != Route::SameRepository;
        if dry_run && route != Route::SameRepository {
            let mut graph = collect(src, &resolved.root, jobs).await?;
            let image_blobs = graph.blobs.len();
            if with_referrers {
                let subjects = subjects(&resolved.root, Selection::Unchanged, Some(&graph));
                referrers::add(src, dst, &mut graph, subjects, referrers, jobs).await?;
            }
            resolved.presence = match present && graph.blobs.len() == image_blobs {
                true => survey::all_present(&graph.blobs),
                false => survey::presence(dst, &graph.blobs, jobs).await?,
            };
            resolved.found = std::mem::take(&mut graph.found);
        } else if !dry_run && !refused {
            let mut graph = match present {
                true => None,
                false => Some(collect(src, &resolved.root, jobs).await?),
            };
            if with_referrers {
                let subjects = subjects(&resolved.root, Selection::Unchanged, graph.as_ref());
                let g = graph.get_or_insert_with(Graph::default);
                referrers::add(src, dst, g, subjects, referrers, jobs).await?;
                resolved.found = std::mem::take(&mut g.found);
            }
            resolved.graph = graph;
        }
        Ok(resolved)
    }

    /// Start of phase 3: the referrers made findable from their subjects at the destination
    /// (fallback tags merged, cosign tags written), before any release tag.
    pub(super) async fn link_referrers(&self, job: &Job, slot: &mut Slot) -> Result<()> {
        let Some(graph) = slot.resolved.as_ref().and_then(|r| r.graph.as_ref()) else {
            return Ok(());
        };
        if graph.links.is_empty() {
            return Ok(());
        }
        let written = referrers::link(job.destination.as_ref(), &graph.links).await?;
        slot.report.referrer_tags = written;
        Ok(())
    }

    /// Phase 2: every blob and manifest present at the destination (root by digest).
    pub(super) async fn prepare(&self, i: usize, job: &Job, slot: &Slot) -> Result<Pushed> {
        let Some(res) = &slot.resolved else {
            return Ok(Pushed::default());
        };
        let Some(graph) = &res.graph else {
            return Ok(Pushed::default());
        };
        let copier = self.copier.sharing(self.reporter.image(i));
        let (src, dst) = (job.source.as_ref(), job.destination.as_ref());
        copier
            .push_graph_with(
                src,
                dst,
                &res.root,
                graph,
                self.options.jobs,
                match res.root_present {
                    true => RootKnown::Unknown,
                    false => RootKnown::Absent,
                },
            )
            .await
    }

    /// Before writing tags after a preparation that took a while: look them up again.
    pub(super) async fn recheck(&self, job: &Job, slot: &mut Slot) -> Result<()> {
        let Some(res) = slot.resolved.as_mut() else {
            return Ok(());
        };
        let dst = job.destination.as_ref();
        let (digest, force) = (res.root.digest.clone(), self.options.force);
        guard::recheck(dst, &digest, &mut res.tags, &job.overwrite, force).await?;
        match guard::refusals(&dst.location(), &digest, &res.tags) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Phase 3: the tags that need writing, in one call (one request where the registry
    /// takes several tags at once).
    pub(super) async fn write_tags(&self, job: &Job, slot: &mut Slot) -> Result<()> {
        let Some(res) = slot.resolved.as_mut() else {
            return Ok(());
        };
        let names: Vec<String> = res
            .tags
            .iter()
            .filter(|t| t.action.writes())
            .map(|t| t.tag.clone())
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        job.destination.put_manifest(&res.root, &names).await?;
        for t in res.tags.iter_mut().filter(|t| t.action.writes()) {
            t.written = true;
        }
        // No registry offers compare-and-swap: a concurrent writer is caught by reading back.
        guard::verify_written(job.destination.as_ref(), &res.root.digest, &names).await
    }
}
