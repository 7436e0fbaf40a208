//! Authentication of the fault server: Basic, or Bearer with a built-in token endpoint.

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request};

use super::respond::{self, BoxError, Resp};
use super::serve::{Ctx, Route};
use super::state::Shared;
use super::Auth;

const SERVICE: &str = "fault-registry";

fn basic(username: &str, password: &str) -> String {
    let pair = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()
}

/// Whether the request may pass under the configured auth.
pub(super) fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let got = authorization(headers);
    match &shared.cfg.auth {
        Auth::None => true,
        Auth::Basic { username, password } => got == Some(basic(username, password).as_str()),
        Auth::Bearer { .. } => got
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| shared.tokens.lock().unwrap().contains(t)),
    }
}

/// 401 with the `WWW-Authenticate` challenge for `route`.
pub(super) fn challenge(shared: &Shared, route: &Route) -> Resp {
    let repo = match route {
        Route::Manifest { repo, .. }
        | Route::Blob { repo, .. }
        | Route::Uploads { repo }
        | Route::Upload { repo, .. }
        | Route::TagsList { repo } => Some(repo.as_str()),
        _ => None,
    };
    let www = match &shared.cfg.auth {
        Auth::Bearer { .. } => {
            let scope = repo
                .map(|r| format!(",scope=\"repository:{r}:pull,push\""))
                .unwrap_or_default();
            format!(
                "Bearer realm=\"http://{}/token\",service=\"{SERVICE}\"{scope}",
                shared.addr
            )
        }
        _ => {
            let realm = shared.cfg.quirks.basic_realm.as_deref().unwrap_or("fault");
            format!("Basic realm=\"{realm}\"")
        }
    };
    let mut r = respond::oci_error(
        401,
        "UNAUTHORIZED",
        "authentication required",
        serde_json::Value::Null,
    );
    r.headers_mut()
        .insert("www-authenticate", HeaderValue::from_str(&www).unwrap());
    r
}

/// The token endpoint: GET with Basic credentials, or POST a form (`grant_type=password` with
/// `username`/`password`, or `grant_type=refresh_token` with the identity token).
pub(super) async fn token(ctx: &mut Ctx, req: Request<Incoming>) -> Result<Resp, BoxError> {
    let Auth::Bearer {
        username,
        password,
        identity_token,
    } = ctx.shared.cfg.auth.clone()
    else {
        return Ok(respond::status(404, &[]));
    };
    let ok = if req.method() == Method::GET {
        authorization(req.headers()) == Some(basic(&username, &password).as_str())
    } else if req.method() == Method::POST {
        let mut body = Vec::new();
        ctx.read_body(req.into_body(), |d| body.extend_from_slice(d))
            .await?;
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let field = |k: &str| form.get(k).map(String::as_str);
        match field("grant_type") {
            Some("password") => {
                field("username") == Some(&username) && field("password") == Some(&password)
            }
            Some("refresh_token") => {
                identity_token.is_some() && field("refresh_token") == identity_token.as_deref()
            }
            _ => false,
        }
    } else {
        false
    };
    if !ok {
        return Ok(respond::oci_error(
            401,
            "UNAUTHORIZED",
            "bad credentials",
            serde_json::Value::Null,
        ));
    }
    let token = {
        let mut tokens = ctx.shared.tokens.lock().unwrap();
        let t = format!("fault-token-{}", tokens.len() + 1);
        tokens.insert(t.clone());
        t
    };
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    let mut r = respond::status(200, &[("content-type", "application/json".into())]);
    *r.body_mut() = respond::full(body.to_string());
    Ok(r)
}
