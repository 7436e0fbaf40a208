//! `ferry sync` into an OCI layout directory and into OCI archives (one per repository, below
//! the destination directory): skopeo reads what was written, and a second run skips it all.

use crate::promote_cli::{code, json, stderr};
use crate::support::fault_server::{FaultConfig, FaultServer};
use crate::support::fixtures::inspect_digest;
use crate::sync_faults::images;
use crate::sync_support::*;

#[test]
fn sync_writes_layouts_and_archives_and_skips_them_warm() {
    let src = FaultServer::start(FaultConfig::new());
    images(&src, &["team/app0", "team/app1"], &["a", "b"]);
    let dir = tempfile::tempdir().unwrap();
    for (kind, suffix) in [("oci", ""), ("oci-archive", ".tar")] {
        let out = dir.path().join(kind);
        let text = format!(
            "sync:\n  - source: {}/team\n    repositories: [app0, app1]\n    destination: {kind}:{}\n",
            src.host(),
            out.display()
        );
        let cfg = write(dir.path(), &format!("{kind}.yaml"), &text);
        let o = ferry(&["sync", "--json", &cfg], &[]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(json(&o)["totals"]["copied"], 4, "{kind}");
        for repo in ["app0", "app1"] {
            let r = format!("{kind}:{}/{repo}{suffix}:b", out.display());
            let want = src.tag(&format!("team/{repo}"), "b").unwrap();
            assert_eq!(inspect_digest(&r), want, "{r}");
        }
        let o = ferry(&["sync", "--json", &cfg], &[]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let r = json(&o);
        assert_eq!(
            (
                r["totals"]["skipped"].as_u64(),
                r["totals"]["copied"].as_u64()
            ),
            (Some(4), Some(0)),
            "{kind}: {r}"
        );
    }
}
