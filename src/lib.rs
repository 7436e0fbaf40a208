//! ferry: a daemonless, streaming, digest-exact copier of OCI/Docker images between registries
//! and OCI image layouts.
//!
//! An image is a graph: a tag names a manifest (or an index of per-platform manifests); a
//! manifest names a config blob and layer blobs. ferry copies children before parents (blobs,
//! then child manifests, then the index, then the tags), so a tag is never written before
//! everything it names is present and verified at the destination.

pub mod cancel;
pub mod chart;
pub mod convert;
pub mod copy;
pub mod creds;
pub mod delete;
pub mod digest;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod inspect;
pub mod manifest;
pub mod progress;
pub mod promote;
pub mod reference;
pub mod referrers;
pub mod store;
pub mod sync;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::ImageRef;
