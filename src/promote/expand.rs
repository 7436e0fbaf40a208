//! From a plan file to a [`Plan`]: defaults applied, templates rendered, references and digests
//! parsed, and every destination tag checked to come from one image only. All problems are
//! collected (with their lines) before any is reported.

use std::collections::HashMap;
use std::path::Path;

use marked_yaml::Spanned;

use super::error::{PlanProblem, PromoteError};
use super::plan::{self, ImageEntry, PlanFile, Position};
use super::template::Vars;
use super::{Overwrite, Plan, PlannedImage};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{is_valid_tag, ImageRef, RegistryRef};
use crate::referrers::ReferrerOptions;

impl Plan {
    /// Reads and checks a plan file; `vars` (from `--var`) override the file's values.
    pub fn load(path: &Path, vars: &Vars) -> Result<Plan> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::from(PromoteError::Plan {
                file: file.clone(),
                problems: vec![Position::default().problem(format!("cannot read the plan: {e}"))],
            })
        })?;
        Plan::parse(&file, &text, vars)
    }

    /// Checks plan text; `file` names it in problems and image labels.
    pub fn parse(file: &str, text: &str, vars: &Vars) -> Result<Plan> {
        let parsed = plan::parse(file, text)?;
        let mut x = Expander {
            file,
            cli: vars,
            problems: Vec::new(),
        };
        let plan = x.plan(&parsed);
        if x.problems.is_empty() {
            return Ok(plan);
        }
        x.problems.sort_by_key(|p| (p.line, p.column));
        Err(PromoteError::Plan {
            file: file.to_string(),
            problems: x.problems,
        }
        .into())
    }
}

pub(super) struct Expander<'a> {
    pub(super) file: &'a str,
    cli: &'a Vars,
    problems: Vec<PlanProblem>,
}

fn vars_of(map: &std::collections::BTreeMap<String, Spanned<String>>, base: &Vars) -> Vars {
    let mut v = base.clone();
    for (k, x) in map {
        v.set(k, x);
    }
    v
}

impl Expander<'_> {
    pub(super) fn problem<T>(&mut self, at: &Spanned<T>, message: impl Into<String>) {
        self.problems.push(Position::at(at).problem(message));
    }

    fn plan(&mut self, f: &PlanFile) -> Plan {
        let plan_vars = vars_of(&f.vars, &Vars::new());
        let no_images = Vec::new();
        let entries = f.images.as_ref().map_or(&no_images, |i| &**i);
        match &f.images {
            Some(i) if i.is_empty() && f.charts.is_empty() => {
                self.problem(i, "the plan has no images and no charts")
            }
            None if f.charts.is_empty() => self.problems.push(
                Position { line: 1, column: 1 }
                    .problem("a plan lists `images:` (and perhaps `charts:`)"),
            ),
            _ => {}
        }
        let mut images = Vec::new();
        for entry in entries {
            let vars = vars_of(&entry.vars, &plan_vars).layered(self.cli);
            let line = Position::at(entry).line;
            if let Some(image) = self.image(f, entry, &vars, format!("{}:{line}", self.file)) {
                images.push((entry, image));
            }
        }
        self.check_duplicates(&images);
        let mut limits: Vec<(String, usize)> =
            f.limits.iter().map(|(k, v)| (k.to_string(), **v)).collect();
        limits.sort();
        let chart_vars = plan_vars.layered(self.cli);
        let charts = f
            .charts
            .iter()
            .filter_map(|c| self.chart(c, &chart_vars))
            .collect();
        Plan {
            images: images.into_iter().map(|(_, i)| i).collect(),
            charts,
            limits,
        }
    }

    fn image(
        &mut self,
        f: &PlanFile,
        e: &ImageEntry,
        vars: &Vars,
        label: String,
    ) -> Option<PlannedImage> {
        let source = self.reference(&e.source, vars, "source");
        let destination = source
            .as_ref()
            .and_then(|s| self.destination(f, e, s, vars));
        let tags = self.tags(f, e, vars);
        let expect_digest = e.expect_digest.as_ref().and_then(|d| {
            d.parse::<Digest>()
                .map_err(|err| self.problem(d, format!("expect-digest: {err}")))
                .ok()
        });
        let overwrite =
            self.overwrite(e.overwrite.as_ref().or(f.defaults.overwrite.as_ref()), vars);
        Some(PlannedImage {
            label,
            source: source?,
            destination: destination?,
            tags: tags?,
            expect_digest,
            overwrite,
            referrers: referrers(f, e),
        })
    }

    pub(super) fn render(&mut self, s: &Spanned<String>, vars: &Vars) -> Option<String> {
        vars.render(s).map_err(|m| self.problem(s, m)).ok()
    }

    fn reference(&mut self, s: &Spanned<String>, vars: &Vars, what: &str) -> Option<ImageRef> {
        let text = self.render(s, vars)?;
        text.parse::<ImageRef>()
            .map_err(|e| self.problem(s, format!("{what}: {e}")))
            .ok()
    }

    /// The destination repository: a full reference, a repository under `defaults.registry`
    /// and `defaults.prefix`, or (when absent) the source repository there.
    fn destination(
        &mut self,
        f: &PlanFile,
        e: &ImageEntry,
        source: &ImageRef,
        vars: &Vars,
    ) -> Option<ImageRef> {
        let (text, at) = match &e.destination {
            Some(d) => (self.render(d, vars)?, d),
            None => {
                let ImageRef::Registry(src) = source else {
                    self.problem(
                        &e.source,
                        "an image from an OCI layout needs a `destination`",
                    );
                    return None;
                };
                (src.repository.clone(), &e.source)
            }
        };
        let full = if names_registry(&text) || text.starts_with("oci:") {
            text
        } else {
            let Some(registry) = &f.defaults.registry else {
                self.problem(at, format!("no destination registry for {text:?}: write it in `destination` or set defaults.registry"));
                return None;
            };
            let registry = self.render(registry, vars)?;
            let prefix = match &f.defaults.prefix {
                Some(p) => format!("{}/", self.render(p, vars)?.trim_matches('/')),
                None => String::new(),
            };
            format!("{}/{prefix}{text}", registry.trim_end_matches('/'))
        };
        let r = full
            .parse::<ImageRef>()
            .map_err(|err| self.problem(at, format!("destination: {err}")))
            .ok()?;
        let (tag, digest) = match &r {
            ImageRef::Registry(r) => (r.tag.is_some(), r.digest.is_some()),
            ImageRef::Layout(l) => (l.tag.is_some(), l.digest.is_some()),
        };
        if tag || digest {
            self.problem(
                at,
                format!("destination {full:?} names a tag or digest: put tags under `tags:`"),
            );
            return None;
        }
        Some(r)
    }

    fn tags(&mut self, f: &PlanFile, e: &ImageEntry, vars: &Vars) -> Option<Vec<String>> {
        let Some(templates) = e.tags.as_ref().or(f.defaults.tags.as_ref()) else {
            self.problem(&e.source, "no tags: give `tags:` here or in `defaults:`");
            return None;
        };
        if templates.is_empty() {
            self.problem(&e.source, "the tag list is empty");
            return None;
        }
        let mut tags = Vec::new();
        let mut ok = true;
        for t in templates {
            match self.render(t, vars) {
                Some(tag) if is_valid_tag(&tag) => {
                    if !tags.contains(&tag) {
                        tags.push(tag)
                    }
                }
                Some(tag) => {
                    self.problem(t, format!("tag template {:?} renders {tag:?}, which is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})", t.as_str()));
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(tags)
    }

    fn overwrite(&mut self, rule: Option<&Vec<Spanned<String>>>, vars: &Vars) -> Overwrite {
        let Some(rule) = rule else {
            return Overwrite::Never;
        };
        if rule.iter().any(|t| t.as_str() == "*") {
            return Overwrite::Any;
        }
        let tags = rule.iter().filter_map(|t| self.render(t, vars)).collect();
        Overwrite::Tags(tags)
    }

    /// One destination tag, one image: a second image writing the same tag is a problem.
    fn check_duplicates(&mut self, images: &[(&Spanned<ImageEntry>, PlannedImage)]) {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for (entry, image) in images {
            let repo = repository_key(&image.destination);
            let line = Position::at(*entry).line;
            for tag in &image.tags {
                match seen.get(&(repo.clone(), tag.clone())) {
                    Some(first) => {
                        let at = entry
                            .tags
                            .as_ref()
                            .and_then(|ts| ts.first())
                            .map(Position::at);
                        let pos = at.unwrap_or_else(|| Position::at(*entry));
                        self.problems.push(pos.problem(format!(
                            "{repo}:{tag} is also promoted by the image at line {first}: one destination tag, one source"
                        )));
                    }
                    None => {
                        seen.insert((repo.clone(), tag.clone()), line);
                    }
                }
            }
        }
    }
}

/// Whether a reference's first component is a registry host (`.` or `:` in it, or `localhost`).
fn names_registry(s: &str) -> bool {
    let s = s.strip_prefix("docker://").unwrap_or(s);
    match s.split_once('/') {
        Some((first, _)) => first.contains(['.', ':']) || first == "localhost",
        None => false,
    }
}

/// A destination repository's identity for duplicate checks.
fn repository_key(r: &ImageRef) -> String {
    match r {
        ImageRef::Registry(RegistryRef {
            registry,
            repository,
            ..
        }) => format!("{registry}/{repository}"),
        ImageRef::Layout(l) => format!("oci:{}", l.path.display()),
    }
}

/// The image's `referrers:` / `referrers-type:` (each replacing the defaults' own key);
/// `None` when neither the image nor the defaults say anything (the run's options apply).
fn referrers(f: &PlanFile, e: &ImageEntry) -> Option<ReferrerOptions> {
    let enabled = e.referrers.as_ref().or(f.defaults.referrers.as_ref());
    let types = e
        .referrers_type
        .as_ref()
        .or(f.defaults.referrers_type.as_ref());
    if enabled.is_none() && types.is_none() {
        return None;
    }
    let artifact_types: Vec<String> = types
        .map(|t| t.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    Some(ReferrerOptions {
        // A type filter alone means "these referrers".
        enabled: enabled.is_none_or(|b| **b),
        artifact_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_keys_per_image_replace_the_defaults() {
        let text =
            "defaults:\n  registry: r.io\n  tags: [x]\n  referrers-type: [application/spdx+json]\n\
                    images:\n  - source: a/b:1\n  - source: a/c:1\n    referrers: false\n";
        let plan = Plan::parse("p.yaml", text, &Vars::new()).unwrap();
        let spdx = ReferrerOptions {
            enabled: true,
            artifact_types: vec!["application/spdx+json".into()],
        };
        assert_eq!(plan.images[0].referrers, Some(spdx));
        let off = plan.images[1].referrers.as_ref().unwrap();
        assert!(!off.enabled);
        let plain = Plan::parse(
            "p.yaml",
            "defaults: {registry: d.io}\nimages:\n  - source: r.io/a:1\n    tags: [x]\n",
            &Vars::new(),
        )
        .unwrap();
        assert_eq!(plain.images[0].referrers, None, "the run's options apply");
        let bad = Plan::parse("p.yaml", "defaults: {registry: d.io}\nimages:\n  - source: r.io/a:1\n    tags: [x]\n    referrers: maybe\n", &Vars::new());
        assert!(bad.unwrap_err().to_string().contains("p.yaml"));
    }

    #[test]
    fn registry_detection() {
        assert!(names_registry("prod.example.com/team/api"));
        assert!(names_registry("127.0.0.1:5000/api"));
        assert!(names_registry("localhost/api"));
        assert!(!names_registry("team/api"));
        assert!(!names_registry("api"));
    }
}
