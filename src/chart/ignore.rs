//! `.helmignore`: gitignore-style rules read from the chart's top directory, plus Helm's default
//! rule that drops dotfiles under `templates/`.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::error::ChartError;

/// The file Helm reads ignore rules from.
pub const HELMIGNORE: &str = ".helmignore";

/// Helm's `AddDefaults`: added after the user's rules, so it cannot be negated.
const DEFAULT_RULE: &str = "templates/.?*";

/// The ignore rules of one chart directory.
pub struct IgnoreRules {
    rules: Gitignore,
}

impl IgnoreRules {
    /// Reads `<dir>/.helmignore` if present; `chart` names the chart in errors.
    pub fn load(dir: &Path, chart: &str) -> Result<IgnoreRules, ChartError> {
        let mut builder = GitignoreBuilder::new(dir);
        let file = dir.join(HELMIGNORE);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                for line in text.lines() {
                    builder
                        .add_line(Some(file.clone()), line)
                        .map_err(|e| ChartError::invalid(chart, format!("{HELMIGNORE}: {e}")))?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ChartError::io(&file, e)),
        }
        builder
            .add_line(None, DEFAULT_RULE)
            .expect("the default rule parses");
        let rules = builder
            .build()
            .map_err(|e| ChartError::invalid(chart, format!("{HELMIGNORE}: {e}")))?;
        Ok(IgnoreRules { rules })
    }

    /// Whether `rel` (a `/`-separated path relative to the chart directory) is ignored.
    pub fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        self.rules.matched(rel, is_dir).is_ignore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> (tempfile::TempDir, IgnoreRules) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HELMIGNORE), text).unwrap();
        let r = IgnoreRules::load(dir.path(), "t").unwrap();
        (dir, r)
    }

    #[test]
    fn gitignore_semantics_and_helm_default() {
        let (_d, r) = rules("# comment\n*.tmp\n/secrets\ndocs/\n!keep.tmp\nci/*.yaml\n");
        assert!(r.ignored("a.tmp", false));
        assert!(r.ignored("templates/b.tmp", false));
        assert!(!r.ignored("keep.tmp", false));
        assert!(r.ignored("secrets", false));
        assert!(!r.ignored("templates/secrets", false));
        assert!(r.ignored("docs", true));
        assert!(!r.ignored("docs", false));
        assert!(r.ignored("ci/x.yaml", false));
        assert!(!r.ignored("values.yaml", false));
        assert!(r.ignored("templates/.hidden", false));
        assert!(!r.ignored("templates/_helpers.tpl", false));
        assert!(!r.ignored(".helmignore", false));
    }

    #[test]
    fn no_helmignore_keeps_everything_but_template_dotfiles() {
        let dir = tempfile::tempdir().unwrap();
        let r = IgnoreRules::load(dir.path(), "t").unwrap();
        assert!(!r.ignored(".gitignore", false));
        assert!(r.ignored("templates/.swp", false));
    }
}
