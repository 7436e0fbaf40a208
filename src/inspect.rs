//! What an image is, for `ferry digest` and `ferry inspect`: the descriptor a reference names,
//! one platform picked out of an index, an image's config summary and layers, an artifact's
//! type. Works through any [`Store`]; silent (the CLI renders an [`Inspection`]).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Children, Descriptor, Platform, RawManifest};
use crate::store::{Store, Target};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// Config blobs larger than this are not read.
pub const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// An image, index or artifact as `ferry inspect` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// `image`, `index` or `artifact`.
    pub kind: &'static str,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// An index's entries, with their platforms.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigSummary>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest's config: its descriptor and, for image and chart configs, what it says.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigSummary {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `os/arch[/variant]` of an image config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `name version` of a Helm chart's config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
}

fn not_found(store: &dyn Store, target: &Target) -> Error {
    Error::NotFound {
        what: format!("manifest {target}"),
        location: store.location(),
    }
}

/// The descriptor `target` names (one HEAD on a registry); with `platform`, the manifest of
/// that platform (see [`select`]). `NotFound` when absent.
pub async fn digest(
    store: &dyn Store,
    target: &Target,
    platform: Option<&Platform>,
) -> Result<Descriptor> {
    match platform {
        None => store
            .resolve(target)
            .await?
            .ok_or_else(|| not_found(store, target)),
        Some(_) => Ok(select(store, target, platform).await?.descriptor()),
    }
}

/// The manifest `target` names; with `platform`, the first entry of an index for that platform,
/// or a single image whose config says it is that platform. `Error::Platform` otherwise.
pub async fn select(
    store: &dyn Store,
    target: &Target,
    platform: Option<&Platform>,
) -> Result<RawManifest> {
    let m = store.get_manifest(target).await?;
    let Some(want) = platform else {
        return Ok(m);
    };
    let at = format!("{}:{target}", store.location());
    match m.children()? {
        Children::Index { manifests } => {
            let found = manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| want.selects(p)));
            let Some(child) = found else {
                let has: Vec<String> = manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect();
                return Err(Error::Platform {
                    reason: format!("{at} has no {want} manifest; it has {}", has.join(", ")),
                });
            };
            store
                .get_manifest(&Target::Digest(child.digest.clone()))
                .await
        }
        Children::Image { config, .. } => {
            let summary = read_config(store, &config).await?;
            let is = summary.and_then(|s| s.platform);
            match is.as_deref().map(str::parse::<Platform>) {
                Some(Ok(p)) if want.selects(&p) => Ok(m),
                _ => Err(Error::Platform {
                    reason: format!(
                        "{at} is a single-platform image for {}, not {want}",
                        is.as_deref().unwrap_or("no stated platform")
                    ),
                }),
            }
        }
    }
}

/// Describes the manifest `m` (read from `store`): entries, config summary, layers.
pub async fn inspect(store: &dyn Store, m: &RawManifest) -> Result<Inspection> {
    let doc: Value = serde_json::from_slice(&m.bytes).unwrap_or(Value::Null);
    let mut out = Inspection {
        kind: "image",
        media_type: m.media_type.clone(),
        digest: m.digest.clone(),
        size: m.bytes.len() as u64,
        artifact_type: doc["artifactType"].as_str().map(str::to_string),
        manifests: Vec::new(),
        config: None,
        layers: Vec::new(),
        subject: m.subject(),
        annotations: strings(&doc["annotations"]),
    };
    match m.children()? {
        Children::Index { manifests } => {
            out.kind = "index";
            out.manifests = manifests;
        }
        Children::Image { config, layers } => {
            let image_config = [OCI_CONFIG, DOCKER_CONFIG].contains(&config.media_type.as_str());
            if out.artifact_type.is_none() && !image_config {
                out.artifact_type = Some(config.media_type.clone());
            }
            if out.artifact_type.is_some() {
                out.kind = "artifact";
            }
            out.config = Some(match read_config(store, &config).await? {
                Some(s) => s,
                None => summary_of(&config),
            });
            out.layers = layers;
        }
    }
    Ok(out)
}

fn summary_of(config: &Descriptor) -> ConfigSummary {
    ConfigSummary {
        media_type: config.media_type.clone(),
        digest: config.digest.clone(),
        size: config.size,
        created: None,
        platform: None,
        labels: BTreeMap::new(),
        entrypoint: None,
        cmd: None,
        chart: None,
    }
}

/// The summary of an image or chart config; `None` for other config types (not read).
pub async fn read_config(store: &dyn Store, config: &Descriptor) -> Result<Option<ConfigSummary>> {
    let kind = config.media_type.as_str();
    if ![OCI_CONFIG, DOCKER_CONFIG, HELM_CONFIG].contains(&kind) {
        return Ok(None);
    }
    let bytes = read_blob(store, config, MAX_CONFIG_BYTES).await?;
    let doc: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut s = summary_of(config);
    if kind == HELM_CONFIG {
        let field = |k: &str| doc[k].as_str().unwrap_or("?").to_string();
        s.chart = Some(format!("{} {}", field("name"), field("version")));
        return Ok(Some(s));
    }
    let text = |v: &Value| v.as_str().map(str::to_string);
    s.created = text(&doc["created"]);
    if let (Some(os), Some(arch)) = (text(&doc["os"]), text(&doc["architecture"])) {
        let variant = text(&doc["variant"])
            .map(|v| format!("/{v}"))
            .unwrap_or_default();
        s.platform = Some(format!("{os}/{arch}{variant}"));
    }
    let c = &doc["config"];
    s.labels = strings(&c["Labels"]);
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().filter_map(text).collect::<Vec<_>>())
    };
    s.entrypoint = list(&c["Entrypoint"]);
    s.cmd = list(&c["Cmd"]);
    Ok(Some(s))
}

/// A JSON object's string values.
fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A small blob's bytes, verified against its descriptor; larger than `limit` is refused.
pub async fn read_blob(store: &dyn Store, desc: &Descriptor, limit: u64) -> Result<Bytes> {
    if desc.size > limit {
        return Err(Error::TooLarge {
            what: format!("blob {}", desc.digest),
            location: store.location(),
            size: desc.size,
            limit,
        });
    }
    let mut stream = store.open_blob(desc, 0).await?;
    let mut buf = BytesMut::with_capacity(desc.size as usize);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() as u64 > desc.size {
            break;
        }
    }
    let bytes = buf.freeze();
    let actual = Digest::of(&bytes);
    if actual != desc.digest || bytes.len() as u64 != desc.size {
        return Err(Error::DigestMismatch {
            location: store.location(),
            expected: desc.digest.clone(),
            expected_size: desc.size,
            actual,
            actual_size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}
