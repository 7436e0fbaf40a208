//! Registry personalities: the quirks of the registries users hit (and of the odd proxy), so
//! the client can be tested against each of them (see /work/shared/docs/REGISTRY-NOTES.md and the peers' issue
//! trackers for where each quirk comes from).
//!
//! A refused request body is read to its end before the answer goes out, so the client always
//! gets the answer (a real registry may answer early and close; the client treats that as a
//! dropped connection, which the flaky personality covers).

use super::{Fault, FaultConfig, Kind};

const MIB: u64 = 1024 * 1024;

/// Quirks of a registry's API; all off by default.
#[derive(Clone, Debug, Default)]
pub struct Quirks {
    /// Status of an accepted `PATCH` (default 202; ECR answers 201).
    pub patch_status: Option<u16>,
    /// The `Range` of every `PATCH` answer stays at the end of the session's first chunk (ECR).
    pub stale_patch_range: bool,
    /// `PATCH` bodies smaller than this are refused with 400 (ECR: 5 MiB parts; the last part
    /// rides on the closing `PUT`, which has no minimum).
    pub min_patch_body: Option<u64>,
    /// Upload request bodies (`POST`, `PATCH`, `PUT`) larger than this are refused: 416 when
    /// the request carries `Content-Range`, 413 otherwise (GHCR: 4 MiB).
    pub max_request_body: Option<u64>,
    /// Every `PATCH` is refused with 405 `UNSUPPORTED`: monolithic uploads only (GAR).
    pub refuse_patch: bool,
    /// Monolithic bodies (`PUT` or `POST ?digest=`) larger than this are refused with 413
    /// (ACR: ~20 MB).
    pub max_monolithic_body: Option<u64>,
    /// Blob `GET`s ignore `Range` and answer 200 with the whole blob.
    pub ignore_range: bool,
    /// A single `POST ?digest=` with the body answers 202 and opens a session, ignoring the
    /// body (distribution).
    pub no_single_post: bool,
    /// Blob and manifest bodies are sent without `Content-Length` (chunked encoding).
    pub no_content_length: bool,
    /// Manifest `HEAD`s carry no `Docker-Content-Digest`.
    pub head_without_digest: bool,
    /// `tags/list` answers pages of this many tags, linked by `Link: <...>; rel="next"`.
    pub tags_page_size: Option<usize>,
    /// Upload sessions live on the second listener (another origin, no auth there), their
    /// `Location` carrying this extra query (e.g. `token=abc`).
    pub uploads_elsewhere: Option<String>,
    /// Blob `GET`s are redirected here (`host:port`) instead of to the second listener.
    pub redirect_to: Option<String>,
    /// The query of blob `GET` redirects (default `sig=fault`).
    pub redirect_query: Option<String>,
    /// The realm of the Basic challenge (default `fault`).
    pub basic_realm: Option<String>,
    /// Sent as `RateLimit-Remaining` on every answer (e.g. `2;w=2`), as Docker Hub does.
    pub rate_limit_remaining: Option<String>,
    /// A proxy in front: the first body request (`PATCH` or `PUT`) of every upload session is
    /// dropped after this many bytes, which the registry never sees (the session stays as it
    /// was).
    pub drop_first_body_after: Option<u64>,
    /// Serve the OCI 1.1 referrers API and answer manifest PUTs with a `subject` with
    /// `OCI-Subject` (without it: 404 on `/referrers/`, like distribution 2.8).
    pub referrers_api: bool,
    /// Referrers answers in pages of this many entries, linked by `Link: <...>; rel="next"`.
    pub referrers_page_size: Option<usize>,
    /// Apply `?artifactType=` and say so with `OCI-Filters-Applied` (else the filter is
    /// ignored and the client must filter).
    pub referrers_filter: bool,
}

/// Registries users hit, as presets of [`Quirks`] (and faults, for [`Personality::Flaky`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    /// CNCF distribution: 202 on `PATCH`, no limits, no single-request upload.
    Distribution,
    /// Amazon ECR: 201 on `PATCH`, non-final parts of at least 5 MiB, stale `Range` after a
    /// `PATCH`.
    Ecr,
    /// GitHub GHCR: request bodies over 4 MiB refused (416 with `Content-Range`, else 413).
    Ghcr,
    /// Google GAR: no `PATCH`; monolithic uploads only.
    Gar,
    /// Azure ACR: monolithic bodies over 20 MB refused with 413.
    Acr,
    /// A registry whose network fails: see [`FaultConfig::flaky`].
    Flaky,
}

impl FaultConfig {
    /// Behave like `p`.
    pub fn personality(mut self, p: Personality) -> Self {
        let q = &mut self.quirks;
        match p {
            Personality::Distribution => q.no_single_post = true,
            Personality::Ecr => {
                q.patch_status = Some(201);
                q.stale_patch_range = true;
                q.min_patch_body = Some(5 * MIB);
            }
            Personality::Ghcr => q.max_request_body = Some(4 * MIB),
            Personality::Gar => q.refuse_patch = true,
            Personality::Acr => q.max_monolithic_body = Some(20_000_000),
            Personality::Flaky => return self.flaky(),
        }
        self
    }

    /// A registry whose network fails, at fixed points (request numbers count per kind):
    /// - the 1st blob `GET` breaks off after 5 MiB of its body;
    /// - the 2nd `PATCH` breaks off after 3 MiB of its body (the registry keeps those bytes);
    /// - the 4th `PATCH` gets a 500, the 6th a 429 with `Retry-After: 2`;
    /// - the 1st closing `PUT` gets a 503;
    /// - every `PATCH` answer moves the `Location` (a stale one gets 404).
    pub fn flaky(self) -> Self {
        self.rotate_upload_location()
            .fault(Fault::drop_body_after(Kind::BlobGet, 1, 5 * MIB))
            .fault(Fault::drop_request_after(Kind::UploadPatch, 2, 3 * MIB))
            .fault(Fault::status(Kind::UploadPatch, 4, 500))
            .fault(Fault::too_many_requests(Kind::UploadPatch, 6, 2))
            .fault(Fault::status(Kind::UploadPut, 1, 503))
    }

    pub fn quirks(mut self, quirks: Quirks) -> Self {
        self.quirks = quirks;
        self
    }
}
