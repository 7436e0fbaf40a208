//! Promotion's own failures: the release guards (expected digest, tag moves) and plan files.

use crate::digest::Digest;

/// A promotion refused: nothing that depends on it was written.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// Release guard: the source is not the digest that was tested.
    #[error("source {source_ref} resolves to {actual}, not the expected {expected}")]
    UnexpectedDigest {
        source_ref: String,
        expected: Digest,
        actual: Digest,
    },

    /// Release guard: a destination tag points at another digest and may not be moved.
    #[error("{location}:{tag} points at {current}, not {wanted}: not moved (use --force or an overwrite rule)")]
    TagRefused {
        location: String,
        tag: String,
        current: Digest,
        wanted: Digest,
    },

    /// Another writer moved a tag between this promotion's write and its re-read of the tag
    /// (registries have no compare-and-swap): the other writer's digest won.
    #[error("{location}:{tag} was written as {wanted} but now {}: another writer moved it concurrently", now_text(.now.as_ref()))]
    TagMovedConcurrently {
        location: String,
        tag: String,
        wanted: Digest,
        /// What the tag names on re-reading (none: it was deleted).
        now: Option<Digest>,
    },

    /// A promotion plan is invalid; nothing was sent. Every problem found is listed.
    #[error("plan {file} is invalid:{}", fmt_problems(.file, .problems))]
    Plan {
        file: String,
        problems: Vec<PlanProblem>,
    },
}

/// One problem in a plan file, with the line and column (1-based) it was found at.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PlanProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn now_text(now: Option<&Digest>) -> String {
    match now {
        Some(d) => format!("points at {d}"),
        None => "does not exist".to_string(),
    }
}

fn fmt_problems(file: &str, problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  {file}:{}:{}: {}", p.line, p.column, p.message))
        .collect()
}
