//! Sync's own failures: an invalid config file, and a tag the config names that the source
//! does not have.

use crate::promote::PlanProblem;

/// A sync refused or a tag it could not find.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The sync config is invalid; nothing was sent. Every problem found is listed.
    #[error("sync config {file} is invalid:{}", fmt_problems(.file, .problems))]
    Config {
        file: String,
        problems: Vec<PlanProblem>,
    },

    /// A tag the config lists by name is not in the source repository.
    #[error("tag {tag} not found in {location} (listed in the sync config)")]
    MissingTag { location: String, tag: String },
}

fn fmt_problems(file: &str, problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  {file}:{}:{}: {}", p.line, p.column, p.message))
        .collect()
}
