//! Writing a `docker-archive:` file from a finished spool layout, in the shape `docker load`
//! and `skopeo copy docker-archive:` read: per image `<config-hex>.json` and `<diffid-hex>.tar`
//! (layers decompressed, each checked against the config's `rootfs.diff_ids`, each stored
//! once), then `manifest.json` (`Config`, `RepoTags`, `Layers`). Deterministic tar headers;
//! temp file beside the destination, then rename (or standard output for `-`).

use std::collections::HashSet;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::compress::{transcode, Compress};
use super::pack::{finish_output, open_output, out_err};
use super::tarindex::refused;
use crate::digest::Digest;
use crate::error::Result;
use crate::manifest::{is_index, Children, Descriptor, RawManifest};
use crate::store::layout::REF_NAME;

#[derive(Serialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_path(layout: &Path, d: &Digest) -> PathBuf {
    layout.join("blobs").join(d.algorithm()).join(d.hex())
}

fn read_manifest(layout: &Path, d: &Descriptor, file: &Path) -> Result<RawManifest> {
    let bytes = std::fs::read(blob_path(layout, &d.digest)).map_err(|e| out_err(file, e))?;
    let mt = Some(d.media_type.as_str()).filter(|m| !m.is_empty());
    Ok(RawManifest::new(bytes.into(), mt)?)
}

/// The host's platform, as an image index names it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// An index's manifest for this host (linux), else its only one.
fn pick_platform(index: &RawManifest, file: &Path) -> Result<Descriptor> {
    let Children::Index { manifests } = index.children()? else {
        unreachable!("called on an index")
    };
    let host = manifests.iter().find(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_arch())
    });
    match (host, manifests.as_slice()) {
        (Some(m), _) => Ok(m.clone()),
        (None, [one]) => Ok(one.clone()),
        _ => Err(refused(file, None, format!(
            "a docker-archive holds one platform per image and index {} has no linux/{}: pick one with --platform",
            index.digest,
            host_arch()
        ))),
    }
}

/// Packs the spool layout `layout` into the docker-archive `file`.
pub(super) fn pack(layout: &Path, file: &Path) -> Result<()> {
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json")).map_err(|e| out_err(file, e))?,
    )
    .map_err(|e| out_err(file, e))?;
    // Images in index.json order, each with its tags.
    let mut images: Vec<(Descriptor, Vec<String>)> = Vec::new();
    for m in index["manifests"].as_array().cloned().unwrap_or_default() {
        let desc: Descriptor = serde_json::from_value(m.clone()).map_err(|e| out_err(file, e))?;
        let tag = m["annotations"][REF_NAME].as_str().map(str::to_string);
        match images.iter_mut().find(|(d, _)| d.digest == desc.digest) {
            Some((_, tags)) => tags.extend(tag),
            None => images.push((desc, tag.into_iter().collect())),
        }
    }
    let (mut tar, tmp) = open_output(file)?;
    let mut written: HashSet<String> = HashSet::new();
    let mut entries = Vec::new();
    let scratch = tempfile::Builder::new()
        .prefix("ferry-docker-")
        .tempdir()
        .map_err(|e| out_err(file, e))?;
    for (desc, tags) in images {
        let mut m = read_manifest(layout, &desc, file)?;
        if is_index(&m.media_type) {
            let child = pick_platform(&m, file)?;
            m = read_manifest(layout, &child, file)?;
        }
        let Children::Image { config, layers } = m.children()? else {
            unreachable!("an index was resolved above")
        };
        let config_bytes =
            std::fs::read(blob_path(layout, &config.digest)).map_err(|e| out_err(file, e))?;
        let cfg: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|e| out_err(file, e))?;
        let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != layers.len() {
            return Err(refused(
                file,
                None,
                format!(
                "image {}: its config lists {} diff_ids for {} layers; docker load would refuse it",
                m.digest,
                diff_ids.len(),
                layers.len()
            ),
            ));
        }
        let config_name = format!("{}.json", config.digest.hex());
        if written.insert(config_name.clone()) {
            append(
                &mut tar,
                &config_name,
                config_bytes.len() as u64,
                config_bytes.as_slice(),
                file,
            )?;
        }
        let mut names = Vec::new();
        for (layer, diff_id) in layers.iter().zip(&diff_ids) {
            let hex = diff_id.strip_prefix("sha256:").unwrap_or(diff_id);
            let name = format!("{hex}.tar");
            names.push(name.clone());
            if written.contains(&name) {
                continue;
            }
            let from = blob_path(layout, &layer.digest);
            let mut f = std::fs::File::open(&from).map_err(|e| out_err(file, e))?;
            let mut magic = [0u8; 4];
            let k = f.read(&mut magic).map_err(|e| out_err(file, e))?;
            let kind = Compress::of_magic(&magic[..k]);
            let (path, size, actual) = if kind == Compress::None {
                (from.clone(), layer.size, layer.digest.to_string())
            } else {
                let to = scratch.path().join(&name);
                let src = BufReader::new(std::fs::File::open(&from).map_err(|e| out_err(file, e))?);
                let t = transcode(src, kind, Compress::None, &to).map_err(|e| out_err(file, e))?;
                (to, t.output.1, t.output.0.to_string())
            };
            if &actual != diff_id {
                return Err(refused(
                    file,
                    None,
                    format!(
                    "layer {} of image {} uncompresses to {actual}, not to {diff_id}, its diff_id",
                    layer.digest, m.digest
                ),
                ));
            }
            let src = BufReader::with_capacity(
                256 * 1024,
                std::fs::File::open(&path).map_err(|e| out_err(file, e))?,
            );
            append(&mut tar, &name, size, src, file)?;
            if path != from {
                let _ = std::fs::remove_file(&path);
            }
            written.insert(name);
        }
        entries.push(Entry {
            config: config_name,
            repo_tags: tags,
            layers: names,
        });
    }
    let body = serde_json::to_vec(&entries).expect("manifest.json serialises");
    append(
        &mut tar,
        "manifest.json",
        body.len() as u64,
        body.as_slice(),
        file,
    )?;
    finish_output(tar, tmp, file)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
    file: &Path,
) -> Result<()> {
    let mut h = super::pack::header(size, 0o644, tar::EntryType::Regular);
    tar.append_data(&mut h, name, data)
        .map_err(|e| out_err(file, e))
}
