//! Tests against the in-process fault-injecting registry (what a real registry will not do on demand): retries, uploads and their resumes, registry quirks, the fault matrix through the copy engine, multi-tag PUTs, and the harness's own self-tests. One binary: they share the fault server and the fixtures.

#[path = "../registry_common/mod.rs"]
mod registry_common;
#[path = "../support/mod.rs"]
mod support;

mod copy_faults;
#[path = "../support/fault_server/selftest.rs"]
mod fault_server_selftest;
mod layout_kill;
mod promote_cancel;
mod promote_multitag;
mod promote_race;
mod referrers_api;
mod registry_faults;
mod registry_retry;
mod resume_after_kill;
mod signals;
mod upload_fault_quirks;
mod upload_personalities;
mod upload_resume;
