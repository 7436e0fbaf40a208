//! Tests against the real `docker-registry` (distribution 2.8) and OCI layouts, with skopeo and umoci as referees: the store contracts, auth (Basic, bearer, per-repository credentials), TLS, uploads, copies, the CLI, credential files. One binary: they share the registry harness and the fixtures.

#[path = "../registry_common/mod.rs"]
mod registry_common;
#[path = "../support/mod.rs"]
mod support;

mod archive_hostile;
mod archive_memory;
mod blob_cache;
mod cli_copy;
mod cli_creds;
mod cli_output;
mod copy_registry;
mod creds_config;
mod docker_archive;
mod export_import;
mod format_convert;
mod harness_smoke;
mod layout_fixtures;
mod layout_hardening;
mod layout_referrers;
mod layout_store;
mod oci_archive;
mod registry_auth;
mod registry_mtls;
mod registry_store;
mod registry_tls;
mod secrets;
mod upload_real_registry;
