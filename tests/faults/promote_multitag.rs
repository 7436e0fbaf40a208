//! The single-request multi-tag PUT (`PUT .../manifests/<digest>?tag=a&tag=b`, answered with
//! `OCI-Tag`) against the fault server, which supports it; and the fall-back to one PUT per tag
//! when a registry refuses the query form.

use std::sync::Arc;

use crate::support::fault_server::{Fault, FaultConfig, FaultServer, Kind, Logged};
use ferry::copy::RegistryLimits;
use ferry::manifest::{RawManifest, OCI_MANIFEST};
use ferry::promote::{Job, Outcome, Overwrite, PromoteOptions, Promoter, Route, SilentPlan};
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore};
use ferry::store::{Store, Target};

/// A small image (config + one layer) stored in `repo` as `tag`; blobs visible everywhere.
pub(crate) fn image(server: &FaultServer, repo: &str, tag: &str) -> RawManifest {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = vec![7u8; 4096];
    let (cd, ld) = (server.put_blob(&config[..]), server.put_blob(layer.clone()));
    let body = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    server.put_manifest(repo, tag, &bytes, OCI_MANIFEST);
    RawManifest::new(bytes.into(), Some(OCI_MANIFEST)).unwrap()
}

pub(crate) fn job(c: &RegistryClient, from: (&str, &str), to: &str, tags: &[&str]) -> Job {
    let store = |repo: &str| Arc::new(RegistryStore::new(c.clone(), repo)) as Arc<dyn Store>;
    Job {
        label: format!("{}:{}", from.0, from.1),
        source: store(from.0),
        target: Target::Tag(from.1.into()),
        destination: store(to),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        expect_digest: None,
        overwrite: Overwrite::Never,
        referrers: None,
        seen_tags: Vec::new(),
        manifest: None,
    }
}

pub(crate) fn promoter() -> Promoter {
    Promoter::new(
        PromoteOptions::default(),
        RegistryLimits::unlimited(),
        Arc::new(SilentPlan),
    )
}

fn manifest_puts(server: &FaultServer) -> Vec<Logged> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.kind == Kind::ManifestPut)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tags_go_in_one_request_where_the_registry_takes_them() {
    let server = FaultServer::start(FaultConfig::new());
    let m = image(&server, "team/api", "build-7");
    let c = RegistryClient::new(&server.host(), RegistryOptions::default()).unwrap();
    let r = promoter()
        .run(&[job(
            &c,
            ("team/api", "build-7"),
            "team/api",
            &["1.4.2", "1.4", "latest"],
        )])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted, "{r:#?}");
    assert_eq!(r.images[0].route, Some(Route::SameRepository));
    let puts = manifest_puts(&server);
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(
        puts[0].uri,
        format!(
            "/v2/team/api/manifests/{}?tag=1.4.2&tag=1.4&tag=latest",
            m.digest
        )
    );
    assert_eq!(c.multi_tag_put(), Some(true));
    for t in ["1.4.2", "1.4", "latest"] {
        assert_eq!(server.tag("team/api", t), Some(m.digest.clone()), "{t}");
    }
    assert_eq!(
        server.count(Kind::BlobHead) + server.count(Kind::BlobGet),
        0
    );

    // Another repository of the same registry: the root by digest, then all tags at once.
    let r = promoter()
        .run(&[job(
            &c,
            ("team/api", "build-7"),
            "prod/api",
            &["1.4.2", "latest"],
        )])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted, "{r:#?}");
    let puts = manifest_puts(&server);
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(puts[2].uri.ends_with("?tag=1.4.2&tag=latest"), "{puts:?}");
    assert_eq!(server.tags("prod/api"), ["1.4.2", "latest"]);

    // One tag: a plain PUT by tag.
    let r = promoter()
        .run(&[job(&c, ("team/api", "build-7"), "team/api", &["rc1"])])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted);
    assert_eq!(manifest_puts(&server)[3].uri, "/v2/team/api/manifests/rc1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_query_form_falls_back_to_one_put_per_tag_and_is_remembered() {
    let server =
        FaultServer::start(FaultConfig::new().fault(Fault::status(Kind::ManifestPut, 1, 400)));
    let m = image(&server, "team/api", "build-7");
    let c = RegistryClient::new(&server.host(), RegistryOptions::default()).unwrap();
    let r = promoter()
        .run(&[job(&c, ("team/api", "build-7"), "team/api", &["a", "b"])])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted, "{r:#?}");
    let uris: Vec<String> = manifest_puts(&server).into_iter().map(|r| r.uri).collect();
    assert_eq!(uris.len(), 3, "{uris:?}");
    assert!(uris[0].contains("?tag=a&tag=b"));
    assert_eq!(
        uris[1..],
        ["/v2/team/api/manifests/a", "/v2/team/api/manifests/b"]
    );
    assert_eq!(c.multi_tag_put(), Some(false));
    let r = promoter()
        .run(&[job(&c, ("team/api", "build-7"), "team/api", &["c", "d"])])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted);
    assert_eq!(manifest_puts(&server).len(), 5, "no second probe");
    for t in ["a", "b", "c", "d"] {
        assert_eq!(server.tag("team/api", t), Some(m.digest.clone()), "{t}");
    }
}
