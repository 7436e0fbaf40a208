//! The fault server's OCI 1.1 referrers API (with `Quirks::referrers_api`): every manifest of
//! the repository whose `subject` is the digest, sorted by digest, in pages when asked, the
//! `artifactType` filter applied (with `OCI-Filters-Applied`) only when asked.

use hyper::Uri;
use serde_json::{json, Value};

use super::handlers::{query, query_one};
use super::respond::{self, Resp};
use super::serve::Ctx;

pub(super) fn list(ctx: &Ctx, repo: &str, subject: &str, uri: &Uri) -> Resp {
    let quirks = &ctx.shared.cfg.quirks;
    let q = query(uri);
    let wanted = query_one(&q, "artifactType");
    let filter = wanted.as_ref().filter(|_| quirks.referrers_filter);
    let mut entries: Vec<(String, Value)> = {
        let data = ctx.shared.data();
        let Some(r) = data.repos.get(repo) else {
            return answer(Vec::new(), None, false);
        };
        r.manifests
            .iter()
            .filter_map(|(digest, m)| {
                let doc: Value = serde_json::from_slice(&m.bytes).ok()?;
                (doc["subject"]["digest"].as_str() == Some(subject)).then_some(())?;
                let artifact_type = doc["artifactType"]
                    .as_str()
                    .or(doc["config"]["mediaType"].as_str())
                    .map(String::from);
                let mut entry = json!({
                    "mediaType": m.media_type,
                    "digest": digest.to_string(),
                    "size": m.bytes.len(),
                });
                if let Some(t) = &artifact_type {
                    entry["artifactType"] = json!(t);
                }
                if doc["annotations"].is_object() {
                    entry["annotations"] = doc["annotations"].clone();
                }
                Some((digest.to_string(), entry))
            })
            .filter(|(_, e)| filter.is_none_or(|f| e["artifactType"].as_str() == Some(f)))
            .collect()
    };
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let last = query_one(&q, "last");
    entries.retain(|(d, _)| last.as_ref().is_none_or(|l| d > l));
    let Some(size) = quirks.referrers_page_size else {
        let all = entries.into_iter().map(|(_, e)| e).collect();
        return answer(all, None, filter.is_some());
    };
    let more = entries.len() > size;
    let page: Vec<(String, Value)> = entries.into_iter().take(size).collect();
    let link = more.then(|| {
        let mut next = format!("/v2/{repo}/referrers/{subject}?last={}", page[size - 1].0);
        if let Some(t) = &wanted {
            let t: String = url::form_urlencoded::byte_serialize(t.as_bytes()).collect();
            next.push_str(&format!("&artifactType={t}"));
        }
        format!("<{next}>; rel=\"next\"")
    });
    let page = page.into_iter().map(|(_, e)| e).collect();
    answer(page, link, filter.is_some())
}

fn answer(manifests: Vec<Value>, link: Option<String>, filtered: bool) -> Resp {
    let body = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut headers = vec![(
        "content-type",
        "application/vnd.oci.image.index.v1+json".to_string(),
    )];
    headers.extend(link.map(|l| ("link", l)));
    if filtered {
        headers.push(("oci-filters-applied", "artifactType".to_string()));
    }
    let mut r = respond::status(200, &headers);
    *r.body_mut() = respond::full(serde_json::to_vec(&body).unwrap());
    r
}
