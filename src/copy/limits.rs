//! Per-registry limits on blob transfers in flight, shared by every copy that uses one [`Copier`].
//!
//! A limit bounds how many blob transfers (HEAD, mount or upload, with the download feeding it)
//! touch one registry at once, however many images are being copied concurrently. Permits are
//! taken after the per-digest ledger lock, so a copy waiting for another copy's transfer of the
//! same blob holds no permit while it waits.
//!
//! [`Copier`]: super::Copier

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::Store;

/// Blob transfers allowed in flight per registry (`host[:port]` as the API is reached).
#[derive(Debug, Default)]
pub struct RegistryLimits {
    /// Limit for registries without their own entry; 0 means unlimited.
    default: usize,
    overrides: HashMap<String, usize>,
    semaphores: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Permits held for the duration of one blob transfer.
pub struct Permits(#[allow(dead_code)] Vec<OwnedSemaphorePermit>);

impl RegistryLimits {
    /// No limits: every registry is unlimited unless [`RegistryLimits::set`] says otherwise.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// `default` transfers per registry (0: unlimited).
    pub fn new(default: usize) -> Self {
        RegistryLimits {
            default,
            ..Self::default()
        }
    }

    /// A limit for one registry, by `host[:port]` (0: unlimited).
    pub fn set(&mut self, registry: &str, limit: usize) {
        self.overrides.insert(registry.to_string(), limit);
    }

    /// The limit that applies to `registry` (0: unlimited).
    pub fn limit(&self, registry: &str) -> usize {
        self.overrides
            .get(registry)
            .copied()
            .unwrap_or(self.default)
    }

    fn semaphore(&self, registry: &str) -> Option<Arc<Semaphore>> {
        let limit = self.limit(registry);
        if limit == 0 {
            return None;
        }
        let mut map = self.semaphores.lock().unwrap();
        Some(
            map.entry(registry.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(limit)))
                .clone(),
        )
    }

    /// Waits for a permit on each registry behind `stores` (in name order, so two transfers in
    /// opposite directions cannot deadlock). Local stores need no permit.
    pub async fn acquire(&self, stores: &[&dyn Store]) -> Permits {
        let mut names: Vec<String> = stores
            .iter()
            .filter_map(|s| s.repo_location().map(|l| l.registry))
            .collect();
        names.sort();
        names.dedup();
        let mut permits = Vec::new();
        for name in names {
            if let Some(sem) = self.semaphore(&name) {
                permits.push(sem.acquire_owned().await.expect("semaphore never closed"));
            }
        }
        Permits(permits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_the_default() {
        let mut l = RegistryLimits::new(4);
        l.set("prod:5000", 1);
        l.set("open:5000", 0);
        assert_eq!(l.limit("prod:5000"), 1);
        assert_eq!(l.limit("other:5000"), 4);
        assert!(l.semaphore("open:5000").is_none());
        assert_eq!(l.semaphore("prod:5000").unwrap().available_permits(), 1);
        assert!(RegistryLimits::unlimited().semaphore("x").is_none());
    }
}
