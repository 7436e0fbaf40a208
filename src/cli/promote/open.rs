//! Opening the stores of a plan: one registry client per (registry, side), shared by every image
//! (one connection pool and token cache per registry), and `REPO:TAG[,TAG...]` destinations.

use std::sync::Arc;

use ferry::error::Side;
use ferry::promote::{Job, PlannedImage};
use ferry::reference::{is_valid_tag, ImageRef};
use ferry::store::{Store, Target};
use ferry::{Error, Result};

use crate::cli::settings::Stores;

/// Opens the stores of a plan's jobs through the one store cache.
pub struct Opener<'a> {
    stores: &'a Stores,
}

impl<'a> Opener<'a> {
    pub fn new(stores: &'a Stores) -> Self {
        Opener { stores }
    }

    fn open(&self, r: &ImageRef, side: Side) -> Result<(Arc<dyn Store>, Target)> {
        self.stores.open(r, side)
    }

    /// The job for one planned image.
    pub fn job(&self, p: &PlannedImage) -> Result<Job> {
        let (source, target) = self.open(&p.source, Side::Source)?;
        let (destination, _) = self.open(&p.destination, Side::Destination)?;
        Ok(Job {
            label: p.label.clone(),
            source,
            target,
            destination,
            tags: p.tags.clone(),
            expect_digest: p.expect_digest.clone(),
            overwrite: p.overwrite.clone(),
            referrers: p.referrers.clone(),
            seen_tags: Vec::new(),
            manifest: None,
        })
    }
}

/// Splits `REPO[:TAG[,TAG...]]` into the repository reference and its tags (the tag part is
/// whatever follows the last `:` after the last `/`, so `host:port/repo` keeps its port).
pub fn split_tags(dst: &str) -> Result<(ImageRef, Vec<String>)> {
    let path_start = match dst.strip_prefix("oci:") {
        Some(rest) => 4 + rest.rfind('/').map(|i| i + 1).unwrap_or(0),
        None => dst.rfind('/').map(|i| i + 1).unwrap_or(0),
    };
    let (repo, tags) = match dst[path_start..].rfind(':') {
        Some(i) => {
            let tags: Vec<String> = dst[path_start + i + 1..]
                .split(',')
                .map(|t| t.trim().to_string())
                .collect();
            (&dst[..path_start + i], tags)
        }
        None => (dst, Vec::new()),
    };
    if let Some(bad) = tags.iter().find(|t| !is_valid_tag(t)) {
        return Err(Error::BadTag {
            tag: bad.clone(),
            context: format!("destination {dst:?}"),
        });
    }
    let r: ImageRef = repo.parse()?;
    let pinned = match &r {
        ImageRef::Registry(r) => r.digest.is_some(),
        ImageRef::Layout(l) => l.digest.is_some(),
    };
    if pinned {
        return Err(Error::Usage {
            arg: format!("destination {dst:?}"),
            reason: "names a digest: promote writes tags (REPO:TAG[,TAG...])".into(),
        });
    }
    Ok((r, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, Vec<String>) {
        let (r, t) = split_tags(s).unwrap();
        (r.to_string(), t)
    }

    #[test]
    fn destinations_split_into_repository_and_tags() {
        assert_eq!(
            split("127.0.0.1:5000/team/api:1.4.2,1.4,latest"),
            (
                "127.0.0.1:5000/team/api".into(),
                vec!["1.4.2".into(), "1.4".into(), "latest".into()]
            )
        );
        assert_eq!(
            split("127.0.0.1:5000/team/api"),
            ("127.0.0.1:5000/team/api".into(), vec![])
        );
        assert_eq!(
            split("oci:./out:v1,v2").1,
            vec!["v1".to_string(), "v2".to_string()]
        );
        assert!(split_tags("r.io/a:1.0,bad tag").is_err());
        assert!(split_tags("r.io/a:1.0,").is_err());
        assert!(split_tags(
            "r.io/a@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        )
        .is_err());
    }
}
