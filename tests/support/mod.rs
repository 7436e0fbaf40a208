//! Test support: real registries, a token server, a fault-injecting server, and image fixtures.
#![allow(dead_code)]

pub mod fault_server;
pub mod fixtures;
pub mod referrers;
pub mod registry;
pub mod token_server;
