//! `docker-archive:FILE`: the `docker save` format (`manifest.json` naming each image's
//! `Config`, `RepoTags` and `Layers`), read in place and written whole.
//!
//! Reading: classic archives (`<id>.json`, `<id>/layer.tar`, skopeo's `<hex>.tar` with legacy
//! symlinked `<id>/layer.tar`, followed inside the archive) and Docker 25+ ones (the same
//! `manifest.json` beside an OCI layout, paths under `blobs/sha256/`). Each image is served as
//! an OCI manifest: the archive's own one (digest kept) when its OCI layout holds one for the
//! same config and layers and no layer is converted; otherwise one built with `oci-spec` types.
//! Uncompressed layers stay as they are ([`Compress::None`]) or are compressed, streaming and in
//! parallel across layers, into a spool under `$TMPDIR` ([`Compress::Gzip`], [`Compress::Zstd`]):
//! their digests, and so the manifest's, change. Every layer's bytes are checked against the
//! config's `rootfs.diff_ids` (uncompressed) or the digest that names them (compressed).
//!
//! Writing is [`super::docker_write`] (and [`super::docker_pack`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;

use super::compress::{transcode, Compress};
use super::oci::{blob_name, OciView};
use super::tarindex::{refused, stream_verified, Loc, TarIndex};
use super::{new_spool, METAS};
use crate::digest::Digest;
use crate::error::{Error, Op, Result};
use crate::manifest::{Children, Descriptor, RawManifest, MAX_MANIFEST_BYTES, OCI_MANIFEST};
use crate::reference::RegistryRef;
use crate::store::{unsupported, BlobSource, BlobStream, Store, StoredImage, Target};

/// One `manifest.json` entry.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

struct Layer {
    name: String,
    loc: Loc,
    kind: Compress,
    /// The digest of the bytes as stored (the diffID when uncompressed).
    digest: Digest,
}

struct Image {
    repo_tags: Vec<String>,
    config: Descriptor,
    layers: Vec<Layer>,
    /// The archive's own OCI manifest for this image (Docker 25+, containerd), if any.
    own: Option<RawManifest>,
    prepared: tokio::sync::OnceCell<Prepared>,
}

/// An image as served: its manifest and whether building it changed digests.
#[derive(Clone)]
struct Prepared {
    manifest: RawManifest,
    /// Layers compressed on the way out (the manifest digest is new).
    converted: usize,
}

/// Where a blob's bytes are.
#[derive(Clone)]
enum BlobAt {
    Entry(String, Loc),
    Spool(PathBuf, u64),
}

/// A conversion that changed an image's digest, for the CLI to say so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub image: String,
    pub digest: Digest,
    pub layers: usize,
    pub compress: Compress,
}

/// A `docker-archive:` file opened for reading.
pub struct DockerArchiveStore {
    file: PathBuf,
    idx: Arc<TarIndex>,
    images: Vec<Image>,
    compress: Compress,
    jobs: usize,
    blobs: Mutex<HashMap<Digest, BlobAt>>,
    spool: Mutex<Option<tempfile::TempDir>>,
}

fn normalise(name: &str) -> Option<(String, String, String)> {
    let r = RegistryRef::from_str(name).ok()?;
    Some((
        r.registry,
        r.repository,
        r.tag.unwrap_or_else(|| "latest".into()),
    ))
}

impl DockerArchiveStore {
    /// Indexes and checks the archive `file` (`-`: standard input). Uncompressed layers are
    /// served as they are, or compressed with `compress` when first asked for.
    pub fn open(file: &Path, compress: Compress) -> Result<Self> {
        let idx = TarIndex::open(file, &METAS)?;
        let bad = |entry: &str, why: String| refused(file, Some(entry), why);
        let Some(body) = idx.meta("manifest.json") else {
            let why = if idx.count == 0 {
                "empty, or not a tar archive".to_string()
            } else if idx.meta("index.json").is_some() {
                format!(
                    "no manifest.json: an OCI archive; read it as oci-archive:{}",
                    file.display()
                )
            } else {
                "no manifest.json: not a docker-archive".to_string()
            };
            return Err(refused(file, None, why));
        };
        let entries: Vec<Entry> = serde_json::from_slice(body)
            .map_err(|e| bad("manifest.json", format!("not a docker save manifest: {e}")))?;
        let own = if idx.meta("index.json").is_some() && idx.meta("oci-layout").is_some() {
            OciView::parse(&idx).ok()
        } else {
            None
        };
        let mut images = Vec::with_capacity(entries.len());
        let mut blobs = HashMap::new();
        for e in entries {
            let key = |p: &str| {
                TarIndex::key(p).ok_or_else(|| {
                    bad("manifest.json", format!("names {p:?}, outside the archive"))
                })
            };
            let config_name = key(&e.config)?;
            let loc = idx.get(&config_name).ok_or_else(|| {
                bad(
                    &config_name,
                    "is named by manifest.json (Config) but the archive does not hold it".into(),
                )
            })?;
            let config_bytes = idx.read_small(&config_name, loc, MAX_MANIFEST_BYTES as u64)?;
            let config_digest = Digest::of(&config_bytes);
            if let Some(hex) = named_hex(&config_name) {
                if hex != config_digest.hex() {
                    return Err(bad(&config_name, format!("the bytes hash to {config_digest}, not to the digest the entry is named after")));
                }
            }
            let cfg: serde_json::Value = serde_json::from_slice(&config_bytes)
                .map_err(|e| bad(&config_name, format!("not an image config: {e}")))?;
            let diff_ids: Vec<Digest> = cfg["rootfs"]["diff_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
                .unwrap_or_default();
            if diff_ids.len() != e.layers.len() {
                return Err(bad(
                    &config_name,
                    format!(
                        "lists {} diff_ids but manifest.json names {} layers",
                        diff_ids.len(),
                        e.layers.len()
                    ),
                ));
            }
            let mut layers = Vec::with_capacity(e.layers.len());
            for (path, diff_id) in e.layers.iter().zip(diff_ids) {
                let name = key(path)?;
                let loc = idx.get(&name).ok_or_else(|| {
                    bad(
                        &name,
                        "is named by manifest.json (Layers) but the archive does not hold it"
                            .into(),
                    )
                })?;
                let kind = Compress::of_magic(&idx.peek(&name, loc, 4)?);
                let digest = match (kind, named_hex(&name)) {
                    (Compress::None, _) => diff_id,
                    (_, Some(hex)) => format!("sha256:{hex}").parse().expect("64 hex digits"),
                    (_, None) => idx.hash(&name, loc)?,
                };
                blobs.insert(digest.clone(), BlobAt::Entry(name.clone(), loc));
                layers.push(Layer {
                    name,
                    loc,
                    kind,
                    digest,
                });
            }
            let config = Descriptor {
                media_type: "application/vnd.oci.image.config.v1+json".into(),
                digest: config_digest.clone(),
                size: loc.size,
                platform: None,
            };
            blobs.insert(config_digest, BlobAt::Entry(config_name.clone(), loc));
            let mut image = Image {
                repo_tags: e.repo_tags.unwrap_or_default(),
                config,
                layers,
                own: None,
                prepared: tokio::sync::OnceCell::new(),
            };
            if let Some(view) = &own {
                image.own = own_manifest(&idx, view, &image);
            }
            images.push(image);
        }
        Ok(DockerArchiveStore {
            file: file.to_path_buf(),
            idx: Arc::new(idx),
            images,
            compress,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(8),
            blobs: Mutex::new(blobs),
            spool: Mutex::new(None),
        })
    }

    /// The image `target` names: a `RepoTags` entry (normalised: `alpine:3` is
    /// `docker.io/library/alpine:3`), `@N` (zero-based, in `manifest.json` order), or a digest.
    async fn image(&self, target: &Target) -> Result<Option<(usize, Prepared)>> {
        let found = match target {
            Target::Tag(t) if t.starts_with('@') => t[1..]
                .parse::<usize>()
                .ok()
                .filter(|i| *i < self.images.len()),
            Target::Tag(t) => {
                let want = normalise(t);
                self.images.iter().position(|i| {
                    i.repo_tags
                        .iter()
                        .any(|r| r == t || (want.is_some() && normalise(r) == want))
                })
            }
            Target::Digest(d) => {
                for i in 0..self.images.len() {
                    if &self.prepare(i).await?.manifest.digest == d {
                        return Ok(Some((i, self.prepare(i).await?)));
                    }
                }
                None
            }
        };
        match found {
            Some(i) => Ok(Some((i, self.prepare(i).await?))),
            None => Ok(None),
        }
    }

    /// The one image (what `docker-archive:FILE` alone means).
    pub fn only_image(&self) -> Result<Target> {
        match self.images.len() {
            1 => Ok(Target::Tag("@0".into())),
            0 => Err(refused(&self.file, None, "holds no image")),
            n => {
                let tags: Vec<String> = self
                    .images
                    .iter()
                    .flat_map(|i| i.repo_tags.clone())
                    .collect();
                Err(refused(&self.file, None, format!(
                    "holds {n} images (tags: {}): name one, docker-archive:FILE:NAME:TAG or docker-archive:FILE:@N",
                    if tags.is_empty() { "none".into() } else { tags.join(", ") }
                )))
            }
        }
    }

    /// Images whose digest building changed (layers compressed), among those prepared so far.
    pub fn conversions(&self) -> Vec<Conversion> {
        let mut out = Vec::new();
        for (i, img) in self.images.iter().enumerate() {
            if let Some(p) = img.prepared.get() {
                if p.converted > 0 {
                    out.push(Conversion {
                        image: img
                            .repo_tags
                            .first()
                            .cloned()
                            .unwrap_or_else(|| format!("@{i}")),
                        digest: p.manifest.digest.clone(),
                        layers: p.converted,
                        compress: self.compress,
                    });
                }
            }
        }
        out
    }

    /// Whether reading had to spool the archive (compressed, or standard input).
    pub fn spooled(&self) -> bool {
        self.idx.spooled
    }

    async fn prepare(&self, i: usize) -> Result<Prepared> {
        let img = &self.images[i];
        img.prepared
            .get_or_try_init(|| async {
                let convert: Vec<usize> = if self.compress == Compress::None {
                    Vec::new()
                } else {
                    (0..img.layers.len())
                        .filter(|&l| img.layers[l].kind == Compress::None)
                        .collect()
                };
                if convert.is_empty() {
                    if let Some(own) = &img.own {
                        return Ok(Prepared {
                            manifest: own.clone(),
                            converted: 0,
                        });
                    }
                }
                let converted = self.convert(i, &convert).await?;
                let layers: Vec<Descriptor> = img
                    .layers
                    .iter()
                    .enumerate()
                    .map(|(l, layer)| match converted.get(&l) {
                        Some((d, size)) => Descriptor {
                            media_type: self.compress.layer_media_type().into(),
                            digest: d.clone(),
                            size: *size,
                            platform: None,
                        },
                        None => Descriptor {
                            media_type: layer.kind.layer_media_type().into(),
                            digest: layer.digest.clone(),
                            size: layer.loc.size,
                            platform: None,
                        },
                    })
                    .collect();
                Ok(Prepared {
                    manifest: build_manifest(&img.config, &layers),
                    converted: convert.len(),
                })
            })
            .await
            .cloned()
    }

    /// Compresses the layers `which` of image `i` into the spool, in parallel; checks each
    /// one's diffID. Returns layer index → (digest, size) of the compressed blob.
    async fn convert(&self, i: usize, which: &[usize]) -> Result<HashMap<usize, (Digest, u64)>> {
        if which.is_empty() {
            return Ok(HashMap::new());
        }
        let dir = {
            let mut spool = self.spool.lock().unwrap();
            if spool.is_none() {
                *spool = Some(new_spool(&self.file)?);
            }
            spool.as_ref().unwrap().path().to_path_buf()
        };
        let jobs: Vec<(usize, String, Loc, Digest)> = which
            .iter()
            .map(|&l| {
                let layer = &self.images[i].layers[l];
                (l, layer.name.clone(), layer.loc, layer.digest.clone())
            })
            .collect();
        let (idx, compress, n) = (self.idx.clone(), self.compress, self.jobs);
        let results = tokio::task::spawn_blocking(move || {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let out = Mutex::new(Vec::new());
            std::thread::scope(|s| {
                for _ in 0..n.min(jobs.len()) {
                    s.spawn(|| loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((l, name, loc, diff_id)) = jobs.get(k) else {
                            break;
                        };
                        let r = compress_one(&idx, &dir, name, *loc, diff_id, compress);
                        out.lock().unwrap().push((*l, r));
                    });
                }
            });
            out.into_inner().unwrap()
        })
        .await
        .map_err(|e| refused(&self.file, None, format!("compression stopped: {e}")))?;
        let mut map = HashMap::new();
        for (l, r) in results {
            let (path, digest, size) = r?;
            self.blobs
                .lock()
                .unwrap()
                .insert(digest.clone(), BlobAt::Spool(path, size));
            map.insert(l, (digest, size));
        }
        Ok(map)
    }
}

/// Compresses one layer into `dir`, checking its uncompressed bytes are its diffID.
fn compress_one(
    idx: &TarIndex,
    dir: &Path,
    name: &str,
    loc: Loc,
    diff_id: &Digest,
    with: Compress,
) -> Result<(PathBuf, Digest, u64)> {
    let tmp = dir.join(format!("{}.part", diff_id.hex()));
    let reader = idx.reader(name, loc)?;
    let t = transcode(reader, Compress::None, with, &tmp).map_err(|e| Error::Layout {
        op: Op::WriteLayout,
        path: tmp.clone(),
        message: format!("cannot compress {name} of {}: {e}", idx.shown.display()),
    })?;
    if &t.input.0 != diff_id {
        let _ = std::fs::remove_file(&tmp);
        return Err(refused(
            &idx.shown,
            Some(name),
            format!(
                "the layer's bytes hash to {}, not to {diff_id}, its diff_id in the config",
                t.input.0
            ),
        ));
    }
    let (digest, size) = t.output;
    let to = dir.join(digest.hex());
    std::fs::rename(&tmp, &to).map_err(|e| Error::Layout {
        op: Op::WriteLayout,
        path: to.clone(),
        message: e.to_string(),
    })?;
    Ok((to, digest, size))
}

/// The hex digest an entry named `blobs/sha256/<hex>` or `<hex>.tar`/`<hex>.json` claims.
fn named_hex(name: &str) -> Option<String> {
    let base = name.strip_prefix("blobs/sha256/").unwrap_or(name);
    let base = base
        .strip_suffix(".tar")
        .or_else(|| base.strip_suffix(".json"))
        .unwrap_or(base);
    let ok = base.len() == 64 && base.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (ok && (name.starts_with("blobs/sha256/") || !name.contains('/'))).then(|| base.to_string())
}

/// Among an OCI layout's manifests, one with the image's config and layers.
fn own_manifest(idx: &TarIndex, view: &OciView, image: &Image) -> Option<RawManifest> {
    let mut todo: Vec<Descriptor> = view.entries.iter().map(|(d, _)| d.clone()).collect();
    let mut seen = 0;
    while let Some(d) = todo.pop() {
        seen += 1;
        if seen > 64 {
            return None;
        }
        // Manifests the archive does not carry (other platforms) are passed over.
        let Ok(m) = view.manifest(idx, &d.digest, Some(&d), "index.json", "") else {
            continue;
        };
        let Ok(children) = m.children() else {
            continue;
        };
        match children {
            Children::Index { manifests } => todo.extend(manifests),
            Children::Image { config, layers } => {
                let same = config.digest == image.config.digest
                    && layers.len() == image.layers.len()
                    && layers
                        .iter()
                        .zip(&image.layers)
                        .all(|(a, b)| a.digest == b.digest);
                if same {
                    return Some(m);
                }
            }
        }
    }
    None
}

/// An OCI image manifest for `config` and `layers`, built with `oci-spec` types.
fn build_manifest(config: &Descriptor, layers: &[Descriptor]) -> RawManifest {
    use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
    let spec = |d: &Descriptor| {
        DescriptorBuilder::default()
            .media_type(MediaType::from(d.media_type.as_str()))
            .digest(
                oci_spec::image::Digest::from_str(&d.digest.to_string()).expect("a sha256 digest"),
            )
            .size(d.size)
            .build()
            .expect("every required descriptor field is set")
    };
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(spec(config))
        .layers(layers.iter().map(spec).collect::<Vec<_>>())
        .build()
        .expect("every required manifest field is set");
    let bytes = serde_json::to_vec(&m).expect("a manifest serialises");
    RawManifest::new(bytes.into(), Some(OCI_MANIFEST)).expect("a valid manifest")
}

#[async_trait]
impl Store for DockerArchiveStore {
    fn location(&self) -> String {
        format!("docker-archive:{}", self.file.display())
    }

    async fn resolve(&self, target: &Target) -> Result<Option<Descriptor>> {
        Ok(self
            .image(target)
            .await?
            .map(|(_, p)| p.manifest.descriptor()))
    }

    async fn get_manifest(&self, target: &Target) -> Result<RawManifest> {
        match self.image(target).await? {
            Some((_, p)) => Ok(p.manifest),
            None => Err(Error::NotFound {
                what: format!("image {target}"),
                location: self.location(),
            }),
        }
    }

    async fn put_manifest(&self, manifest: &RawManifest, _tags: &[String]) -> Result<()> {
        Err(unsupported(
            self,
            Op::PutManifest,
            &manifest.digest.to_string(),
            "an archive opened as a source is read-only",
        ))
    }

    async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        Ok(self.blobs.lock().unwrap().contains_key(&desc.digest))
    }

    async fn open_blob(&self, desc: &Descriptor, offset: u64) -> Result<BlobStream> {
        let at = self.blobs.lock().unwrap().get(&desc.digest).cloned();
        match at {
            Some(BlobAt::Entry(name, loc)) => {
                Ok(self.idx.stream(&name, loc, desc.digest.clone(), offset))
            }
            Some(BlobAt::Spool(path, size)) => Ok(stream_verified(
                path.clone(),
                path,
                blob_name(&desc.digest),
                Loc { offset: 0, size },
                Some(desc.digest.clone()),
                offset,
            )),
            None => Err(Error::NotFound {
                what: format!("blob {}", desc.digest),
                location: self.location(),
            }),
        }
    }

    async fn put_blob(&self, desc: &Descriptor, _source: &dyn BlobSource) -> Result<u64> {
        Err(unsupported(
            self,
            Op::UploadBlob,
            &desc.digest.to_string(),
            "an archive opened as a source is read-only",
        ))
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self
            .images
            .iter()
            .flat_map(|i| i.repo_tags.clone())
            .collect())
    }

    async fn list_images(&self) -> Result<Option<Vec<StoredImage>>> {
        let mut out = Vec::new();
        for i in 0..self.images.len() {
            let p = self.prepare(i).await?;
            let img = &self.images[i];
            let desc = p.manifest.descriptor();
            if img.repo_tags.is_empty() {
                out.push(StoredImage {
                    tag: None,
                    descriptor: desc.clone(),
                });
            }
            for t in &img.repo_tags {
                out.push(StoredImage {
                    tag: Some(t.clone()),
                    descriptor: desc.clone(),
                });
            }
        }
        Ok(Some(out))
    }
}
