//! Shards: a stable partition of a sync's source repositories, so N processes (a Kubernetes
//! Indexed Job, a CI matrix) split the work with no overlap and no coordination.
//!
//! A repository belongs to shard `fnv1a64(name) % count`, where `name` is the source
//! `registry/repository`. FNV-1a is fixed by its definition (unlike std's randomly seeded
//! hasher), so every process, build and machine agrees.

use crate::error::{Error, Result};

/// The 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// Shard `index` of `count` (0-based index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    /// Everything: one shard of one.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; `index < count`, `count ≥ 1`.
    pub fn new(index: u64, count: u64) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::Usage {
                arg: "--shard".into(),
                reason: format!(
                    "shard {index} of {count}: the index must be below the count (0..{count})"
                ),
            });
        }
        Ok(Shard { index, count })
    }

    /// `K/N` as written on the command line (K from 0 to N-1).
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::Usage {
            arg: "--shard".into(),
            reason: format!("{s:?}: expected K/N (0 ≤ K < N) or auto"),
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }

    /// `--shard auto`: the index from Kubernetes' `JOB_COMPLETION_INDEX` (given as `index`),
    /// the count from a flag or the environment.
    pub fn auto(index: Option<&str>, count: Option<u64>) -> Result<Shard> {
        let index = index.ok_or_else(|| Error::Usage {
            arg: "--shard auto".into(),
            reason: "JOB_COMPLETION_INDEX is not set (it is set by Kubernetes in an Indexed Job)"
                .into(),
        })?;
        let index: u64 = index.trim().parse().map_err(|_| Error::Usage {
            arg: "--shard auto".into(),
            reason: format!("JOB_COMPLETION_INDEX={index:?} is not a number"),
        })?;
        let count = count.ok_or_else(|| Error::Usage {
            arg: "--shard auto".into(),
            reason: "the shard count is unknown: give --shard-count N or set FERRY_SHARD_COUNT \
                     (the Job's completions)"
                .into(),
        })?;
        Shard::new(index, count)
    }

    /// Whether the repository `name` (`registry/repository`) is this shard's.
    pub fn owns(&self, name: &str) -> bool {
        self.count <= 1 || fnv1a64(name.as_bytes()) % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_its_reference_values() {
        // Test vectors of the FNV reference implementation.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!(Shard::parse("2/5").unwrap(), Shard { index: 2, count: 5 });
        for bad in ["5/5", "1/0", "x/2", "3", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let names: Vec<String> = (0..200).map(|i| format!("r.io/team/app{i}")).collect();
        for n in 1..=5 {
            let mut owners = vec![0; names.len()];
            for k in 0..n {
                let s = Shard::new(k, n).unwrap();
                for (i, name) in names.iter().enumerate() {
                    owners[i] += usize::from(s.owns(name));
                }
            }
            assert!(owners.iter().all(|o| *o == 1), "N={n}");
        }
        assert_eq!(
            Shard::auto(Some("1"), Some(3)).unwrap(),
            Shard { index: 1, count: 3 }
        );
        assert!(Shard::auto(None, Some(3)).is_err());
        assert!(Shard::auto(Some("3"), Some(3)).is_err());
        assert!(Shard::auto(Some("0"), None).is_err());
    }
}
