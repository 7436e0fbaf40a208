//! Bulk promotion against the real docker-registry: global blob de-duplication over a 30-image
//! plan, all-or-nothing when an image fails (before or during preparation), `--no-atomic`, and
//! plan files whose problems are reported with file and line.

use std::path::Path;

use crate::promote_common::*;
use crate::support::fixtures::{seed_registry, write_layout, BuiltImage};
use crate::support::registry::Registry;
use ferry::promote::{ImageStatus, Outcome, Overwrite, Plan, Vars};
use ferry::reference::ImageRef;

/// Writes `n` small images sharing one base layer and seeds them as `ci/app{i}:build`,
/// four skopeo processes at a time.
fn seed_many(reg: &Registry, root: &Path, n: usize, base: usize) -> Vec<BuiltImage> {
    let built: Vec<BuiltImage> = (0..n)
        .map(|i| {
            write_layout(
                &root.join(format!("l{i}")),
                "v",
                &small(100 + i as u64).shared_base(base),
            )
        })
        .collect();
    for chunk in (0..n).collect::<Vec<_>>().chunks(4) {
        std::thread::scope(|s| {
            for &i in chunk {
                let dir = root.join(format!("l{i}"));
                let addr = reg.addr.clone();
                s.spawn(move || seed_registry(&dir, "v", &addr, &format!("ci/app{i}:build")));
            }
        });
    }
    built
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_images_share_a_base_that_crosses_once() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let base = 1024 * 1024;
    let images = seed_many(&src, dir.path(), 30, base);
    let (sc, dc) = (client(&src.addr), client(&dst.addr));
    let jobs: Vec<_> = (0..30)
        .map(|i| {
            job(
                &sc,
                &format!("ci/app{i}:build"),
                &dc,
                &format!("prod/app{i}"),
                &["2.0.0", "latest"],
            )
        })
        .collect();
    let report = promoter(true, false).run(&jobs).await;
    assert_eq!(
        report.outcome,
        Outcome::Promoted,
        "{:#?}",
        report.images.iter().find(|i| i.error.is_some())
    );

    let mut unique = std::collections::HashMap::new();
    for img in &images {
        for b in &img.blobs {
            unique.insert(b.digest.clone(), b.size);
        }
    }
    let unique_bytes: u64 = unique.values().sum();
    let st = dc.stats();
    assert_eq!(st.blob_uploads as usize, unique.len(), "{st:?}");
    // The one single-POST probe per registry (distribution ignores its body) is the only resend.
    assert!(st.single_post_probe_bytes <= 256 * 1024, "{st:?}");
    assert_eq!(
        st.blob_bytes_uploaded - st.single_post_probe_bytes,
        unique_bytes,
        "every unique blob crossed exactly once"
    );
    assert_eq!(
        st.mounts_succeeded, 29,
        "29 repositories mounted the base: {st:?}"
    );
    let t = &report.totals;
    assert_eq!(
        (t.blobs.copied, t.blobs.mounted),
        (unique.len(), 29),
        "{t:?}"
    );
    assert_eq!(t.tags_created, 60);
    let source_gets = sc.stats().blob_bytes_downloaded;
    assert_eq!(
        source_gets, unique_bytes,
        "each blob read once from the source"
    );
    for (i, img) in images.iter().enumerate() {
        assert_eq!(
            tag_of(&dst.addr, &format!("prod/app{i}"), "2.0.0").await,
            Some(img.digest.clone())
        );
    }
}

/// DELETE a blob from a repository (the registry allows deletes), leaving its manifest.
async fn delete_blob(reg: &Registry, repo: &str, digest: &ferry::Digest) {
    let url = format!("http://{}/v2/{repo}/blobs/{digest}", reg.addr);
    let resp = reqwest::Client::new().delete(url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_image_leaves_every_destination_tag_untouched() {
    let (src, dst) = (Registry::start(), Registry::start());
    let dir = tempfile::tempdir().unwrap();
    let imgs = seed_many(&src, dir.path(), 3, 64 * 1024);
    let old = seed(&src, &dir.path().join("old"), "v", &small(1), "ci/old:v");
    let (sc, dc) = (client(&src.addr), client(&dst.addr));
    // The destination already has release tags, which the plan may move.
    let r = promoter(true, false)
        .run(&[
            job(&sc, "ci/old:v", &dc, "prod/app0", &["latest"]),
            job(&sc, "ci/old:v", &dc, "prod/app2", &["latest"]),
        ])
        .await;
    assert_eq!(r.outcome, Outcome::Promoted);
    let plan = |missing: &str| {
        let mut jobs = vec![
            job(&sc, "ci/app0:build", &dc, "prod/app0", &["2.0", "latest"]),
            job(&sc, missing, &dc, "prod/app1", &["2.0", "latest"]),
            job(&sc, "ci/app2:build", &dc, "prod/app2", &["2.0", "latest"]),
        ];
        for j in &mut jobs {
            j.overwrite = Overwrite::Tags(vec!["latest".into()]);
        }
        jobs
    };
    let untouched = || async {
        for repo in ["prod/app0", "prod/app2"] {
            assert_eq!(
                tag_of(&dst.addr, repo, "latest").await,
                Some(old.digest.clone()),
                "{repo}"
            );
            assert_eq!(tag_of(&dst.addr, repo, "2.0").await, None, "{repo}");
        }
        assert_eq!(tag_of(&dst.addr, "prod/app1", "2.0").await, None);
    };

    // A source that does not exist: found while resolving, before anything is written.
    let mut r = promoter(true, false).run(&plan("ci/nothing:here")).await;
    assert_eq!(r.outcome, Outcome::NoTagsWritten);
    assert_eq!(r.images[1].status, ImageStatus::Failed);
    assert!(r.take_errors()[0].is_not_found());
    untouched().await;

    // A source blob that has gone: found while copying; the others are prepared, not tagged.
    let shared = |d: &ferry::Digest| imgs[0].blobs.iter().any(|b| &b.digest == d);
    let victim = imgs[1]
        .blobs
        .iter()
        .map(|b| b.digest.clone())
        .find(|d| !shared(d))
        .unwrap();
    delete_blob(&src, "ci/app1", &victim).await;
    let r = promoter(true, false).run(&plan("ci/app1:build")).await;
    assert_eq!(r.outcome, Outcome::NoTagsWritten, "{r:#?}");
    let statuses: Vec<ImageStatus> = r.images.iter().map(|i| i.status).collect();
    assert_eq!(
        statuses,
        [
            ImageStatus::Prepared,
            ImageStatus::Failed,
            ImageStatus::Prepared
        ]
    );
    assert!(r.images[1]
        .error
        .as_ref()
        .unwrap()
        .to_string()
        .contains(&victim.to_string()));
    assert_eq!(r.totals.tags_written, 0);
    untouched().await;

    // --no-atomic: the good images are promoted anyway.
    let r = promoter(false, false).run(&plan("ci/app1:build")).await;
    assert_eq!(r.outcome, Outcome::Partial);
    assert_eq!(
        tag_of(&dst.addr, "prod/app0", "latest").await,
        Some(imgs[0].digest.clone())
    );
    assert_eq!(
        tag_of(&dst.addr, "prod/app2", "2.0").await,
        Some(imgs[2].digest.clone())
    );
    assert_eq!(tag_of(&dst.addr, "prod/app1", "2.0").await, None);
}

fn problems(file: &str, text: &str, vars: &Vars) -> String {
    match Plan::parse(file, text, vars) {
        Err(e)
            if matches!(
                e.promotion(),
                Some(ferry::promote::PromoteError::Plan { .. })
            ) =>
        {
            e.to_string()
        }
        Err(e) => panic!("not a plan error: {e}"),
        Ok(p) => panic!("accepted: {p:#?}"),
    }
}

#[test]
fn plan_problems_are_reported_with_file_and_line() {
    let v = Vars::new();
    let e = problems(
        "release.yaml",
        "images:\n  - source: r.io/a:1\n    tags: [x]\n    destinaton: b\n",
        &v,
    );
    assert!(
        e.contains("release.yaml:4:5: ") && e.contains("destinaton"),
        "{e}"
    );

    let e = problems(
        "release.yaml",
        "defaults:\n  registry: prod.io\nimages:\n  - source: r.io/A:1\n    tags: [x]\n",
        &v,
    );
    assert!(e.contains("release.yaml:4:") && e.contains("source"), "{e}");

    let text = "vars: {version: 1.4.2+build5}\ndefaults:\n  registry: prod.io\n  tags: [\"{version}\"]\nimages:\n  - source: r.io/a:1\n";
    let e = problems("rel.yaml", text, &v);
    assert!(
        e.contains("rel.yaml:4:") && e.contains("renders \"1.4.2+build5\""),
        "{e}"
    );

    let text =
        "defaults:\n  registry: prod.io\n  tags: [\"{major}\"]\nimages:\n  - source: r.io/a:1\n";
    let e = problems("rel.yaml", text, &v);
    assert!(
        e.contains("rel.yaml:3:") && e.contains("unknown variable {major}"),
        "{e}"
    );

    let text = "defaults:\n  registry: prod.io\nimages:\n  - source: r.io/a:1\n    destination: api\n    tags: [\"1.0\", latest]\n  - source: r.io/b:7\n    destination: prod.io/api\n    tags: [latest]\n";
    let e = problems("rel.yaml", text, &v);
    assert!(
        e.contains("rel.yaml:9:")
            && e.contains("prod.io/api:latest is also promoted by the image at line 4"),
        "{e}"
    );

    let text = "{\"images\": [\n  {\"source\": \"r.io/a:1\", \"tags\": [\"x\"], \"expect-digest\": \"sha256:abc\"}\n]}";
    let e = problems("rel.json", text, &v);
    assert!(
        e.contains("rel.json:2:") && e.contains("expect-digest"),
        "{e}"
    );

    // Several problems are all reported, in line order.
    let text = "images:\n  - source: r.io/a:1\n  - source: r.io/b:1\n    destination: prod.io/b\n    tags: [\"bad tag\"]\n";
    let e = problems("p.yaml", text, &v);
    assert!(
        e.contains("p.yaml:2:") && e.contains("no destination registry"),
        "{e}"
    );
    assert!(
        e.contains("p.yaml:5:") && e.contains("not a valid tag"),
        "{e}"
    );
}

#[test]
fn plan_defaults_templates_and_vars_expand() {
    let text = "\
vars:
  version: 1.0.0
defaults:
  registry: prod.example.com
  prefix: team
  tags: [\"{version}\", \"{major}.{minor}\", latest]
  overwrite: [latest]
limits:
  prod.example.com: 4
images:
  - source: ci.example.com/team/api:{commit}
    destination: api
    expect-digest: sha256:3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a1c3f2a
  - source: ci.example.com/web:{commit}
    tags: [\"{version}\"]
    overwrite: [\"*\"]
  - source: ci.example.com/tools/cli:{commit}
    destination: other.example.com:5000/cli
    vars: {version: 3.1.4}
";
    let mut v = Vars::new();
    v.set("version", "1.4.2");
    v.set("commit", "3f2a1c");
    let plan = Plan::parse("release.yaml", text, &v).unwrap();
    assert_eq!(plan.limits, vec![("prod.example.com".to_string(), 4)]);
    let [api, web, cli] = &plan.images[..] else {
        panic!()
    };
    assert_eq!(api.label, "release.yaml:11");
    assert_eq!(api.source.to_string(), "ci.example.com/team/api:3f2a1c");
    assert_eq!(api.destination.to_string(), "prod.example.com/team/api");
    assert_eq!(api.tags, ["1.4.2", "1.4", "latest"]);
    assert!(api.expect_digest.is_some());
    assert_eq!(api.overwrite, Overwrite::Tags(vec!["latest".into()]));
    assert_eq!(web.destination.to_string(), "prod.example.com/team/web");
    assert_eq!(web.tags, ["1.4.2"]);
    assert_eq!(web.overwrite, Overwrite::Any);
    // --var wins over the file, per-image values included.
    assert_eq!(cli.tags, ["1.4.2", "1.4", "latest"]);
    assert!(
        matches!(&cli.destination, ImageRef::Registry(r) if r.registry == "other.example.com:5000")
    );
    let no_cli = Plan::parse("release.yaml", text, &{
        let mut v = Vars::new();
        v.set("commit", "x");
        v
    })
    .unwrap();
    assert_eq!(no_cli.images[2].tags, ["3.1.4", "3.1", "latest"]);
}

/// A layout that calls itself a registry repository (so registry limits apply to it) and
/// records how many blob transfers it serves at once.
struct Counting {
    inner: ferry::store::layout::LayoutStore,
    repo: String,
    now: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    max: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl ferry::store::Store for Counting {
    fn location(&self) -> String {
        format!("fake.registry/{}", self.repo)
    }
    fn repo_location(&self) -> Option<ferry::store::RepoLocation> {
        Some(ferry::store::RepoLocation {
            registry: "fake.registry".into(),
            repository: self.repo.clone(),
        })
    }
    async fn resolve(
        &self,
        t: &ferry::store::Target,
    ) -> ferry::Result<Option<ferry::manifest::Descriptor>> {
        self.inner.resolve(t).await
    }
    async fn get_manifest(
        &self,
        t: &ferry::store::Target,
    ) -> ferry::Result<ferry::manifest::RawManifest> {
        self.inner.get_manifest(t).await
    }
    async fn put_manifest(
        &self,
        m: &ferry::manifest::RawManifest,
        tags: &[String],
    ) -> ferry::Result<()> {
        self.inner.put_manifest(m, tags).await
    }
    async fn has_blob(&self, d: &ferry::manifest::Descriptor) -> ferry::Result<bool> {
        self.inner.has_blob(d).await
    }
    async fn open_blob(
        &self,
        d: &ferry::manifest::Descriptor,
        offset: u64,
    ) -> ferry::Result<ferry::store::BlobStream> {
        self.inner.open_blob(d, offset).await
    }
    async fn put_blob(
        &self,
        d: &ferry::manifest::Descriptor,
        s: &dyn ferry::store::BlobSource,
    ) -> ferry::Result<u64> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(n, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = self.inner.put_blob(d, s).await;
        self.now.fetch_sub(1, SeqCst);
        r
    }
    async fn list_tags(&self) -> ferry::Result<Vec<String>> {
        self.inner.list_tags().await
    }
}

/// Runs 6 images of 4 layers each into one "registry" with a per-registry limit; returns the
/// most blob uploads seen at once.
async fn most_at_once(limit: usize) -> usize {
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let max = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let now = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut jobs = Vec::new();
    for i in 0..6 {
        write_layout(&src, &format!("t{i}"), &small(300 + i).layers(4, 1024));
        let dst = dir.path().join(format!("dst{i}"));
        jobs.push(ferry::promote::Job {
            label: format!("t{i}"),
            source: Arc::new(ferry::store::layout::LayoutStore::open(&src).unwrap()),
            target: ferry::store::Target::Tag(format!("t{i}")),
            destination: Arc::new(Counting {
                inner: ferry::store::layout::LayoutStore::create(&dst).unwrap(),
                repo: format!("app{i}"),
                now: now.clone(),
                max: max.clone(),
            }),
            tags: vec!["1.0".into()],
            expect_digest: None,
            overwrite: Overwrite::Never,
            referrers: None,
            seen_tags: Vec::new(),
            manifest: None,
        });
    }
    let opts = ferry::promote::PromoteOptions {
        images: 6,
        jobs: 8,
        ..Default::default()
    };
    let limits = ferry::copy::RegistryLimits::new(limit);
    let p = ferry::promote::Promoter::new(opts, limits, Arc::new(ferry::promote::SilentPlan));
    let r = p.run(&jobs).await;
    assert_eq!(r.outcome, Outcome::Promoted, "{r:#?}");
    assert_eq!(r.totals.blobs.copied, 30);
    max.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_registry_limit_bounds_blob_transfers_across_images() {
    assert_eq!(most_at_once(2).await, 2);
    let unlimited = most_at_once(0).await;
    assert!(
        unlimited > 6,
        "without a limit, images overlap: {unlimited}"
    );
}
