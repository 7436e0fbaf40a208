//! From config entries to units of work: one per source repository (patterns resolved through
//! the catalog, once per registry), each with its destination repository or layout.

use std::collections::HashMap;
use std::path::PathBuf;

use super::config::{glob_match, repository_ref};
use super::run::Endpoints;
use super::{Destination, DestinationSpec, SourceSpec, SyncPlan};
use crate::error::Error;
use crate::reference::{ImageRef, LayoutKind, LayoutRef, RegistryRef};
use crate::store::Target;

/// One source repository to sync, and where to.
#[derive(Clone, Debug)]
pub struct SyncUnit {
    /// Index of the config entry.
    pub entry: usize,
    pub label: String,
    /// The source repository (no tag, no digest).
    pub source: RegistryRef,
    /// The destination repository or layout (no tag, no digest).
    pub destination: ImageRef,
    /// `images:` entries: exactly these; `None`: the entry's tag filter decides.
    pub targets: Option<Vec<Target>>,
}

impl SyncUnit {
    /// `registry/repository` of the source: what shards are decided by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.source.registry, self.source.repository)
    }
}

/// Every unit of `plan`, in config order; entries whose catalog could not be read give an
/// error (labelled) instead.
pub(super) async fn units(
    plan: &SyncPlan,
    ends: &dyn Endpoints,
) -> (Vec<SyncUnit>, Vec<(String, Error)>) {
    let mut catalogs: HashMap<String, Option<Vec<String>>> = HashMap::new();
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (i, e) in plan.entries.iter().enumerate() {
        let unit = |source: RegistryRef, rel: &str, targets| SyncUnit {
            entry: i,
            label: e.label.clone(),
            destination: destination(&e.destination, rel),
            source,
            targets,
        };
        match &e.source {
            SourceSpec::Repositories {
                registry,
                namespace,
                repositories,
            } => {
                let mut names: Vec<String> = Vec::new();
                for r in repositories {
                    if !r.contains('*') {
                        names.push(r.trim_matches('/').to_string());
                        continue;
                    }
                    if !catalogs.contains_key(registry) {
                        let listed = match ends.catalog(registry).await {
                            Ok(all) => Some(all),
                            Err(err) => {
                                errors.push((e.label.clone(), err));
                                None
                            }
                        };
                        catalogs.insert(registry.clone(), listed);
                    }
                    if let Some(all) = &catalogs[registry] {
                        names.extend(matching(all, namespace, r));
                    }
                }
                let mut seen = std::collections::HashSet::new();
                for rel in names.into_iter().filter(|n| seen.insert(n.clone())) {
                    let repo = join(namespace, &rel);
                    out.push(unit(repository_ref(registry, &repo), &rel, None));
                }
            }
            SourceSpec::Images(images) => {
                let mut by_repo: Vec<(RegistryRef, Vec<Target>)> = Vec::new();
                for img in images {
                    let target = match (&img.digest, &img.tag) {
                        (Some(d), _) => Target::Digest(d.clone()),
                        (None, Some(t)) => Target::Tag(t.clone()),
                        (None, None) => Target::Tag("latest".into()),
                    };
                    let repo = repository_ref(&img.registry, &img.repository);
                    match by_repo.iter_mut().find(|(r, _)| *r == repo) {
                        Some((_, t)) if t.contains(&target) => {}
                        Some((_, t)) => t.push(target),
                        None => by_repo.push((repo, vec![target])),
                    }
                }
                for (repo, targets) in by_repo {
                    let rel = repo.repository.rsplit('/').next().unwrap_or("").to_string();
                    let rel = match e.destination.mapping.get(&repo.repository) {
                        Some(m) => m.clone(),
                        None => rel,
                    };
                    out.push(unit(repo, &rel, Some(targets)));
                }
            }
        }
    }
    (out, errors)
}

/// Catalog names under `namespace` whose path below it matches `pattern`, relative.
fn matching(all: &[String], namespace: &str, pattern: &str) -> Vec<String> {
    all.iter()
        .filter_map(|name| match namespace {
            "" => Some(name.as_str()),
            ns => name.strip_prefix(ns).and_then(|r| r.strip_prefix('/')),
        })
        .filter(|rel| glob_match(pattern.trim_matches('/'), rel))
        .map(str::to_string)
        .collect()
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// The destination of the source repository `rel` (relative to its namespace).
fn destination(spec: &DestinationSpec, rel: &str) -> ImageRef {
    let path = spec.mapping.get(rel).map(String::as_str).unwrap_or(rel);
    match &spec.base {
        Destination::Registry { registry, prefix } => {
            ImageRef::Registry(repository_ref(registry, &join(prefix, path)))
        }
        Destination::Local { dir, kind } => {
            let mut p: PathBuf = dir.join(path);
            if *kind == LayoutKind::Archive {
                p.set_extension("tar");
            }
            ImageRef::Layout(LayoutRef {
                path: p,
                tag: None,
                digest: None,
                kind: *kind,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_match_below_the_namespace() {
        let all: Vec<String> = [
            "team/api",
            "team/web",
            "teamx/api",
            "other/team/api",
            "base",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(matching(&all, "team", "*"), vec!["api", "web"]);
        assert_eq!(matching(&all, "", "team/*"), vec!["team/api", "team/web"]);
        assert_eq!(matching(&all, "team", "w*"), vec!["web"]);
        assert_eq!(matching(&all, "", "*").len(), 5);
    }

    #[test]
    fn destinations_keep_paths_below_the_prefix() {
        let mut spec = DestinationSpec {
            base: Destination::Registry {
                registry: "m.io".into(),
                prefix: "mirror".into(),
            },
            mapping: Default::default(),
        };
        assert_eq!(destination(&spec, "a/b").to_string(), "m.io/mirror/a/b");
        spec.mapping.insert("a/b".into(), "c".into());
        assert_eq!(destination(&spec, "a/b").to_string(), "m.io/mirror/c");
        spec.base = Destination::Local {
            dir: "/tmp/m".into(),
            kind: LayoutKind::Archive,
        };
        assert_eq!(
            destination(&spec, "x").to_string(),
            "oci-archive:/tmp/m/x.tar"
        );
    }
}
