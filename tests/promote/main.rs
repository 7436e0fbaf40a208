//! Promotion tests: plans, guards, the atomic run, the CLI, against the real `docker-registry`. One binary: they share the registry harness, the ChartMuseum test server and the promotion helpers.

#[path = "../support/chartmuseum.rs"]
#[allow(dead_code)]
mod chartmuseum;
#[path = "../promote_common/mod.rs"]
mod promote_common;
#[path = "../support/mod.rs"]
mod support;

mod plan_charts;
mod promote_cli;
mod promote_output;
mod promote_plan;
mod promote_referrers;
mod promote_registry;
mod sync_deploy;
mod sync_faults;
mod sync_local;
mod sync_mirror;
mod sync_support;
