//! Tag guards: what writing each destination tag would do (create, leave, move, refuse), decided
//! from what the destination says the tag points at now.

use futures::future::try_join_all;
use serde::Serialize;

use super::error::PromoteError;
use super::Overwrite;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::{Store, Target};

/// What promoting does to one destination tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagAction {
    /// The tag did not exist.
    Created,
    /// The tag already pointed at the digest: nothing to write.
    Unchanged,
    /// The tag pointed at another digest and is allowed to move.
    Moved,
    /// The tag points at another digest and may not move.
    Refused,
}

impl TagAction {
    /// Whether the tag has to be written.
    pub fn writes(self) -> bool {
        matches!(self, TagAction::Created | TagAction::Moved)
    }
}

/// One destination tag: what happens to it, what it pointed at, whether it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TagResult {
    pub tag: String,
    pub action: TagAction,
    /// What the tag pointed at before (none when it did not exist).
    pub previous: Option<Digest>,
    /// True once the tag has been written (always false in a dry run or when the plan stopped).
    pub written: bool,
}

/// Decides one tag from its current target.
pub(super) fn decide(current: Option<&Digest>, wanted: &Digest, may_move: bool) -> TagAction {
    match current {
        None => TagAction::Created,
        Some(c) if c == wanted => TagAction::Unchanged,
        Some(_) if may_move => TagAction::Moved,
        Some(_) => TagAction::Refused,
    }
}

/// Looks every tag up at `dst` (concurrently; those in `seen`, looked up by the caller just
/// now, are taken from there) and decides what promoting `wanted` does to it.
pub(super) async fn classify(
    dst: &dyn Store,
    wanted: &Digest,
    tags: &[String],
    seen: &[(String, Option<Digest>)],
    overwrite: &Overwrite,
    force: bool,
) -> Result<Vec<TagResult>> {
    let lookups = tags.iter().map(|t| async move {
        if let Some((_, at)) = seen.iter().find(|(s, _)| s == t) {
            return Ok(at.clone());
        }
        let target = Target::Tag(t.clone());
        Ok::<_, Error>(dst.resolve(&target).await?.map(|d| d.digest))
    });
    let current = try_join_all(lookups).await?;
    Ok(tags
        .iter()
        .zip(current)
        .map(|(tag, previous)| {
            let may_move = force || overwrite.allows(tag);
            TagResult {
                tag: tag.clone(),
                action: decide(previous.as_ref(), wanted, may_move),
                previous,
                written: false,
            }
        })
        .collect())
}

/// The refusals among `tags` as one error (`None` when nothing is refused).
pub(super) fn refusals(location: &str, wanted: &Digest, tags: &[TagResult]) -> Option<Error> {
    let mut errors: Vec<Error> = tags
        .iter()
        .filter(|t| t.action == TagAction::Refused)
        .map(|t| {
            Error::from(PromoteError::TagRefused {
                location: location.to_string(),
                tag: t.tag.clone(),
                current: t.previous.clone().expect("a refused tag exists"),
                wanted: wanted.clone(),
            })
        })
        .collect();
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(Error::Many(errors)),
    }
}

/// Looks the tags that are about to be written up again (after a long preparation) and
/// re-decides them: a tag someone else moved meanwhile is refused unless it may move.
pub(super) async fn recheck(
    dst: &dyn Store,
    wanted: &Digest,
    tags: &mut [TagResult],
    overwrite: &Overwrite,
    force: bool,
) -> Result<()> {
    let names: Vec<String> = tags
        .iter()
        .filter(|t| t.action.writes())
        .map(|t| t.tag.clone())
        .collect();
    let fresh = classify(dst, wanted, &names, &[], overwrite, force).await?;
    for f in fresh {
        if let Some(t) = tags.iter_mut().find(|t| t.tag == f.tag) {
            if f.previous != t.previous {
                *t = f;
            }
        }
    }
    Ok(())
}

/// Reads the tags just written back: each must still name `wanted`. A tag another writer
/// moved (or deleted) in the meantime is reported, never silently lost.
pub(super) async fn verify_written(
    dst: &dyn Store,
    wanted: &Digest,
    tags: &[String],
) -> Result<()> {
    let lookups = tags.iter().map(|t| async move {
        let target = Target::Tag(t.clone());
        dst.resolve(&target).await
    });
    let now = try_join_all(lookups).await?;
    let errors: Vec<Error> = tags
        .iter()
        .zip(now)
        .map(|(tag, cur)| (tag, cur.map(|d| d.digest)))
        .filter(|(_, now)| now.as_ref() != Some(wanted))
        .map(|(tag, now)| {
            Error::from(PromoteError::TagMovedConcurrently {
                location: dst.location(),
                tag: tag.clone(),
                wanted: wanted.clone(),
                now,
            })
        })
        .collect();
    Error::all(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(decide(None, &a, false), TagAction::Created);
        assert_eq!(decide(Some(&a), &a, false), TagAction::Unchanged);
        assert_eq!(decide(Some(&b), &a, false), TagAction::Refused);
        assert_eq!(decide(Some(&b), &a, true), TagAction::Moved);
        assert!(TagAction::Moved.writes() && !TagAction::Unchanged.writes());
        let tags = vec![TagResult {
            tag: "1.0".into(),
            action: TagAction::Refused,
            previous: Some(b.clone()),
            written: false,
        }];
        let e = refusals("r/x", &a, &tags).unwrap();
        assert!(e.to_string().contains("r/x:1.0 points at"), "{e}");
        assert!(refusals("r/x", &a, &[]).is_none());
    }
}
