//! The `charts:` of a plan file: templates rendered, paths found (relative to the plan file),
//! versions and destinations checked, every problem with its line, before anything is read
//! from a server.

use std::path::{Path, PathBuf};

use marked_yaml::Spanned;

use super::expand::Expander;
use super::plan::{ChartEntry, Position};
use super::template::Vars;
use super::PlannedChart;
use crate::chart::meta::is_helm_semver;

impl Expander<'_> {
    /// One entry of `charts:`; `None` when it has problems (recorded).
    pub(super) fn chart(&mut self, e: &Spanned<ChartEntry>, vars: &Vars) -> Option<PlannedChart> {
        let path = self.chart_path(&e.path, vars);
        let destination = self.chart_destination(&e.destination, vars);
        let version = self.chart_version(e.version.as_ref(), vars, "version");
        let app_version = self.chart_version(e.app_version.as_ref(), vars, "app-version");
        let prov = match &e.prov {
            Some(p) => Some(self.existing_file(p, vars, "provenance file")?),
            None => None,
        };
        let (path, destination) = (path?, destination?);
        let rewrites = e.version.as_ref().or(e.app_version.as_ref());
        if let (Some(at), false) = (rewrites, path.is_dir()) {
            self.problem(
                at,
                format!("{} is a chart archive, published byte for byte: `version` and `app-version` apply to a chart directory", path.display()),
            );
            return None;
        }
        Some(PlannedChart {
            label: format!("{}:{}", self.file, Position::at(e).line),
            file: self.file.to_string(),
            position: Position::at(&e.path),
            path,
            destination,
            version: version.ok()?,
            app_version: app_version.ok()?,
            prov,
        })
    }

    /// Where a relative path of the plan is: beside the plan file.
    fn beside_plan(&self, rendered: &str) -> PathBuf {
        let p = Path::new(rendered);
        match Path::new(self.file).parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    fn existing_file(&mut self, s: &Spanned<String>, vars: &Vars, what: &str) -> Option<PathBuf> {
        let rendered = self.render(s, vars)?;
        let path = self.beside_plan(&rendered);
        if !path.is_file() {
            self.problem(s, format!("{what} {} does not exist", path.display()));
            return None;
        }
        Some(path)
    }

    /// A chart directory (with `Chart.yaml`) or an archive file.
    fn chart_path(&mut self, s: &Spanned<String>, vars: &Vars) -> Option<PathBuf> {
        let rendered = self.render(s, vars)?;
        let path = self.beside_plan(&rendered);
        if !path.exists() {
            self.problem(
                s,
                format!(
                    "chart {} does not exist (a chart directory or a .tgz; relative paths are relative to the plan file)",
                    path.display()
                ),
            );
            return None;
        }
        if path.is_dir() && !path.join("Chart.yaml").is_file() {
            self.problem(
                s,
                format!("chart directory {} has no Chart.yaml", path.display()),
            );
            return None;
        }
        Some(path)
    }

    /// `oci://REGISTRY[/PATH]` or a ChartMuseum repository URL.
    fn chart_destination(&mut self, s: &Spanned<String>, vars: &Vars) -> Option<String> {
        let text = self.render(s, vars)?;
        let ok = match text.strip_prefix("oci://") {
            Some(rest) => !rest.trim_matches('/').is_empty() && !rest.contains(['@', '?', '#']),
            None => url::Url::parse(&text)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some()),
        };
        if !ok {
            self.problem(
                s,
                format!("chart destination {text:?}: expected oci://REGISTRY[/PATH] or a ChartMuseum URL (https://HOST[/PATH])"),
            );
            return None;
        }
        Some(text)
    }

    /// A `version`/`app-version` template; `Err` when it has a problem, `Ok(None)` when absent.
    fn chart_version(
        &mut self,
        s: Option<&Spanned<String>>,
        vars: &Vars,
        key: &str,
    ) -> Result<Option<String>, ()> {
        let Some(s) = s else { return Ok(None) };
        let v = self.render(s, vars).ok_or(())?;
        if key == "version" && !is_helm_semver(&v) {
            self.problem(
                s,
                format!(
                    "chart version template {:?} renders {v:?}, which is not a semantic version",
                    s.as_str()
                ),
            );
            return Err(());
        }
        Ok(Some(v))
    }
}
