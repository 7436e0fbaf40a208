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

#[cfg(test)]
mod tests {
    use crate::promote::{Plan, Vars};

    fn dir_with_chart() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("deploy/chart")).unwrap();
        std::fs::write(
            dir.path().join("deploy/chart/Chart.yaml"),
            "apiVersion: v2\nname: api\nversion: 0.1.0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("api-1.0.0.tgz"), b"not read yet").unwrap();
        dir
    }

    fn problems(file: &str, text: &str) -> String {
        use crate::promote::PromoteError;
        match Plan::parse(file, text, &Vars::new()) {
            Err(e) if matches!(e.promotion(), Some(PromoteError::Plan { .. })) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn charts_expand_beside_the_plan_with_templates() {
        let dir = dir_with_chart();
        let file = dir.path().join("release.yaml").display().to_string();
        let text = "vars: {version: 1.4.2}\ncharts:\n  - path: deploy/chart\n    destination: https://charts.example.com/team\n    version: \"{version}\"\n    app-version: \"v{version}\"\n  - path: api-{major}.0.0.tgz\n    destination: oci://prod.example.com/charts\n";
        let mut cli = Vars::new();
        cli.set("version", "1.5.0");
        let plan = Plan::parse(&file, text, &cli).unwrap();
        assert!(plan.images.is_empty());
        let [dir_chart, tgz] = &plan.charts[..] else {
            panic!("{:?}", plan.charts)
        };
        assert_eq!(dir_chart.path, dir.path().join("deploy/chart"));
        assert_eq!(dir_chart.version.as_deref(), Some("1.5.0"));
        assert_eq!(dir_chart.app_version.as_deref(), Some("v1.5.0"));
        assert_eq!(dir_chart.label, format!("{file}:3"));
        assert_eq!(
            (dir_chart.position.line, dir_chart.position.column),
            (3, 11)
        );
        assert_eq!(tgz.path, dir.path().join("api-1.0.0.tgz"));
        assert_eq!(tgz.destination, "oci://prod.example.com/charts");
    }

    #[test]
    fn chart_problems_point_at_their_value() {
        let dir = dir_with_chart();
        let file = dir.path().join("p.yaml").display().to_string();
        let e = problems(
            &file,
            "charts:\n  - path: api-1.0.0.tgz\n    destination: oci://r.io/c\n    version: 1.0.0\n",
        );
        assert!(e.contains(":4:14: ") && e.contains("byte for byte"), "{e}");
        let e = problems(
            &file,
            "charts:\n  - path: deploy\n    destination: oci://r.io/c\n  - path: deploy/chart\n    destination: \"oci://\"\n    prov: nope.prov\n",
        );
        assert!(
            e.contains(":2:11: ") && e.contains("has no Chart.yaml"),
            "{e}"
        );
        assert!(
            e.contains(":5:18: ") && e.contains("chart destination"),
            "{e}"
        );
        assert!(
            e.contains(":6:11: ") && e.contains("provenance file"),
            "{e}"
        );
        let e = problems(&file, "images: []\n");
        assert!(e.contains("no images and no charts"), "{e}");
        let e = problems(&file, "vars: {}\n");
        assert!(e.contains(":1:1: ") && e.contains("`images:`"), "{e}");
    }
}
