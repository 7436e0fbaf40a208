//! Registries as a store: HTTP client, auth, uploads, retries.
