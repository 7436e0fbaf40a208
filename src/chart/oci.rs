//! Charts in OCI registries, in exactly the format `helm push` writes: a config blob holding
//! Chart.yaml as JSON (`application/vnd.cncf.helm.config.v1+json`), the chart archive as the
//! content layer, an optional provenance layer, layers sorted by digest, no `mediaType` or
//! `artifactType` in the manifest, Helm's `org.opencontainers.image.*` annotations, and the tag
//! `<version>` with `+` written as `_`, under `<path>/<chart name>`.

use std::collections::BTreeMap;
use std::str::FromStr;

use async_trait::async_trait;
use bytes::Bytes;
use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder};
use serde::Serialize;

use super::error::ChartError;
use super::meta::ChartMeta;
pub use super::publish::rfc3339;
use super::{decide, Chart, PushOptions, PushOutcome, PushReport};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Children, Descriptor, RawManifest, OCI_MANIFEST};
use crate::reference::RegistryRef;
use crate::store::{BlobSource, BlobStream, Store, Target};

pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
pub const PROV_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
/// The chart layer type before Helm 3.7, still read by `helm pull`.
pub const LEGACY_CHART_LAYER_MEDIA_TYPE: &str = "application/tar+gzip";

/// `oci://REGISTRY[/PATH]` + chart → `REGISTRY/PATH/<name>:<version with + as _>`.
pub fn reference(destination: &str, meta: &ChartMeta) -> Result<RegistryRef, ChartError> {
    let bad = |reason: String| ChartError::Destination {
        destination: destination.into(),
        reason,
    };
    let rest = destination
        .strip_prefix("oci://")
        .ok_or_else(|| bad("an OCI destination starts with oci://".into()))?
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains(['@', '?', '#']) {
        return Err(bad("expected oci://REGISTRY[/PATH]".into()));
    }
    let full = format!("{rest}/{}:{}", meta.name, tag(&meta.version));
    RegistryRef::from_str(&full).map_err(|e| bad(e.reason))
}

/// Helm's tag for a chart version: OCI tags cannot hold `+`, so it becomes `_`.
pub fn tag(version: &str) -> String {
    version.replace('+', "_")
}

/// The blobs and manifest of one chart in Helm's OCI format.
pub struct OciChart {
    pub config: Bytes,
    pub config_desc: Descriptor,
    pub layers: Vec<(Descriptor, Bytes)>,
    pub manifest: RawManifest,
}

/// Builds the config, layers and manifest; `created` is the RFC 3339 time of the
/// `org.opencontainers.image.created` annotation (Helm uses the archive's mtime).
pub fn build(chart: &Chart, prov: Option<&Bytes>, created: &str) -> OciChart {
    let config = Bytes::from(chart.meta.config_json());
    let config_desc = descriptor(CONFIG_MEDIA_TYPE, &config);
    let mut layers = vec![(
        descriptor(CHART_LAYER_MEDIA_TYPE, &chart.archive),
        chart.archive.clone(),
    )];
    if let Some(p) = prov {
        layers.push((descriptor(PROV_LAYER_MEDIA_TYPE, p), p.clone()));
    }
    layers.sort_by_key(|l| l.0.digest.to_string());
    let annotations = annotations(&chart.meta, created);
    let spec = ImageManifestBuilder::default()
        .schema_version(2u32)
        .config(spec_descriptor(&config_desc))
        .layers(
            layers
                .iter()
                .map(|(d, _)| spec_descriptor(d))
                .collect::<Vec<_>>(),
        )
        .annotations(
            annotations
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .build()
        .expect("every required manifest field is set");
    // Go's encoding/json order (schemaVersion, config, layers, annotations) with sorted
    // annotation keys, so the same chart and time give the same manifest bytes.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Ordered<'a> {
        schema_version: u32,
        config: &'a oci_spec::image::Descriptor,
        layers: &'a [oci_spec::image::Descriptor],
        annotations: BTreeMap<String, String>,
    }
    let ordered = Ordered {
        schema_version: spec.schema_version(),
        config: spec.config(),
        layers: spec.layers(),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    let bytes = serde_json::to_vec(&ordered).expect("a manifest serialises");
    let manifest = RawManifest::new(bytes.into(), Some(OCI_MANIFEST)).expect("a valid manifest");
    OciChart {
        config,
        config_desc,
        layers,
        manifest,
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: Digest::of(bytes),
        size: bytes.len() as u64,
        platform: None,
    }
}

fn spec_descriptor(d: &Descriptor) -> oci_spec::image::Descriptor {
    DescriptorBuilder::default()
        .media_type(d.media_type.as_str())
        .digest(oci_spec::image::Digest::from_str(&d.digest.to_string()).expect("a sha256 digest"))
        .size(d.size)
        .build()
        .expect("every required descriptor field is set")
}

/// Helm's manifest annotations: only non-blank values, non-ASCII escaped as `\uXXXX`, then the
/// Chart.yaml annotations, which cannot override title or version.
pub fn annotations(meta: &ChartMeta, created: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut add = |key: &str, value: &str| {
        if !value.trim().is_empty() {
            out.insert(
                format!("org.opencontainers.image.{key}"),
                escape_non_ascii(value),
            );
        }
    };
    add("description", &meta.description);
    add("title", &meta.name);
    add("version", &meta.version);
    add("url", &meta.home);
    add("created", created);
    if let Some(source) = meta.sources.first() {
        add("source", source);
    }
    if !meta.maintainers.is_empty() {
        let authors: Vec<String> = meta
            .maintainers
            .iter()
            .map(|m| match m.email.is_empty() {
                true => m.name.clone(),
                false => format!("{} ({})", m.name, m.email),
            })
            .collect();
        add("authors", &authors.join(", "));
    }
    for (k, v) in &meta.annotations {
        if k != "org.opencontainers.image.title" && k != "org.opencontainers.image.version" {
            out.insert(k.clone(), escape_non_ascii(v));
        }
    }
    out
}

fn escape_non_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// What a registry holds under the chart's tag.
#[derive(Clone, Debug)]
pub struct Existing {
    pub manifest: Digest,
    /// The chart layer's digest; `None` when the tag names something that is not a chart.
    pub chart: Option<Digest>,
    pub prov: Option<Digest>,
}

/// Reads what `tag` names in `store`, if anything.
pub async fn existing(store: &dyn Store, tag: &str) -> Result<Option<Existing>> {
    let Some(desc) = store.resolve(&Target::Tag(tag.into())).await? else {
        return Ok(None);
    };
    let manifest = store
        .get_manifest(&Target::Digest(desc.digest.clone()))
        .await?;
    let layers = match manifest.children() {
        Ok(Children::Image { layers, .. }) => layers,
        _ => Vec::new(),
    };
    let find = |types: &[&str]| {
        layers
            .iter()
            .find(|l| types.contains(&l.media_type.as_str()))
            .map(|l| l.digest.clone())
    };
    Ok(Some(Existing {
        manifest: manifest.digest.clone(),
        chart: find(&[CHART_LAYER_MEDIA_TYPE, LEGACY_CHART_LAYER_MEDIA_TYPE]),
        prov: find(&[PROV_LAYER_MEDIA_TYPE]),
    }))
}

/// Same chart bytes, and the same provenance when one is being published.
fn same(existing: &Existing, chart: &Digest, prov: Option<&Digest>) -> bool {
    existing.chart.as_ref() == Some(chart) && prov.is_none_or(|p| existing.prov.as_ref() == Some(p))
}

/// A push to an OCI registry checked against what `tag` names now: the guard's verdict, and
/// the blobs and manifest that writing it puts.
pub struct OciCheck {
    pub report: PushReport,
    built: OciChart,
}

/// Decides what publishing `chart` under `tag` does, reading only.
pub async fn check(
    store: &dyn Store,
    tag: &str,
    chart: &Chart,
    options: &PushOptions,
    created: &str,
) -> Result<OciCheck> {
    let built = build(chart, options.prov.as_ref(), created);
    let found = existing(store, tag).await?;
    let prov_digest = options.prov.as_ref().map(|p| Digest::of(p));
    let outcome = decide(
        found
            .as_ref()
            .map(|e| same(e, &chart.digest, prov_digest.as_ref())),
        options.force,
    );
    let mut report = PushReport {
        chart: chart.meta.name.clone(),
        version: chart.meta.version.clone(),
        destination: format!("{}:{tag}", store.location()),
        result: outcome,
        digest: chart.digest.clone(),
        previous: found
            .as_ref()
            .map(|e| e.chart.clone().unwrap_or_else(|| e.manifest.clone())),
        manifest: Some(built.manifest.digest.clone()),
        dry_run: options.dry_run,
    };
    if matches!(outcome, PushOutcome::Unchanged | PushOutcome::Refused) {
        report.manifest = found.map(|e| e.manifest);
    }
    Ok(OciCheck { report, built })
}

/// Writes what `checked` decided: blobs first, then the manifest and tag. A tag that did not
/// exist when checked but does now is not overwritten: the report turns to refused (or
/// unchanged when it names the same chart).
pub async fn write(store: &dyn Store, tag: &str, checked: &mut OciCheck) -> Result<()> {
    let report = &mut checked.report;
    if !report.result.writes() {
        return Ok(());
    }
    if report.result == PushOutcome::Created {
        if let Some(now) = existing(store, tag).await? {
            let prov = checked
                .built
                .layers
                .iter()
                .find(|(d, _)| d.media_type == PROV_LAYER_MEDIA_TYPE)
                .map(|(d, _)| d.digest.clone());
            report.result = match same(&now, &report.digest, prov.as_ref()) {
                true => PushOutcome::Unchanged,
                false => PushOutcome::Refused,
            };
            report.previous = Some(now.chart.unwrap_or_else(|| now.manifest.clone()));
            report.manifest = Some(now.manifest);
            return Ok(());
        }
    }
    let built = &checked.built;
    let blobs = std::iter::once((&built.config_desc, &built.config))
        .chain(built.layers.iter().map(|(d, b)| (d, b)));
    for (desc, bytes) in blobs {
        if !store.has_blob(desc).await? {
            store.put_blob(desc, &MemBlob(bytes.clone())).await?;
        }
    }
    store
        .put_manifest(&built.manifest, &[tag.to_string()])
        .await?;
    Ok(())
}

/// Publishes `chart` to `store` under `tag`, guarded: [`check`], then [`write`] unless a dry run.
pub async fn push(
    store: &dyn Store,
    tag: &str,
    chart: &Chart,
    options: &PushOptions,
    created: &str,
) -> Result<PushReport> {
    let mut checked = check(store, tag, chart, options, created).await?;
    if !options.dry_run {
        write(store, tag, &mut checked).await?;
    }
    Ok(checked.report)
}

/// A blob held in memory.
struct MemBlob(Bytes);

#[async_trait]
impl BlobSource for MemBlob {
    async fn open(&self, offset: u64) -> Result<BlobStream> {
        let start = usize::try_from(offset)
            .ok()
            .filter(|o| *o <= self.0.len())
            .ok_or_else(|| Error::Usage {
                arg: "chart blob".into(),
                reason: format!("offset {offset} is past its end"),
            })?;
        let rest = self.0.slice(start..);
        Ok(Box::pin(futures::stream::once(async move { Ok(rest) })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_append_the_chart_name_and_map_plus() {
        let meta =
            ChartMeta::parse("apiVersion: v2\nname: demo\nversion: 1.2.3+g1\n", "d").unwrap();
        let r = reference("oci://127.0.0.1:5000/charts/", &meta).unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "charts/demo")
        );
        assert_eq!(r.tag.as_deref(), Some("1.2.3_g1"));
        assert!(reference("https://x/charts", &meta).is_err());
        assert!(reference("oci://", &meta).is_err());
    }

    #[test]
    fn annotations_follow_helm() {
        let text = "apiVersion: v2\nname: demo\nversion: 1.0.0\ndescription: Démo\nhome: https://h\nsources: [https://s1, https://s2]\nmaintainers:\n  - name: Ann\n    email: a@x\n  - name: Bob\nannotations:\n  org.opencontainers.image.title: nope\n  team: \"😀\"\n";
        let meta = ChartMeta::parse(text, "d").unwrap();
        let a = annotations(&meta, "2026-01-01T00:00:00Z");
        let get = |k: &str| a.get(&format!("org.opencontainers.image.{k}")).cloned();
        assert_eq!(get("title").as_deref(), Some("demo"));
        assert_eq!(get("description").as_deref(), Some("D\\u00e9mo"));
        assert_eq!(get("source").as_deref(), Some("https://s1"));
        assert_eq!(get("authors").as_deref(), Some("Ann (a@x), Bob"));
        assert_eq!(a.get("team").map(String::as_str), Some("\\ud83d\\ude00"));
        assert_eq!(a.len(), 8);
    }
}
