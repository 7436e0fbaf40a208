//! ChartMuseum's HTTP API, as `helm cm-push` uses it, with the guard `helm cm-push` lacks.
//!
//! The repository URL may carry a context path and a multitenant repository path
//! (`https://host/ctx/org/repo`). As helm-push does, the context path is read from the
//! repository's `index.yaml` (`serverInfo.contextPath`) unless given, and the upload goes to
//! `<contextPath>/api/<repo path>/charts`. Before uploading, `GET .../charts/<name>/<version>`
//! tells whether that version exists and its `digest`; a server whose API is disabled answers
//! every `/api` route with 404 `{"error":"not found"}`, which is reported as such.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{RequestBuilder, Response, StatusCode};
use url::Url;

use super::error::{excerpt, ChartError};
use super::http::{build_http, describe, error_field, expect_ok, is_loopback, server_error};
use super::meta::ChartMeta;
use super::{decide, Chart, PushOptions, PushOutcome, PushReport};
use crate::digest::Digest;

/// How to authenticate to ChartMuseum.
#[derive(Clone, Default)]
pub enum MuseumAuth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for MuseumAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MuseumAuth::None => "None",
            MuseumAuth::Basic { .. } => "Basic(<redacted>)",
            MuseumAuth::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

/// Connection settings for a ChartMuseum server.
#[derive(Clone, Debug)]
pub struct MuseumOptions {
    pub auth: MuseumAuth,
    /// Extra trusted CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub tls_verify: bool,
    /// Allow `http://` to hosts other than loopback.
    pub allow_http: bool,
    /// The server's context path; read from `index.yaml` when `None`.
    pub context_path: Option<String>,
    pub timeout: Duration,
}

impl Default for MuseumOptions {
    fn default() -> Self {
        MuseumOptions {
            auth: MuseumAuth::None,
            ca_file: None,
            client_cert: None,
            tls_verify: true,
            allow_http: false,
            context_path: None,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A push to ChartMuseum checked against what the server holds: the guard's verdict, and where
/// writing it posts.
pub struct MuseumCheck {
    pub report: PushReport,
    api: Url,
    prov: Option<Bytes>,
}

/// A client for one ChartMuseum repository URL.
pub struct MuseumClient {
    http: reqwest::Client,
    repo: Url,
    options: MuseumOptions,
}

impl MuseumClient {
    /// `url` is the repository URL as given to `helm repo add`.
    pub fn new(url: &str, options: MuseumOptions) -> Result<MuseumClient, ChartError> {
        let bad = |reason: String| ChartError::Destination {
            destination: url.into(),
            reason,
        };
        let repo = Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let host = repo.host_str().unwrap_or("").to_string();
        match repo.scheme() {
            "https" => {}
            "http" if options.allow_http || is_loopback(&host) => {}
            "http" => return Err(bad(
                "plain http:// is only used for loopback hosts unless allowed (--dest-plain-http)"
                    .into(),
            )),
            s => {
                return Err(bad(format!(
                    "unsupported scheme {s}: use oci://, https:// or http://"
                )))
            }
        }
        if !repo.username().is_empty() || repo.password().is_some() || repo.query().is_some() {
            return Err(bad(
                "give credentials with --creds (not in the URL), and no query".into(),
            ));
        }
        let http = build_http(&options)?;
        Ok(MuseumClient {
            http,
            repo,
            options,
        })
    }

    /// The repository URL (no credentials), for messages.
    pub fn location(&self) -> String {
        self.repo.as_str().trim_end_matches('/').to_string()
    }

    /// `<repo>/index.yaml`'s `serverInfo.contextPath`, or the one given in the options.
    pub async fn context_path(&self) -> Result<String, ChartError> {
        if let Some(c) = &self.options.context_path {
            return Ok(c.clone());
        }
        let url = self.join_repo("index.yaml");
        let resp = self
            .send("get index", &url, self.http.get(url.clone()))
            .await?;
        let body = expect_ok("get index", &url, resp).await?;
        let text = String::from_utf8_lossy(&body);
        Ok(index_context_path(&text).unwrap_or_default())
    }

    /// `<contextPath>/api/<repo path without contextPath>/charts`, as helm-push builds it.
    pub fn api_url(&self, context_path: &str) -> Url {
        let repo_path = self.repo.path();
        let ctx = format!("/{}", context_path.trim_matches('/'));
        let rest = repo_path.strip_prefix(ctx.as_str()).unwrap_or(repo_path);
        let segments: Vec<&str> = [context_path, "api", rest, "charts"]
            .iter()
            .flat_map(|s| s.split('/'))
            .filter(|s| !s.is_empty())
            .collect();
        let mut url = self.repo.clone();
        url.set_path(&format!("/{}", segments.join("/")));
        url
    }

    /// The digest ChartMuseum holds for `name`/`version`, if it holds that version.
    pub async fn existing(
        &self,
        api: &Url,
        meta: &ChartMeta,
    ) -> Result<Option<Digest>, ChartError> {
        let mut url = api.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has a path")
            .push(&meta.name)
            .push(&meta.version);
        let resp = self
            .send("check chart", &url, self.http.get(url.clone()))
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            let body = resp.bytes().await.unwrap_or_default();
            if error_field(&body).as_deref() == Some("not found") {
                return Err(self.api_disabled(&url));
            }
            return Ok(None);
        }
        let body = expect_ok("check chart", &url, resp).await?;
        let bad = |reason: &str| ChartError::Server {
            op: "check chart",
            url: url.to_string(),
            status: 200,
            body: format!("{reason}: {}", excerpt(&body)),
        };
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|_| bad("not JSON"))?;
        let hex = doc
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad("no digest"))?;
        let digest = Digest::from_str(&format!("sha256:{}", hex.trim_start_matches("sha256:")))
            .map_err(|_| bad("malformed digest"))?;
        Ok(Some(digest))
    }

    /// Uploads the chart (and provenance) to `api`; `Ok(false)` when the server answers 409.
    pub async fn upload(
        &self,
        api: &Url,
        chart: &Chart,
        prov: Option<&Bytes>,
        force: bool,
    ) -> Result<bool, ChartError> {
        let mut url = api.clone();
        if force {
            url.set_query(Some("force"));
        }
        let request = match prov {
            None => self
                .http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/gzip")
                .body(chart.archive.clone()),
            Some(p) => {
                let file = chart.file_name();
                let part = |bytes: &Bytes, name: String| {
                    reqwest::multipart::Part::stream(bytes.clone()).file_name(name)
                };
                let form = reqwest::multipart::Form::new()
                    .part("chart", part(&chart.archive, file.clone()))
                    .part("prov", part(p, format!("{file}.prov")));
                self.http.post(url.clone()).multipart(form)
            }
        };
        let resp = self.send("upload chart", &url, request).await?;
        match resp.status().as_u16() {
            201 | 202 => Ok(true),
            409 => Ok(false),
            404 => {
                let body = resp.bytes().await.unwrap_or_default();
                match error_field(&body).as_deref() {
                    Some("not found") => Err(self.api_disabled(&url)),
                    _ => Err(server_error("upload chart", &url, 404, &body)),
                }
            }
            _ => expect_ok("upload chart", &url, resp).await.map(|_| true),
        }
    }

    /// Decides what publishing `chart` does, reading only: unchanged when the server holds the
    /// same digest (and provenance), refused when it holds another one unless forced.
    pub async fn check(
        &self,
        chart: &Chart,
        options: &PushOptions,
    ) -> Result<MuseumCheck, ChartError> {
        let context = self.context_path().await?;
        let api = self.api_url(&context);
        let previous = self.existing(&api, &chart.meta).await?;
        let same = match &previous {
            Some(d) if d == &chart.digest => match &options.prov {
                Some(p) => Some(self.stored_prov(chart).await?.as_ref() == Some(p)),
                None => Some(true),
            },
            Some(_) => Some(false),
            None => None,
        };
        let report = PushReport {
            chart: chart.meta.name.clone(),
            version: chart.meta.version.clone(),
            destination: api.to_string(),
            result: decide(same, options.force),
            digest: chart.digest.clone(),
            previous,
            manifest: None,
            dry_run: options.dry_run,
        };
        Ok(MuseumCheck {
            report,
            api,
            prov: options.prov.clone(),
        })
    }

    /// Uploads what `checked` decided. A server that answers 409 (the version appeared since
    /// the check, or it refuses overwrites: `DISABLE_FORCE_OVERWRITE`) turns it into refused.
    pub async fn write(&self, chart: &Chart, checked: &mut MuseumCheck) -> Result<(), ChartError> {
        if !checked.report.result.writes() {
            return Ok(());
        }
        let force = checked.report.result == PushOutcome::Replaced;
        if !self
            .upload(&checked.api, chart, checked.prov.as_ref(), force)
            .await?
        {
            checked.report.result = PushOutcome::Refused;
        }
        Ok(())
    }

    /// Publishes `chart`, guarded: [`check`](Self::check), then [`write`](Self::write) unless a
    /// dry run.
    pub async fn push(
        &self,
        chart: &Chart,
        options: &PushOptions,
    ) -> Result<PushReport, ChartError> {
        let mut checked = self.check(chart, options).await?;
        if !options.dry_run {
            self.write(chart, &mut checked).await?;
        }
        Ok(checked.report)
    }

    /// The provenance file the repository serves beside the chart, if any.
    async fn stored_prov(&self, chart: &Chart) -> Result<Option<Bytes>, ChartError> {
        let url = self.join_repo(&format!("charts/{}.prov", chart.file_name()));
        let resp = self
            .send("get provenance", &url, self.http.get(url.clone()))
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        expect_ok("get provenance", &url, resp).await.map(Some)
    }

    fn join_repo(&self, file: &str) -> Url {
        let mut url = self.repo.clone();
        let path = format!("{}/{file}", self.repo.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    fn api_disabled(&self, url: &Url) -> ChartError {
        ChartError::ApiDisabled {
            server: self.repo.host_str().unwrap_or("").to_string(),
            url: url.to_string(),
        }
    }

    async fn send(
        &self,
        op: &'static str,
        url: &Url,
        request: RequestBuilder,
    ) -> Result<Response, ChartError> {
        let request = match &self.options.auth {
            MuseumAuth::None => request,
            MuseumAuth::Basic { user, password } => request.basic_auth(user, Some(password)),
            MuseumAuth::Bearer(token) => request.bearer_auth(token),
        };
        let resp = request.send().await.map_err(|e| ChartError::Transport {
            op,
            url: url.to_string(),
            message: describe(&e),
        })?;
        if matches!(resp.status().as_u16(), 401 | 403) {
            let status = resp.status().as_u16();
            let body = resp.bytes().await.unwrap_or_default();
            return Err(ChartError::Unauthorized {
                op,
                url: url.to_string(),
                status,
                body: excerpt(&body),
            });
        }
        Ok(resp)
    }
}

/// `serverInfo.contextPath` of an index.yaml.
fn index_context_path(text: &str) -> Option<String> {
    let node = marked_yaml::parse_yaml(0, text).ok()?;
    let info = node.as_mapping()?.get_mapping("serverInfo")?;
    Some(info.get_scalar("contextPath")?.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> MuseumClient {
        MuseumClient::new(url, MuseumOptions::default()).unwrap()
    }

    #[test]
    fn api_url_follows_helm_push() {
        let c = client("http://127.0.0.1:8080");
        assert_eq!(c.api_url("").path(), "/api/charts");
        let c = client("http://127.0.0.1:8080/org/repo/");
        assert_eq!(c.api_url("").path(), "/api/org/repo/charts");
        let c = client("http://127.0.0.1:8080/ctx/org/repo");
        assert_eq!(c.api_url("/ctx").path(), "/ctx/api/org/repo/charts");
        let c = client("http://127.0.0.1:8080/ctx");
        assert_eq!(c.api_url("/ctx").path(), "/ctx/api/charts");
    }

    #[test]
    fn urls_are_checked() {
        let opts = MuseumOptions::default;
        assert!(MuseumClient::new("http://charts.example.com", opts()).is_err());
        assert!(MuseumClient::new("https://u:p@charts.example.com", opts()).is_err());
        assert!(MuseumClient::new("ftp://charts.example.com", opts()).is_err());
        assert!(MuseumClient::new("https://charts.example.com/x", opts()).is_ok());
    }

    #[test]
    fn context_path_from_index() {
        let idx = "apiVersion: v1\nentries: {}\nserverInfo:\n  contextPath: /ctx\n";
        assert_eq!(index_context_path(idx).as_deref(), Some("/ctx"));
        assert_eq!(index_context_path("apiVersion: v1\nentries: {}\n"), None);
    }
}
