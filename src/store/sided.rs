//! A store that marks every error it returns with its end of a copy (source or destination), so
//! messages and exit codes say where a failure came from whatever layer raised it.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;

use super::{BlobSource, BlobStream, Linked, RepoLocation, Store, StoredImage, Target};
use crate::digest::Digest;
use crate::error::{Result, Side};
use crate::manifest::{Descriptor, RawManifest};
use crate::referrers::Referrer;

/// `inner`, with every error marked `side` (an error that already has a side keeps it: a source
/// read failing inside a destination upload stays a source error).
pub struct Sided {
    inner: Arc<dyn Store>,
    side: Side,
}

impl Sided {
    pub fn wrap(inner: Arc<dyn Store>, side: Side) -> Arc<dyn Store> {
        Arc::new(Sided { inner, side })
    }
}

#[async_trait]
impl Store for Sided {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn repo_location(&self) -> Option<RepoLocation> {
        self.inner.repo_location()
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        self.inner
            .resolve(target)
            .await
            .map_err(|e| e.on(self.side))
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        let r = self.inner.get_manifest(target).await;
        r.map_err(|e| e.on(self.side))
    }

    async fn put_manifest(&self, manifest: &RawManifest, tags: &[String]) -> Result<()> {
        let r = self.inner.put_manifest(manifest, tags).await;
        r.map_err(|e| e.on(self.side))
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        self.inner.has_blob(desc).await.map_err(|e| e.on(self.side))
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        let side = self.side;
        let s = self
            .inner
            .open_blob(desc, offset)
            .await
            .map_err(|e| e.on(side))?;
        Ok(s.map(move |r| r.map_err(|e| e.on(side))).boxed())
    }

    async fn put_blob(&self, desc: &Descriptor, source: &dyn BlobSource) -> Result<u64> {
        let r = self.inner.put_blob(desc, source).await;
        r.map_err(|e| e.on(self.side))
    }

    async fn mount_blob(&self, desc: &Descriptor, from_repository: &str) -> Result<bool> {
        let r = self.inner.mount_blob(desc, from_repository).await;
        r.map_err(|e| e.on(self.side))
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        self.inner.list_tags().await.map_err(|e| e.on(self.side))
    }

    async fn find_referrers(
        &self,
        subject: &Digest,
        types: &[String],
        listed: Option<&std::collections::HashSet<String>>,
    ) -> Result<Vec<Referrer>> {
        let r = self.inner.find_referrers(subject, types, listed).await;
        r.map_err(|e| e.on(self.side))
    }

    async fn link_referrers(&self, subject: &Digest, referrers: &[Referrer]) -> Result<Linked> {
        let r = self.inner.link_referrers(subject, referrers).await;
        r.map_err(|e| e.on(self.side))
    }

    async fn list_images(&self) -> Result<Option<Vec<StoredImage>>> {
        self.inner.list_images().await.map_err(|e| e.on(self.side))
    }

    async fn delete_tag(&self, tag: &str) -> Result<()> {
        self.inner
            .delete_tag(tag)
            .await
            .map_err(|e| e.on(self.side))
    }

    async fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let r = self.inner.delete_manifest(digest).await;
        r.map_err(|e| e.on(self.side))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    struct Missing;

    #[async_trait]
    impl Store for Missing {
        fn location(&self) -> String {
            "nowhere".into()
        }
        async fn resolve(&self, _: &Target) -> Result<Option<Descriptor>> {
            Ok(None)
        }
        async fn get_manifest(&self, t: &Target) -> Result<RawManifest> {
            Err(Error::NotFound {
                what: format!("manifest {t}"),
                location: "nowhere".into(),
            })
        }
        async fn put_manifest(&self, _: &RawManifest, _: &[String]) -> Result<()> {
            Ok(())
        }
        async fn has_blob(&self, _: &Descriptor) -> Result<bool> {
            Ok(false)
        }
        async fn open_blob(&self, _: &Descriptor, _: u64) -> Result<BlobStream> {
            Ok(futures::stream::iter(vec![Err(Error::HttpClient {
                reason: "broken".into(),
            })])
            .boxed())
        }
        async fn put_blob(&self, _: &Descriptor, _: &dyn BlobSource) -> Result<u64> {
            Ok(0)
        }
        async fn list_tags(&self) -> Result<Vec<String>> {
            Ok(vec![])
        }
    }

    #[tokio::test]
    async fn errors_and_stream_items_carry_the_side() {
        let s = Sided::wrap(Arc::new(Missing), Side::Destination);
        let e = s.get_manifest(&Target::Tag("x".into())).await.unwrap_err();
        assert_eq!(e.side(), Some(Side::Destination));
        assert!(e.is_not_found());
        let d = Descriptor {
            media_type: "application/octet-stream".into(),
            digest: crate::digest::Digest::of(b""),
            size: 0,
            platform: None,
        };
        let mut blob = s.open_blob(&d, 0).await.unwrap();
        let e = blob.next().await.unwrap().unwrap_err();
        assert_eq!(e.side(), Some(Side::Destination));
    }
}
