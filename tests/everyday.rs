//! The everyday commands around a release, through the binary against a real registry, OCI
//! layouts and the fault server: `digest`, `inspect`, `ls`, `delete`, `--digestfile`,
//! `completions` and `man`. skopeo is the referee for bytes and digests.
mod support;

use std::path::Path;
use std::process::{Command, Output};

use ferry::Digest;
use serde_json::{json, Value};
use support::fault_server::{FaultConfig, FaultServer, Kind, Quirks};
use support::fixtures::{self, BuiltImage, ImageSpec};
use support::registry::{which, Registry};

#[path = "everyday/deleting.rs"]
mod deleting;
#[path = "everyday/inspect.rs"]
mod inspect;
#[path = "everyday/listing.rs"]
mod listing;
#[path = "everyday/outputs.rs"]
mod outputs;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> Vec<u8> {
    let out = ferry(args);
    assert!(out.status.success(), "ferry {args:?}: {}", stderr(&out));
    out.stdout
}

fn text(args: &[&str]) -> String {
    String::from_utf8(ok(args)).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn code(args: &[&str]) -> (Option<i32>, String) {
    let out = ferry(args);
    (out.status.code(), stderr(&out))
}

/// Builds `spec` into a fresh layout and pushes it to `reg` as `repo_tag` with skopeo.
fn seed(reg: &Registry, repo_tag: &str, spec: &ImageSpec) -> BuiltImage {
    let dir = tempfile::tempdir().unwrap();
    let built = fixtures::write_layout(dir.path(), "t", spec);
    fixtures::seed_registry(dir.path(), "t", &reg.addr, repo_tag);
    built
}
