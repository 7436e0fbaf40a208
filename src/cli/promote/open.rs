//! Opening the stores of a plan: one registry client per (registry, side), shared by every image
//! (one connection pool and token cache per registry), and `REPO:TAG[,TAG...]` destinations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferry::promote::{Job, PlannedImage};
use ferry::reference::{is_valid_tag, ImageRef};
use ferry::store::registry::{RegistryClient, RegistryStore};
use ferry::store::{Store, Target};
use ferry::{Error, Result};

use crate::cli::endpoints::{Side, TransportArgs};

/// Opens stores, reusing one client per registry and side.
pub struct Opener<'a> {
    transport: &'a TransportArgs,
    clients: Mutex<HashMap<(bool, String), RegistryClient>>,
    /// `ferry tag`: source and destination are one repository: use the destination's client.
    one_side: Option<Side>,
    /// A dry run opens destination layouts read-only (never creates one).
    dry_run: bool,
}

impl<'a> Opener<'a> {
    pub fn new(transport: &'a TransportArgs, one_side: Option<Side>, dry_run: bool) -> Self {
        Opener {
            transport,
            clients: Mutex::new(HashMap::new()),
            one_side,
            dry_run,
        }
    }

    fn client(&self, registry: &str, side: Side) -> Result<RegistryClient> {
        let side = self.one_side.unwrap_or(side);
        let key = (side == Side::Destination, registry.to_string());
        let mut clients = self.clients.lock().unwrap();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = RegistryClient::new(registry, self.transport.options(side)?)?;
        clients.insert(key, c.clone());
        Ok(c)
    }

    fn open(&self, r: &ImageRef, side: Side) -> Result<(Arc<dyn Store>, Target)> {
        match r {
            ImageRef::Registry(rr) => {
                let client = self.client(&rr.registry, side)?;
                let target = match (&rr.digest, &rr.tag) {
                    (Some(d), _) => Target::Digest(d.clone()),
                    (None, Some(t)) => Target::Tag(t.clone()),
                    (None, None) => Target::Tag("latest".into()),
                };
                Ok((Arc::new(RegistryStore::new(client, &rr.repository)), target))
            }
            ImageRef::Layout(l) if self.dry_run && side == Side::Destination => {
                if !l.path.exists() {
                    return Err(Error::Invalid(format!(
                        "--dry-run: the destination layout {} does not exist yet (everything would be copied); a dry run creates nothing",
                        l.path.display()
                    )));
                }
                self.transport.open(r, Side::Source)
            }
            ImageRef::Layout(_) => self.transport.open(r, side),
        }
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
        return Err(Error::Invalid(format!(
            "destination {dst:?}: {bad:?} is not a valid tag"
        )));
    }
    let r: ImageRef = repo.parse()?;
    let pinned = match &r {
        ImageRef::Registry(r) => r.digest.is_some(),
        ImageRef::Layout(l) => l.digest.is_some(),
    };
    if pinned {
        return Err(Error::Invalid(format!(
            "destination {dst:?} names a digest: promote writes tags (REPO:TAG[,TAG...])"
        )));
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
