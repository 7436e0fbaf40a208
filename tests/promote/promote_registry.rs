//! Promotion of one image against the real docker-registry: the three routes and what each sends,
//! the guards (expected digest, existing tags, --force), dry runs, and the multi-tag fallback.

use crate::promote_common::*;
use crate::support::fixtures::ImageSpec;
use crate::support::registry::Registry;
use ferry::error::Error;
use ferry::promote::{ImageStatus, Outcome, Route, TagAction};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_repository_retag_sends_no_blob_request() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let img = seed(&reg, dir.path(), "v1", &small(1), "team/api:feature-x");
    let before = blob_requests(&reg).len();
    let c = client(&reg.addr);
    let report = promoter(true, false)
        .run(&[job(
            &c,
            "team/api:feature-x",
            &c,
            "team/api",
            &["1.4.2", "1.4", "latest"],
        )])
        .await;
    assert_eq!(report.outcome, Outcome::Promoted, "{report:#?}");
    let i = &report.images[0];
    assert_eq!(i.route, Some(Route::SameRepository));
    assert!(i
        .tags
        .iter()
        .all(|t| t.action == TagAction::Created && t.written));
    let st = c.stats();
    assert_eq!(
        (
            st.blob_heads,
            st.blob_gets,
            st.blob_uploads,
            st.mounts_attempted
        ),
        (0, 0, 0, 0),
        "{st:?}"
    );
    // GET the source, HEAD three tags; PUT the tags (probe with ?tag=, then one per tag);
    // HEAD the three again (read back: no concurrent writer moved them).
    assert_eq!((st.manifest_gets, st.manifest_heads), (1, 6), "{st:?}");
    assert_eq!(
        blob_requests(&reg).len(),
        before,
        "the registry saw blob requests"
    );
    for t in ["1.4.2", "1.4", "latest"] {
        assert_eq!(
            tag_of(&reg.addr, "team/api", t).await,
            Some(img.digest.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_registry_promotion_mounts_every_blob() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = small(2).shared_base(512 * 1024);
    let img = seed(&reg, dir.path(), "v1", &spec, "ci/api:build-7");
    let c = client(&reg.addr);
    let report = promoter(true, false)
        .run(&[job(&c, "ci/api:build-7", &c, "prod/api", &["1.0.0"])])
        .await;
    assert_eq!(report.outcome, Outcome::Promoted, "{report:#?}");
    let i = &report.images[0];
    assert_eq!(i.route, Some(Route::SameRegistry));
    assert_eq!(i.blobs.mounted, img.blobs.len(), "{:?}", i.blobs);
    assert_eq!(i.blobs.bytes_copied, 0);
    let st = c.stats();
    assert_eq!(st.blob_bytes_uploaded, 0, "{st:?}");
    assert_eq!(st.blob_gets, 0, "{st:?}");
    assert_eq!(st.mounts_succeeded as usize, img.blobs.len(), "{st:?}");
    let log = reg.log();
    assert!(
        !log.contains("\"PATCH /v2/prod/api/blobs/uploads/"),
        "bytes were sent"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("\"PUT /v2/prod/api/blobs/uploads/")),
        "an upload was closed"
    );
    assert_eq!(
        tag_of(&reg.addr, "prod/api", "1.0.0").await,
        Some(img.digest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_registry_promotion_copies_then_tags_and_learns_multi_tag_put() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let a = seed(
        &src,
        dir.path(),
        "a",
        &ImageSpec::oci_index().layers(1, 8192).seed(3),
        "ci/a:x",
    );
    let b = seed(&src, dir.path(), "b", &small(4), "ci/b:x");
    let (sc, dc) = (client(&src.addr), client(&dst.addr));
    let p = promoter(true, false);
    let r1 = p
        .run(&[job(&sc, "ci/a:x", &dc, "prod/a", &["1.0", "latest"])])
        .await;
    assert_eq!(r1.outcome, Outcome::Promoted, "{r1:#?}");
    assert_eq!(r1.images[0].route, Some(Route::CrossRegistry));
    assert_eq!(r1.images[0].blobs.copied, a.blobs.len());
    // distribution 2.8 ignores ?tag=: found out once, remembered for the client.
    assert_eq!(dc.multi_tag_put(), Some(false));
    let puts = dc.stats().manifest_puts;
    // 3 children + index by digest, the ?tag= probe, then one PUT per tag.
    assert_eq!(puts, 4 + 1 + 2, "{:?}", dc.stats());
    let r2 = p
        .run(&[job(&sc, "ci/b:x", &dc, "prod/b", &["1.0", "latest"])])
        .await;
    assert_eq!(r2.outcome, Outcome::Promoted, "{r2:#?}");
    assert_eq!(dc.stats().manifest_puts - puts, 1 + 2, "no second probe");
    for (repo, d) in [("prod/a", &a.digest), ("prod/b", &b.digest)] {
        for t in ["1.0", "latest"] {
            assert_eq!(
                tag_of(&dst.addr, repo, t).await.as_ref(),
                Some(d),
                "{repo}:{t}"
            );
        }
    }
    let raw = crate::support::fixtures::inspect_raw(&format!("docker://{}/prod/a:1.0", dst.addr));
    assert_eq!(
        ferry::Digest::of(&raw),
        a.digest,
        "skopeo sees the same bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_digest_mismatch_writes_nothing() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let img = seed(&src, dir.path(), "v1", &small(5), "ci/api:x");
    let (sc, dc) = (client(&src.addr), client(&dst.addr));
    let mut j = job(&sc, "ci/api:x", &dc, "prod/api", &["1.0"]);
    let wrong = ferry::Digest::of(b"not the tested image");
    j.expect_digest = Some(wrong.clone());
    let mut report = promoter(true, false).run(&[j]).await;
    assert_eq!(report.outcome, Outcome::NoTagsWritten);
    assert_eq!(report.images[0].status, ImageStatus::Refused);
    match &report.take_errors()[..] {
        [e] => match e.promotion() {
            Some(ferry::promote::PromoteError::UnexpectedDigest {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (&wrong, &img.digest)),
            _ => panic!("{e:?}"),
        },
        e => panic!("{e:?}"),
    }
    assert!(writes(&dst).is_empty(), "{:?}", writes(&dst));
    assert_eq!(dc.stats().manifest_puts + dc.stats().blob_uploads, 0);
    // The right digest goes through.
    let mut j = job(&sc, "ci/api:x", &dc, "prod/api", &["1.0"]);
    j.expect_digest = Some(img.digest.clone());
    let report = promoter(true, false).run(&[j]).await;
    assert_eq!(report.outcome, Outcome::Promoted, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_guard_refuses_unless_forced_and_same_digest_is_a_no_op() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let old = seed(&reg, dir.path(), "old", &small(6), "ci/api:old");
    let new = seed(&reg, dir.path(), "new", &small(7), "ci/api:new");
    let c = client(&reg.addr);
    let p = promoter(true, false);
    let r = p
        .run(&[job(&c, "ci/api:old", &c, "prod/api", &["1.4", "latest"])])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted);

    let writes_before = writes(&reg).len();
    let mut r = p
        .run(&[job(
            &c,
            "ci/api:new",
            &c,
            "prod/api",
            &["1.5", "1.4", "latest"],
        )])
        .await;
    assert_eq!(r.outcome, Outcome::NoTagsWritten);
    let actions: Vec<TagAction> = r.images[0].tags.iter().map(|t| t.action).collect();
    assert_eq!(
        actions,
        [TagAction::Created, TagAction::Refused, TagAction::Refused]
    );
    assert!(matches!(&r.take_errors()[..], [Error::Many(v)] if v.len() == 2));
    assert_eq!(
        writes(&reg).len(),
        writes_before,
        "a refusal writes nothing"
    );
    assert_eq!(
        tag_of(&reg.addr, "prod/api", "1.4").await,
        Some(old.digest.clone())
    );
    assert_eq!(tag_of(&reg.addr, "prod/api", "1.5").await, None);

    // An overwrite rule lets `latest` move; 1.4 is still refused.
    let mut j = job(&c, "ci/api:new", &c, "prod/api", &["1.4", "latest"]);
    j.overwrite = ferry::promote::Overwrite::Tags(vec!["latest".into()]);
    let r = p.run(&[j]).await;
    assert_eq!(r.images[0].tags[1].action, TagAction::Moved);
    assert_eq!(r.images[0].status, ImageStatus::Refused);

    let forced = promoter(true, true);
    let r = forced
        .run(&[job(
            &c,
            "ci/api:new",
            &c,
            "prod/api",
            &["1.5", "1.4", "latest"],
        )])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted, "{r:#?}");
    let moved: Vec<_> = r.images[0]
        .tags
        .iter()
        .map(|t| (t.action, t.previous.clone()))
        .collect();
    assert_eq!(moved[1], (TagAction::Moved, Some(old.digest.clone())));
    assert_eq!(
        tag_of(&reg.addr, "prod/api", "1.4").await,
        Some(new.digest.clone())
    );

    let puts = c.stats().manifest_puts;
    let r = p
        .run(&[job(
            &c,
            "ci/api:new",
            &c,
            "prod/api",
            &["1.5", "1.4", "latest"],
        )])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted);
    assert!(r.images[0]
        .tags
        .iter()
        .all(|t| t.action == TagAction::Unchanged && !t.written));
    assert_eq!(
        c.stats().manifest_puts,
        puts,
        "unchanged tags are not written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_the_plan_and_writes_nothing() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let base = 300 * 1024;
    let a = seed(&src, dir.path(), "a", &small(8).shared_base(base), "ci/a:x");
    let b = seed(&src, dir.path(), "b", &small(9).shared_base(base), "ci/b:x");
    let (sc, dc) = (client(&src.addr), client(&dst.addr));
    let jobs = [
        job(&sc, "ci/a:x", &dc, "prod/a", &["1.0"]),
        job(&sc, "ci/b:x", &dc, "prod/b", &["1.0"]),
    ];
    let r = promoter(true, false).dry_run(&jobs).await;
    assert_eq!(r.outcome, Outcome::Planned);
    assert!(r.images.iter().all(|i| i.status == ImageStatus::Planned));
    let (ra, rb) = (&r.images[0].blobs, &r.images[1].blobs);
    assert_eq!((ra.copied, ra.mounted), (a.blobs.len(), 0), "{ra:?}");
    // The shared base crosses once: the second image mounts it.
    assert_eq!((rb.copied, rb.mounted), (b.blobs.len() - 1, 1), "{rb:?}");
    assert!(rb.bytes_mounted > base as u64);
    assert_eq!(r.images[0].tags[0].action, TagAction::Created);
    assert!(writes(&dst).is_empty(), "{:?}", writes(&dst));
    assert_eq!(dc.stats().blob_uploads + dc.stats().manifest_puts, 0);

    // After the real run, a dry run finds everything present and every tag unchanged.
    let real = promoter(true, false).run(&jobs).await;
    assert_eq!(real.outcome, Outcome::Promoted);
    assert_eq!(
        real.totals.blobs.copied,
        a.blobs.len() + b.blobs.len() - 1,
        "{:?}",
        real.totals
    );
    assert_eq!(real.totals.blobs.mounted, 1);
    let again = promoter(true, false).dry_run(&jobs).await;
    assert_eq!(again.totals.blobs.copied + again.totals.blobs.mounted, 0);
    assert_eq!(again.totals.tags_unchanged, 2);
}
