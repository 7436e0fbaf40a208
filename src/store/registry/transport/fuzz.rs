//! Property tests (proptest) of the header parsers a registry's answers go through:
//! `WWW-Authenticate`, `Range`, `Content-Range`, `Link` and `Retry-After`. Any input must parse
//! or be refused without a panic; well-formed inputs must give back what they say. The committed
//! corpus (`tests/fuzz-corpus/*.txt`, one input per line) replays inputs that once mattered;
//! proptest's own regressions live in `tests/fuzz-corpus/proptest-regressions.txt`.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderValue, LINK};
use url::Url;

use super::challenge::parse_challenges;
use super::headers::{content_range_start, next_link, parse_range, parse_retry_after};

/// Cases per property: `PROPTEST_CASES` overrides (the CI's bounded run sets more).
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/fuzz-corpus/proptest-regressions.txt",
            ),
        )),
        ..ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(256),
        )
    }
}

/// The lines of a corpus file.
pub(crate) fn corpus(name: &str) -> Vec<String> {
    let path = format!("{}/tests/fuzz-corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(str::to_string)
        .collect()
}

fn link_headers(v: &str) -> Option<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(LINK, HeaderValue::from_str(v).ok()?);
    Some(h)
}

fn base() -> Url {
    Url::parse("http://r.example:5000/v2/a/tags/list?n=10").unwrap()
}

#[test]
fn the_corpus_parses_without_panics() {
    for line in corpus("www-authenticate.txt") {
        for c in parse_challenges(&line) {
            assert!(!c.scheme.is_empty(), "{line:?}");
        }
    }
    for line in corpus("range.txt") {
        let _ = parse_range(Some(&line));
        let _ = content_range_start(Some(&line));
    }
    for line in corpus("link.txt") {
        if let Some(h) = link_headers(&line) {
            let _ = next_link(&base(), &h);
        }
    }
    let now = SystemTime::now();
    for line in corpus("retry-after.txt") {
        let _ = parse_retry_after(&line, now);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_www_authenticate_parses_without_panic(s in "\\PC{0,200}") {
        for c in parse_challenges(&s) {
            prop_assert!(!c.scheme.is_empty());
        }
    }

    #[test]
    fn bearer_challenges_give_back_their_parameters(
        realm in "https?://[a-z0-9.:]{1,20}/[a-z/]{0,10}",
        service in "[A-Za-z0-9._ -]{1,20}",
        scope in "repository:[a-z0-9/._-]{1,20}:(pull|push|pull,push)",
        spaces in " {0,3}",
    ) {
        let h = format!(
            "Bearer realm=\"{realm}\",{spaces}service=\"{service}\",scope=\"{scope}\", Basic realm=\"x\""
        );
        let all = parse_challenges(&h);
        prop_assert_eq!(all.len(), 2, "{}", h);
        prop_assert_eq!(all[0].scheme.as_str(), "bearer");
        prop_assert_eq!(all[0].param("realm"), Some(realm.as_str()));
        prop_assert_eq!(all[0].param("service"), Some(service.as_str()));
        prop_assert_eq!(all[0].param("scope"), Some(scope.as_str()));
        prop_assert_eq!(all[1].scheme.as_str(), "basic");
    }

    #[test]
    fn any_range_or_content_range_parses_without_panic(s in "\\PC{0,60}") {
        let _ = parse_range(Some(&s));
        let _ = content_range_start(Some(&s));
    }

    #[test]
    fn ranges_give_the_bytes_held(end in 1u64.., prefix in "(|bytes=|bytes )") {
        prop_assert_eq!(parse_range(Some(&format!("{prefix}0-{end}"))), end.saturating_add(1));
    }

    #[test]
    fn content_ranges_give_their_start(start in any::<u64>(), len in 0u64..1 << 40) {
        let end = start.saturating_add(len);
        let v = format!("bytes {start}-{end}/*");
        prop_assert_eq!(content_range_start(Some(&v)), Some(start));
    }

    #[test]
    fn any_link_header_parses_without_panic(s in "[ -~]{0,120}") {
        if let Some(h) = link_headers(&s) {
            let _ = next_link(&base(), &h);
        }
    }

    #[test]
    fn next_links_resolve_against_the_page(
        last in "[a-z0-9._-]{1,20}",
        n in 1u32..1000,
        other in "(|<https://x\\.example/prev>; rel=\"prev\", )",
    ) {
        let v = format!("{other}</v2/a/tags/list?n={n}&last={last}>; rel=\"next\"");
        let h = link_headers(&v).unwrap();
        let next = next_link(&base(), &h).unwrap();
        prop_assert_eq!(
            next.as_str(),
            format!("http://r.example:5000/v2/a/tags/list?n={n}&last={last}")
        );
    }

    #[test]
    fn any_retry_after_parses_without_panic(s in "\\PC{0,60}") {
        let _ = parse_retry_after(&s, SystemTime::now());
    }

    #[test]
    fn retry_after_seconds_and_dates(secs in 0u64..1_000_000, past in 0u64..1_000_000) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        prop_assert_eq!(parse_retry_after(&secs.to_string(), now), Some(Duration::from_secs(secs)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(secs));
        prop_assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(secs)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(past));
        prop_assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
    }
}
