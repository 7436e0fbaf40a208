//! Test-image builder: writes real images (gzip'd tar layers, valid configs) into OCI image
//! layouts without using ferry's own layout code, and seeds registries from them with skopeo.
//!
//! Content is deterministic: the same [`ImageSpec`] always yields the same digests. Layer files
//! are pseudo-random (incompressible), so a layer's compressed size is close to its content size.

mod tools;
mod write;

use std::io::Read;
use std::path::Path;

use ferry::manifest::{
    Descriptor, Platform, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use ferry::Digest;
use serde_json::{json, Value};

#[allow(unused_imports)]
pub use tools::*;
use write::{Noise, Writer};

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
/// The (non-tar) payload layer of [`Kind::Artifact`].
pub const ARTIFACT_LAYER: &str = "application/vnd.ferry.test.payload.v1";
/// The `index.json` annotation that holds a tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Seed of the shared base layer: the same bytes in every image that asks for one.
const BASE_SEED: u64 = 0xBA5E_BA5E;

/// What kind of top-level manifest to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One OCI image manifest.
    OciImage,
    /// One Docker v2 schema 2 manifest (Docker media types for manifest, config and layers).
    DockerImage,
    /// An OCI index of OCI image manifests, one per platform.
    OciIndex,
    /// A Docker manifest list of Docker v2s2 manifests, one per platform.
    DockerList,
    /// An OCI manifest with a Helm config media type and one non-tar payload layer.
    Artifact,
}

/// What to build. Start from a constructor and adjust with the builder methods.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub kind: Kind,
    /// Layers per image manifest (besides the shared base layer); payload blobs for artifacts.
    pub layers: usize,
    /// Bytes of file content per layer.
    pub layer_size: usize,
    /// Varies every layer's content; the same seed gives the same digests.
    pub seed: u64,
    /// A first layer of this many content bytes, identical in every image that asks for it.
    pub shared_base: Option<usize>,
    /// `os/arch[/variant]`; one manifest per entry for indexes, the first one otherwise.
    pub platforms: Vec<String>,
}

impl ImageSpec {
    pub fn new(kind: Kind) -> Self {
        let platforms: &[&str] = match kind {
            Kind::OciIndex | Kind::DockerList => &["linux/amd64", "linux/arm64/v8", "linux/arm/v7"],
            _ => &["linux/amd64"],
        };
        ImageSpec {
            kind,
            layers: 2,
            layer_size: 32 * 1024,
            seed: 1,
            shared_base: None,
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
        }
    }
    pub fn oci() -> Self {
        Self::new(Kind::OciImage)
    }
    pub fn docker() -> Self {
        Self::new(Kind::DockerImage)
    }
    pub fn oci_index() -> Self {
        Self::new(Kind::OciIndex)
    }
    pub fn docker_list() -> Self {
        Self::new(Kind::DockerList)
    }
    pub fn artifact() -> Self {
        Self::new(Kind::Artifact)
    }
    /// `count` layers of `size` content bytes each.
    pub fn layers(mut self, count: usize, size: usize) -> Self {
        self.layers = count;
        self.layer_size = size;
        self
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn shared_base(mut self, size: usize) -> Self {
        self.shared_base = Some(size);
        self
    }
    pub fn platforms(mut self, platforms: &[&str]) -> Self {
        self.platforms = platforms.iter().map(|p| p.to_string()).collect();
        self
    }
}

/// What [`write_layout`] wrote.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The top manifest (the one the tag names).
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// The index's child manifests, in index order, with platforms; empty for a single manifest.
    pub children: Vec<Descriptor>,
    /// Config and layer blobs of every manifest, de-duplicated, in first-seen order.
    pub blobs: Vec<Descriptor>,
}

impl BuiltImage {
    /// The descriptor of the top manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
        }
    }

    /// Every digest in the layout for this image: top manifest, children, blobs.
    pub fn all_digests(&self) -> Vec<Digest> {
        let mut v = vec![self.digest.clone()];
        v.extend(self.children.iter().map(|d| d.digest.clone()));
        v.extend(self.blobs.iter().map(|d| d.digest.clone()));
        v
    }
}

/// Writes the image `spec` describes into the OCI layout `dir` (created if needed) and tags it
/// `tag` in `index.json` (replacing an entry with that tag; other entries are kept).
pub fn write_layout(dir: &Path, tag: &str, spec: &ImageSpec) -> BuiltImage {
    let w = Writer::init(dir);
    let mut blobs = Vec::new();
    let top = match spec.kind {
        Kind::OciImage | Kind::DockerImage => {
            image_manifest(&w, spec, 0, spec.kind == Kind::DockerImage, &mut blobs)
        }
        Kind::Artifact => artifact_manifest(&w, spec, &mut blobs),
        Kind::OciIndex | Kind::DockerList => index_manifest(&w, spec, &mut blobs),
    };
    let (top, children) = top;
    w.tag(&top, tag);
    let mut unique: Vec<Descriptor> = Vec::new();
    for b in blobs {
        if !unique.iter().any(|u| u.digest == b.digest) {
            unique.push(b);
        }
    }
    BuiltImage {
        digest: top.digest,
        media_type: top.media_type,
        size: top.size,
        children,
        blobs: unique,
    }
}

type Built = (Descriptor, Vec<Descriptor>);

fn image_manifest(
    w: &Writer,
    spec: &ImageSpec,
    platform_no: usize,
    docker: bool,
    blobs: &mut Vec<Descriptor>,
) -> Built {
    let (manifest_type, config_type, layer_type) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
    } else {
        (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)
    };
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut add = |seed: u64, size: usize, name: String| {
        let (mut desc, diff_id) = w.layer(seed, size, &name);
        desc.media_type = layer_type.to_string();
        layers.push(desc);
        diff_ids.push(diff_id);
    };
    if let Some(size) = spec.shared_base {
        add(BASE_SEED, size, "base".into());
    }
    for i in 0..spec.layers {
        let seed = mix(spec.seed, platform_no as u64, i as u64);
        add(seed, spec.layer_size, format!("layer{i}"));
    }
    let platform: Platform = spec.platforms[platform_no].parse().expect("platform");
    let config = w.blob(config_type, &image_config(&platform, &diff_ids));
    blobs.push(config.clone());
    blobs.extend(layers.iter().cloned());
    let body = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": desc_json(&config),
        "layers": layers.iter().map(desc_json).collect::<Vec<_>>(),
    });
    (w.blob(manifest_type, &pretty(&body)), vec![])
}

fn artifact_manifest(w: &Writer, spec: &ImageSpec, blobs: &mut Vec<Descriptor>) -> Built {
    let chart =
        json!({"apiVersion": "v2", "name": "ferry-test", "version": format!("0.{}.0", spec.seed)});
    let config = w.blob(HELM_CONFIG, &pretty(&chart));
    blobs.push(config.clone());
    let mut layers = Vec::new();
    for i in 0..spec.layers.max(1) {
        let mut bytes = Vec::new();
        Noise::new(mix(spec.seed, 99, i as u64), spec.layer_size as u64)
            .read_to_end(&mut bytes)
            .unwrap();
        let layer = w.blob(ARTIFACT_LAYER, &bytes);
        let mut j = desc_json(&layer);
        j["annotations"] = json!({"org.opencontainers.image.title": format!("payload{i}.bin")});
        blobs.push(layer);
        layers.push(j);
    }
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc_json(&config),
        "layers": layers,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    });
    (w.blob(OCI_MANIFEST, &pretty(&body)), vec![])
}

fn index_manifest(w: &Writer, spec: &ImageSpec, blobs: &mut Vec<Descriptor>) -> Built {
    let docker = spec.kind == Kind::DockerList;
    let mut children = Vec::new();
    for (n, p) in spec.platforms.iter().enumerate() {
        let (mut child, _) = image_manifest(w, spec, n, docker, blobs);
        child.platform = Some(p.parse().expect("platform"));
        children.push(child);
    }
    let index_type = if docker {
        DOCKER_MANIFEST_LIST
    } else {
        OCI_INDEX
    };
    let entries: Vec<Value> = children
        .iter()
        .map(|c| {
            let mut j = desc_json(c);
            j["platform"] = serde_json::to_value(c.platform.as_ref().unwrap()).unwrap();
            j
        })
        .collect();
    let body = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": entries});
    (w.blob(index_type, &pretty(&body)), children)
}

fn image_config(p: &Platform, diff_ids: &[Digest]) -> Vec<u8> {
    let created = "2024-01-01T00:00:00Z";
    let mut cfg = json!({
        "created": created,
        "architecture": p.architecture,
        "os": p.os,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().enumerate()
            .map(|(i, _)| json!({"created": created, "created_by": format!("ferry fixture layer {i}")}))
            .collect::<Vec<_>>(),
    });
    if let Some(v) = &p.variant {
        cfg["variant"] = json!(v);
    }
    pretty(&cfg)
}

pub(super) fn desc_json(d: &Descriptor) -> Value {
    json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size})
}

pub(super) fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// A per-layer seed from the image seed, platform and layer numbers.
fn mix(seed: u64, platform: u64, layer: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (platform << 32) ^ layer.wrapping_add(1)
}
