//! Shared pieces of the benches: the loopback registry and in-memory blobs.

pub mod loopback;
pub mod memory;
