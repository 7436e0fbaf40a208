//! `ferry delete REF`: remove a tag (alone, never a manifest other tags still name) or a
//! manifest by digest, with `--dry-run`.

use clap::Args;
use serde_json::json;

use ferry::delete::{DeletePlan, Deleted};
use ferry::reference::ImageRef;
use ferry::store::Target;
use ferry::{Digest, Error, Result};

use super::endpoints::AccessArgs;
use super::settings::open_single;

const EXAMPLES: &str = "\
Examples:
  ferry delete ci.example.com/team/api:feature-x            # the branch tag, after promotion
  ferry delete --dry-run ci.example.com/team/api:feature-x
  ferry delete ci.example.com/team/api@sha256:3f2a...       # the manifest and all its tags
  ferry delete ci.example.com/team/api:feature-x@sha256:3f2a...   # the tag, if still on it
  ferry delete oci:./mirror:old

A tag is deleted alone where the registry allows it. Where it only deletes manifests (by
digest, as distribution does), the manifest is deleted instead, but only when no other tag
points at it: otherwise exit 7 and nothing is deleted. Registries may refuse deletion
altogether (HTTP 405; distribution needs `storage: delete: enabled: true`): exit 1.
Exit 4 when the tag or manifest is absent.";

#[derive(Args)]
#[command(after_help = EXAMPLES)]
pub struct DeleteArgs {
    /// The tag (REPO:TAG) or manifest (REPO@DIGEST) to delete; REPO:TAG@DIGEST deletes the tag
    /// only while it points at DIGEST.
    pub image: String,
    /// Say what would be deleted (and which other tags share the manifest); delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub access: AccessArgs,
}

pub async fn run(args: DeleteArgs) -> Result<()> {
    let (r, store, _) = open_single(&args.image, &args.access)?;
    let (tag, digest) = match &r {
        ImageRef::Registry(rr) => (rr.tag.clone(), rr.digest.clone()),
        ImageRef::Layout(l) => (l.tag.clone(), l.digest.clone()),
    };
    let target = match (&tag, &digest) {
        (Some(t), _) => Target::Tag(t.clone()),
        (None, Some(d)) => Target::Digest(d.clone()),
        (None, None) => {
            return Err(Error::Usage {
                arg: args.image.clone(),
                reason: "name what to delete: REPO:TAG or REPO@DIGEST (no implicit latest)".into(),
            })
        }
    };
    let mut plan = DeletePlan::new(store.as_ref(), &target).await?;
    if let (Some(_), Some(want)) = (&tag, &digest) {
        guard(&r, want, &plan.digest)?;
    }
    if args.dry_run {
        plan.survey(store.as_ref()).await?;
        report(&r, &plan, None, &args);
        return Ok(());
    }
    let deleted = plan.execute(store.as_ref()).await?;
    report(&r, &plan, Some(deleted), &args);
    Ok(())
}

fn guard(r: &ImageRef, want: &Digest, actual: &Digest) -> Result<()> {
    if want == actual {
        return Ok(());
    }
    Err(ferry::promote::PromoteError::UnexpectedDigest {
        source_ref: r.to_string(),
        expected: want.clone(),
        actual: actual.clone(),
    }
    .into())
}

fn report(r: &ImageRef, plan: &DeletePlan, deleted: Option<Deleted>, args: &DeleteArgs) {
    if args.json {
        let doc = json!({
            "reference": r.to_string(),
            "dry_run": deleted.is_none(),
            "deleted": deleted,
            "plan": plan,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("JSON serialises")
        );
        return;
    }
    if args.quiet {
        return;
    }
    let others = match plan.other_tags.as_deref() {
        Some([]) => "no other tag".to_string(),
        Some(tags) => format!("also tagged {}", tags.join(", ")),
        None => String::new(),
    };
    let (loc, d) = (&plan.location, &plan.digest);
    match (deleted, &plan.tag) {
        (None, Some(t)) => println!(
            "would delete tag {loc}:{t} (on {d}; {others}); where only manifests can be deleted, {}",
            match plan.other_tags.as_deref() {
                Some([]) => "the manifest would be deleted",
                _ => "nothing would be (refused, exit 7)",
            }
        ),
        (None, None) => println!("would delete manifest {loc}@{d} ({others})"),
        (Some(Deleted::Tag), Some(t)) => {
            println!("deleted tag {loc}:{t} (the manifest {d} stays)")
        }
        (Some(Deleted::Manifest), Some(t)) => println!(
            "deleted manifest {loc}@{d}, the only one tagged {t} (tags cannot be deleted alone here)"
        ),
        (Some(_), None) => println!("deleted manifest {loc}@{d} and the tags on it"),
    }
}
