//! Authentication against the real docker-registry: HTTP Basic (htpasswd) and the bearer-token
//! flow with an in-process token server (scopes, mounts, refused access, token refresh).

use std::sync::Arc;
use std::time::Duration;

use crate::registry_common::*;
use crate::support::registry::{Registry, RegistryConfig};
use crate::support::token_server::{Grant, TokenConfig, TokenServer};
use ferry::creds::CredentialSource;
use ferry::error::Error;
use ferry::manifest::{self, Children};
use ferry::store::{Store, Target};

const PASSWORD: &str = "ferry-test-password";

fn htpasswd_registry() -> Registry {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/htpasswd");
    Registry::start_with(RegistryConfig {
        auth_yaml: Some(format!(
            "  htpasswd:\n    realm: ferry-test\n    path: {path}\n"
        )),
    })
}

fn creds(reg: &Registry, user: &str, secret: &str) -> Option<Arc<dyn CredentialSource>> {
    Some(TestCreds::new(&reg.addr, user, secret))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_push_and_pull() {
    let reg = htpasswd_registry();
    let source = TestCreds::new(&reg.addr, "ferry", PASSWORD);
    let c = client(&reg.addr, Some(source.clone()));
    c.ping().await.unwrap();
    let s = store(&c, "team/basic");
    let m = push_image(&s, manifest::DOCKER_MANIFEST, 1).await;
    s.put_manifest(&m, &["v1".into()]).await.unwrap();
    let got = s.get_manifest(&Target::Tag("v1".into())).await.unwrap();
    assert_eq!(got.bytes, m.bytes);
    assert_eq!(s.list_tags().await.unwrap(), vec!["v1".to_string()]);
    assert!(source
        .lookups
        .lock()
        .unwrap()
        .iter()
        .all(|r| r == &reg.addr));
    assert_eq!(c.stats().token_fetches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_wrong_or_missing_password_is_a_clear_auth_error() {
    let reg = htpasswd_registry();
    let c = client(&reg.addr, creds(&reg, "ferry", "not-the-password-42"));
    let e = store(&c, "team/basic")
        .get_manifest(&Target::Tag("v1".into()))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    assert!(
        msg.contains("refused the credentials") && msg.contains("\"ferry\""),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-password-42") && !format!("{e:?}").contains("not-the-password-42"),
        "{msg}"
    );
    assert_eq!(c.stats().retries, 0, "refused credentials are not retried");

    let anon = client(&reg.addr, None);
    let e = anon.ping().await.unwrap_err();
    assert!(
        matches!(e, Error::Auth { .. }) && e.to_string().contains("requires a login"),
        "{e}"
    );
}

struct TokenSetup {
    tokens: TokenServer,
    reg: Registry,
}

fn token_registry(cfg: TokenConfig) -> TokenSetup {
    let tokens = TokenServer::start(cfg);
    let reg = Registry::start_with(RegistryConfig {
        auth_yaml: Some(tokens.auth_yaml()),
    });
    TokenSetup { tokens, reg }
}

fn users() -> TokenConfig {
    TokenConfig {
        anonymous: vec![Grant::new("public/*", &["pull"])],
        ..TokenConfig::default()
    }
    .user(
        "admin",
        "admin-pw",
        vec![Grant::new("*", &["pull", "push"])],
    )
    .user(
        "alice",
        "alice-pw",
        vec![
            Grant::new("alice/*", &["pull", "push"]),
            Grant::new("shared/*", &["pull"]),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_scopes_and_mounts() {
    let TokenSetup { tokens, reg } = token_registry(users());
    let admin = client(&reg.addr, creds(&reg, "admin", "admin-pw"));
    let base = push_image(&store(&admin, "shared/base"), manifest::OCI_MANIFEST, 1).await;
    let secret = push_image(&store(&admin, "bob/secret"), manifest::OCI_MANIFEST, 2).await;

    let alice = client(&reg.addr, creds(&reg, "alice", "alice-pw"));
    let app = store(&alice, "alice/app");
    tokens.clear();
    let own = push_image(&app, manifest::DOCKER_MANIFEST, 3).await;
    assert_eq!(
        app.get_manifest(&Target::Digest(own.digest.clone()))
            .await
            .unwrap()
            .bytes,
        own.bytes
    );
    let asked = tokens.requests();
    assert_eq!(
        asked.len(),
        1,
        "one push token serves every request of the repository: {asked:?}"
    );
    assert_eq!(asked[0].user.as_deref(), Some("alice"));
    assert_eq!(asked[0].service.as_deref(), Some("ferry-test-registry"));
    assert_eq!(
        asked[0].scopes,
        vec!["repository:alice/app:pull,push".to_string()]
    );

    // Mount from a repository alice may pull: one token request with both scopes.
    let Children::Image { layers, .. } = base.children().unwrap() else {
        panic!()
    };
    tokens.clear();
    assert!(app.mount_blob(&layers[0], "shared/base").await.unwrap());
    let asked = tokens.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    let mut scopes = asked[0].scopes.clone();
    scopes.sort();
    assert_eq!(
        scopes,
        vec![
            "repository:alice/app:pull,push",
            "repository:shared/base:pull"
        ]
    );
    assert!(asked[0]
        .granted
        .contains(&("shared/base".into(), vec!["pull".into()])));

    // Mount from a repository alice may not read: asked, not granted, not mounted, not fatal.
    let Children::Image { layers, .. } = secret.children().unwrap() else {
        panic!()
    };
    tokens.clear();
    assert!(!app.mount_blob(&layers[0], "bob/secret").await.unwrap());
    let asked = tokens.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.scopes.contains(&"repository:bob/secret:pull".to_string())),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .all(|r| r.granted.iter().all(|(n, _)| n != "bob/secret")),
        "{asked:?}"
    );
    assert!(!app.has_blob(&layers[0]).await.unwrap());

    // Reading a repository the token does not cover is refused by the registry.
    let e = store(&alice, "bob/secret")
        .get_manifest(&Target::Digest(secret.digest.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(e.to_string().contains("bob/secret"), "{e}");
    assert_eq!(alice.stats().mounts_succeeded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_tokens_and_refused_credentials() {
    let TokenSetup { tokens, reg } = token_registry(users());
    let admin = client(&reg.addr, creds(&reg, "admin", "admin-pw"));
    let m = push_image(&store(&admin, "public/tool"), manifest::OCI_MANIFEST, 5).await;
    admin.ping().await.unwrap();

    let anon = client(&reg.addr, None);
    let public = store(&anon, "public/tool");
    assert_eq!(
        public
            .get_manifest(&Target::Digest(m.digest.clone()))
            .await
            .unwrap()
            .bytes,
        m.bytes
    );
    assert!(tokens
        .requests()
        .iter()
        .any(|r| r.user.is_none() && r.status == 200));
    let blob = MemBlob::new("anonymous push");
    let e = public
        .put_blob(&blob.descriptor("application/octet-stream"), &blob)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");

    let wrong = client(&reg.addr, creds(&reg, "alice", "wrong-pw-123"));
    let e = store(&wrong, "alice/app").list_tags().await.unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(matches!(e, Error::Auth { .. }), "{msg}");
    assert!(
        msg.contains("token server") && msg.contains("\"alice\""),
        "{msg}"
    );
    assert!(!msg.contains("wrong-pw-123"), "{msg}");
    assert!(tokens
        .requests()
        .iter()
        .any(|r| r.user.as_deref() == Some("alice") && r.status == 401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_when_they_expire() {
    let cfg = TokenConfig {
        expires_in: Some(2),
        use_access_token_field: true,
        ..users()
    };
    let TokenSetup { tokens, reg } = token_registry(cfg);
    let alice = client(&reg.addr, creds(&reg, "alice", "alice-pw"));
    let s = store(&alice, "alice/refresh");
    let m = push_image(&s, manifest::OCI_MANIFEST, 6).await;
    let before = alice.stats().token_fetches;
    assert_eq!(before, 1);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(s
        .resolve(&Target::Digest(m.digest.clone()))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        alice.stats().token_fetches,
        2,
        "an expired token is fetched again"
    );
    assert_eq!(tokens.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_tokens_use_the_oauth2_refresh_grant() {
    let mut cfg = users();
    cfg.refresh_tokens
        .insert("rt-alice-123".into(), "alice".into());
    let TokenSetup { tokens, reg } = token_registry(cfg);
    let alice = client(&reg.addr, creds(&reg, "<token>", "rt-alice-123"));
    let s = store(&alice, "alice/oauth");
    let m = push_image(&s, manifest::OCI_MANIFEST, 8).await;
    assert_eq!(
        s.get_manifest(&Target::Digest(m.digest.clone()))
            .await
            .unwrap()
            .bytes,
        m.bytes
    );
    let asked = tokens.requests();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|r| r.oauth && r.user.as_deref() == Some("alice") && r.status == 200),
        "{asked:?}"
    );
    assert_eq!(asked[0].scopes, vec!["repository:alice/oauth:pull,push"]);

    let stale = client(&reg.addr, creds(&reg, "<token>", "rt-revoked-999"));
    let e = store(&stale, "alice/oauth").list_tags().await.unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(
        matches!(e, Error::Auth { .. }) && msg.contains("identity token"),
        "{msg}"
    );
    assert!(!msg.contains("rt-revoked-999"), "{msg}");
}
