//! Header helpers every layer reads: typed access, `Location`, `Retry-After`, `Docker-Content-Digest`.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use url::Url;

use crate::digest::Digest;

/// The header registries use to say which digest they served or stored.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

pub fn header_str(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub fn header_u64(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}

/// The `Location` of a response, resolved against the request URL (absolute or relative).
pub fn location(base: &Url, headers: &HeaderMap) -> Option<Url> {
    let v = headers.get(LOCATION)?.to_str().ok()?;
    base.join(v).ok()
}

/// The server's `Retry-After`, if it sent one we can read.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, SystemTime::now())
}

/// Parses a `Retry-After` value: delta seconds or an HTTP date (a date in the past means 0).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The digest in a response's `Docker-Content-Digest`, if present and well-formed.
pub fn content_digest(headers: &HeaderMap) -> Option<Digest> {
    header_str(headers, DOCKER_CONTENT_DIGEST).and_then(|v| v.trim().parse().ok())
}

/// `Range: 0-<end>` (also `bytes=0-<end>`) → bytes held (`end + 1`). `0-0` and no header mean
/// none: distribution answers `0-0` for an empty session, so a lone first byte would be sent
/// again; nothing else is ambiguous.
pub fn parse_range(v: Option<&str>) -> u64 {
    let Some(v) = v else { return 0 };
    let v = v
        .trim()
        .trim_start_matches("bytes")
        .trim_start_matches(['=', ' ']);
    let end = v
        .split_once('-')
        .and_then(|(_, e)| e.split('/').next())
        .and_then(|e| e.trim().parse::<u64>().ok());
    match end {
        Some(0) | None => 0,
        Some(e) => e.saturating_add(1),
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` (a 206's), when readable.
pub fn content_range_start(v: Option<&str>) -> Option<u64> {
    v.and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The `rel="next"` target of a `Link` header, resolved against the current page.
pub fn next_link(base: &Url, headers: &HeaderMap) -> Option<Url> {
    let values = headers.get_all(reqwest::header::LINK);
    for value in values.iter().filter_map(|v| v.to_str().ok()) {
        for link in value.split(',') {
            let (target, params) = link.trim().split_once(';').unwrap_or((link, ""));
            let Some(target) = target
                .trim()
                .strip_prefix('<')
                .and_then(|t| t.strip_suffix('>'))
            else {
                continue;
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return base.join(target).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn locations_resolve_relative_and_absolute() {
        let base = Url::parse("http://r:5000/v2/a/blobs/uploads/").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            LOCATION,
            HeaderValue::from_static("/v2/a/blobs/uploads/u1?_state=x%3D"),
        );
        assert_eq!(
            location(&base, &h).unwrap().as_str(),
            "http://r:5000/v2/a/blobs/uploads/u1?_state=x%3D"
        );
        h.insert(
            LOCATION,
            HeaderValue::from_static("https://s3.example/b?sig=1"),
        );
        assert_eq!(
            location(&base, &h).unwrap().as_str(),
            "https://s3.example/b?sig=1"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(90))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("0-999")), 1000);
        assert_eq!(parse_range(Some("bytes=0-999")), 1000);
        assert_eq!(parse_range(Some("bytes 0-4/5")), 5);
        assert_eq!(parse_range(Some("0-0")), 0);
        assert_eq!(parse_range(Some("junk")), 0);
        assert_eq!(parse_range(None), 0);
    }
}
