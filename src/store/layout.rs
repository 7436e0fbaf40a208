//! OCI layout directories as a store.
