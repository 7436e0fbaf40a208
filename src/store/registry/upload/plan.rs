//! Choosing how to upload a blob: the strategies, the chunk size, and what a registry taught us
//! (refusals and limits), remembered per client for the rest of the run.

use std::fmt;
use std::str::FromStr;

const MIB: u64 = 1024 * 1024;

/// The default chunk size (see the module doc of `upload` for why).
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * MIB;
/// The default per-request cap on a chunk, whatever the registry's announced minimum.
pub const DEFAULT_MAX_CHUNK_SIZE: u64 = 256 * MIB;
/// With `auto`, blobs up to this size go in one streamed request (see the module doc).
pub const DEFAULT_MONOLITHIC_MAX: u64 = 2048 * MIB;
/// Blobs up to this size are read into memory, verified, and sent in one replayable request.
pub(super) const SMALL_BLOB: u64 = 256 * 1024;
/// The part minimum of S3-backed registries (ECR): a chunk below it that is refused is tried
/// again at this size.
pub(super) const PART_MIN: u64 = 5 * MIB;
/// The chunk size never shrinks below this.
pub(super) const CHUNK_FLOOR: u64 = 256 * 1024;

/// How a blob's bytes go to the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UploadStrategy {
    /// Per blob: monolithic when it fits in one chunk, chunked otherwise, falling back to the
    /// others when the registry refuses one.
    #[default]
    Auto,
    /// `POST` a session, then `PUT ?digest=` with the whole body (or one `POST ?digest=`).
    Monolithic,
    /// `PATCH` with `Content-Range` per chunk, in order; the last chunk rides on the `PUT`.
    Chunked,
    /// One `PATCH` without `Content-Range` carrying everything, then an empty `PUT`.
    Streamed,
}

impl UploadStrategy {
    pub fn name(self) -> &'static str {
        match self {
            UploadStrategy::Auto => "auto",
            UploadStrategy::Monolithic => "monolithic",
            UploadStrategy::Chunked => "chunked",
            UploadStrategy::Streamed => "streamed",
        }
    }
}

impl fmt::Display for UploadStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for UploadStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(UploadStrategy::Auto),
            "monolithic" => Ok(UploadStrategy::Monolithic),
            "chunked" => Ok(UploadStrategy::Chunked),
            "streamed" => Ok(UploadStrategy::Streamed),
            _ => Err(format!(
                "unknown upload strategy {s:?} (auto, monolithic, chunked, streamed)"
            )),
        }
    }
}

/// Who checks that the bytes ferry uploads hash to their digest.
///
/// A registry verifies every blob when an upload is committed (`PUT ?digest=`) and refuses a
/// mismatch (`DIGEST_INVALID`), so with `Auto` ferry only counts the bytes it sends and relies on
/// that check (and on the `Docker-Content-Digest` the registry answers with); `Always` also
/// hashes them on the way, so a wrong source is stopped before its last byte leaves. Bytes
/// written to a layout or an archive are always hashed by ferry, whatever this says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Verify {
    #[default]
    Auto,
    Always,
}

impl Verify {
    pub fn name(self) -> &'static str {
        match self {
            Verify::Auto => "auto",
            Verify::Always => "always",
        }
    }
}

impl fmt::Display for Verify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Verify {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Verify::Auto),
            "always" => Ok(Verify::Always),
            _ => Err(format!("unknown verify mode {s:?} (auto, always)")),
        }
    }
}

/// What the upload engine learned about one registry; see [`super::super::RegistryClient::upload_profile`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadProfile {
    /// Whether a single `POST ?digest=` with the body stores a small blob (`None`: not tried).
    pub single_post: Option<bool>,
    /// A single-`POST` probe is under way (other uploads do not probe meanwhile).
    pub single_post_probing: bool,
    /// The registry refused chunked uploads (a `PATCH` with `Content-Range`).
    pub chunked_refused: bool,
    /// The registry refused a streamed `PATCH`.
    pub streamed_refused: bool,
    /// The smallest monolithic upload the registry refused: larger ones go another way.
    pub monolithic_refused_from: Option<u64>,
    /// The largest chunk to send, learned from refused sizes (413, or 416 at the right offset).
    pub max_chunk: Option<u64>,
    /// The smallest non-final chunk: `OCI-Chunk-Min-Length`, or learned from a refused small part.
    pub min_chunk: Option<u64>,
    /// The strategy of the last upload that succeeded.
    pub last_success: Option<UploadStrategy>,
}

/// Upload settings of one call: the client's options, or a caller's override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UploadSettings {
    pub strategy: UploadStrategy,
    pub chunk_size: u64,
    pub max_chunk_size: u64,
    pub monolithic_max: u64,
    pub verify: Verify,
}

impl UploadProfile {
    /// What is known in advance about a registry host (`host[:port]` of the API), so that the
    /// usual registries work without a refusal first; uploads then learn the rest:
    /// - `ghcr.io`: request bodies up to 4 MiB;
    /// - `*.pkg.dev` (Google Artifact Registry): no chunked uploads;
    /// - `*.azurecr.io`: monolithic bodies below 20 MB;
    /// - `*.dkr.ecr.*.amazonaws.com`: non-final parts of at least 5 MiB.
    pub fn for_host(host: &str) -> UploadProfile {
        let name = host
            .rsplit_once(':')
            .map_or(host, |(h, _)| h)
            .to_ascii_lowercase();
        let is = |suffix: &str| name == suffix.trim_start_matches('.') || name.ends_with(suffix);
        let mut p = UploadProfile::default();
        if is(".ghcr.io") {
            p.max_chunk = Some(4 * MIB);
            p.monolithic_refused_from = Some(4 * MIB + 1);
        } else if is(".pkg.dev") {
            p.chunked_refused = true;
        } else if is(".azurecr.io") {
            p.monolithic_refused_from = Some(20_000_000);
        } else if name.contains(".dkr.ecr.") && is(".amazonaws.com") {
            p.min_chunk = Some(PART_MIN);
        }
        p
    }

    /// The chunk size to use: the wanted size within the cap, raised to the registry's minimum
    /// and lowered to what it accepted; `None` when the two contradict (no chunk size works).
    pub(crate) fn chunk_size(&self, s: &UploadSettings) -> Option<u64> {
        let cap = s.max_chunk_size.max(CHUNK_FLOOR);
        let max = self.max_chunk.map_or(cap, |m| m.min(cap));
        let min = self.min_chunk.unwrap_or(0);
        if min > max {
            return None;
        }
        Some(s.chunk_size.max(CHUNK_FLOOR).clamp(min, max))
    }

    /// Strategies to try for a blob of `size`, in order. A forced strategy is tried alone.
    pub(crate) fn plan(&self, size: u64, s: &UploadSettings) -> Vec<UploadStrategy> {
        use UploadStrategy::*;
        if s.strategy != Auto {
            return vec![s.strategy];
        }
        let chunk = self.chunk_size(s);
        let mono_ok = self.put_takes(size);
        // A registry that refused requests above some size will not take a larger body whole.
        let capped = self.max_chunk.is_some_and(|m| size > m);
        let fits = !capped
            && (size <= s.monolithic_max || chunk.is_some_and(|c| size <= c) || size <= SMALL_BLOB);
        let order = if fits && mono_ok {
            [Monolithic, Chunked, Streamed]
        } else {
            [Chunked, Monolithic, Streamed]
        };
        order
            .into_iter()
            .filter(|st| match st {
                Monolithic => mono_ok,
                Chunked => chunk.is_some() && !self.chunked_refused,
                Streamed => !self.streamed_refused,
                Auto => false,
            })
            .collect()
    }

    /// A monolithic upload of `size` bytes was refused.
    pub(crate) fn monolithic_refused(&mut self, size: u64) {
        self.monolithic_refused_from =
            Some(self.monolithic_refused_from.map_or(size, |r| r.min(size)));
    }

    /// A chunk of `len` bytes was refused as too large: the smaller size to use from now on, if
    /// one is allowed.
    pub(crate) fn shrink(&mut self, len: u64) -> Option<u64> {
        let next = (len / 2).max(CHUNK_FLOOR);
        if next >= len || self.min_chunk.is_some_and(|m| next < m) {
            return None;
        }
        let max = self.max_chunk.map_or(next, |m| m.min(next));
        self.max_chunk = Some(max);
        Some(max)
    }

    /// Whether a closing `PUT` may carry `len` bytes (none that large was refused).
    pub(crate) fn put_takes(&self, len: u64) -> bool {
        self.monolithic_refused_from.is_none_or(|r| len < r)
    }

    /// A non-final chunk of `len` bytes was refused (not for its size as far as we can tell):
    /// when it was below [`PART_MIN`], the registry may want larger parts.
    pub(crate) fn grow(&mut self, len: u64) -> Option<u64> {
        let blocked = self.max_chunk.is_some_and(|m| m < PART_MIN);
        if len >= PART_MIN || blocked || self.min_chunk.is_some_and(|m| m >= PART_MIN) {
            return None;
        }
        self.min_chunk = Some(PART_MIN);
        Some(PART_MIN)
    }

    /// The registry announced `OCI-Chunk-Min-Length`.
    pub(crate) fn announced_min(&mut self, min: u64) {
        self.min_chunk = Some(self.min_chunk.map_or(min, |m| m.max(min)));
    }
}

#[cfg(test)]
mod tests {
    use super::UploadStrategy::*;
    use super::*;

    fn settings(strategy: UploadStrategy, chunk: u64) -> UploadSettings {
        UploadSettings {
            strategy,
            chunk_size: chunk,
            max_chunk_size: DEFAULT_MAX_CHUNK_SIZE,
            monolithic_max: chunk,
            verify: Verify::Auto,
        }
    }

    #[test]
    fn auto_picks_by_size_and_forced_is_alone() {
        let p = UploadProfile::default();
        let s = settings(Auto, 16 * MIB);
        assert_eq!(p.plan(MIB, &s), [Monolithic, Chunked, Streamed]);
        assert_eq!(p.plan(16 * MIB, &s), [Monolithic, Chunked, Streamed]);
        assert_eq!(p.plan(16 * MIB + 1, &s), [Chunked, Monolithic, Streamed]);
        assert_eq!(p.plan(1, &settings(Streamed, MIB)), [Streamed]);
    }

    #[test]
    fn auto_sends_up_to_the_monolithic_limit_in_one_request() {
        let p = UploadProfile::default();
        let s = UploadSettings {
            monolithic_max: DEFAULT_MONOLITHIC_MAX,
            ..settings(Auto, 16 * MIB)
        };
        assert_eq!(p.plan(1024 * MIB, &s), [Monolithic, Chunked, Streamed]);
        assert_eq!(p.plan(4096 * MIB, &s), [Chunked, Monolithic, Streamed]);
        let ghcr = UploadProfile::for_host("ghcr.io");
        assert_eq!(ghcr.plan(100 * MIB, &s), [Chunked, Streamed]);
    }

    #[test]
    fn refusals_reorder_and_remove() {
        let s = settings(Auto, 16 * MIB);
        let mut p = UploadProfile::default();
        p.monolithic_refused(20 * MIB);
        assert_eq!(p.plan(10 * MIB, &s), [Monolithic, Chunked, Streamed]);
        assert_eq!(p.plan(100 * MIB, &s), [Chunked, Streamed]);
        p.chunked_refused = true;
        assert_eq!(p.plan(100 * MIB, &s), [Streamed]);
        p.max_chunk = Some(4 * MIB);
        p.chunked_refused = false;
        assert_eq!(
            p.plan(6 * MIB, &s),
            [Chunked, Monolithic, Streamed],
            "a blob above the learned request cap is chunked"
        );
    }

    #[test]
    fn chunk_size_between_minimum_and_caps() {
        let mut p = UploadProfile::default();
        assert_eq!(p.chunk_size(&settings(Auto, MIB)), Some(MIB));
        assert_eq!(p.chunk_size(&settings(Auto, 1)), Some(CHUNK_FLOOR));
        assert_eq!(
            p.chunk_size(&settings(Auto, 1 << 40)),
            Some(DEFAULT_MAX_CHUNK_SIZE)
        );
        p.announced_min(20 * MIB);
        assert_eq!(p.chunk_size(&settings(Auto, MIB)), Some(20 * MIB));
        p.max_chunk = Some(8 * MIB);
        assert_eq!(p.chunk_size(&settings(Auto, MIB)), None, "contradiction");
    }

    #[test]
    fn shrink_halves_down_to_the_floor_and_grow_jumps_to_the_part_minimum() {
        let mut p = UploadProfile::default();
        assert_eq!(p.shrink(16 * MIB), Some(8 * MIB));
        assert_eq!(p.shrink(8 * MIB), Some(4 * MIB));
        assert_eq!(p.max_chunk, Some(4 * MIB));
        assert_eq!(p.shrink(CHUNK_FLOOR), None);
        assert_eq!(p.grow(MIB), None, "not while a smaller cap is known");
        let mut q = UploadProfile::default();
        assert_eq!(q.grow(MIB), Some(PART_MIN));
        assert_eq!(q.grow(MIB), None, "only once");
        assert_eq!(q.grow(PART_MIN), None);
        assert_eq!(q.chunk_size(&settings(Auto, MIB)), Some(PART_MIN));
    }

    #[test]
    fn known_hosts_start_with_their_limits() {
        let ghcr = UploadProfile::for_host("ghcr.io");
        let s = settings(Auto, 16 * MIB);
        assert_eq!(ghcr.chunk_size(&s), Some(4 * MIB));
        assert_eq!(ghcr.plan(5 * MIB, &s), [Chunked, Streamed]);
        assert_eq!(ghcr.plan(4 * MIB, &s), [Monolithic, Chunked, Streamed]);
        let gar = UploadProfile::for_host("europe-docker.pkg.dev");
        assert_eq!(gar.plan(100 * MIB, &s), [Monolithic, Streamed]);
        let acr = UploadProfile::for_host("team.azurecr.io:443");
        assert!(!acr.put_takes(20_000_000) && acr.put_takes(16 * MIB));
        let ecr = UploadProfile::for_host("123.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(ecr.chunk_size(&settings(Auto, MIB)), Some(PART_MIN));
        for other in [
            "localhost:5000",
            "notghcr.io",
            "registry-1.docker.io",
            "s3.amazonaws.com",
        ] {
            assert_eq!(
                UploadProfile::for_host(other),
                UploadProfile::default(),
                "{other}"
            );
        }
    }

    #[test]
    fn strategies_parse() {
        assert_eq!("Chunked".parse::<UploadStrategy>(), Ok(Chunked));
        assert!("ftp".parse::<UploadStrategy>().is_err());
        assert_eq!(Streamed.to_string(), "streamed");
    }
}
