//! Property tests (proptest) of what ferry parses from users and registries before anything
//! else: image references and the manifest probe (media type, children). Any input is parsed or
//! refused without a panic; well-formed inputs give back what they say. Corpus and regressions:
//! `tests/fuzz-corpus/` (see the transport's fuzz module).

use bytes::Bytes;
use proptest::prelude::*;

use crate::manifest::{Children, RawManifest};
use crate::reference::{ImageRef, RegistryRef};
use crate::store::registry::fuzz_support::{config, corpus};
use crate::Digest;

#[test]
fn the_corpus_parses_without_panics() {
    for line in corpus("reference.txt") {
        let _ = line.parse::<ImageRef>();
        let _ = line.parse::<RegistryRef>();
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz-corpus/manifest");
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        probe(&bytes);
    }
}

/// Everything the copy engine asks of a received manifest.
fn probe(bytes: &[u8]) {
    for ct in [
        None,
        Some("application/json"),
        Some(crate::manifest::OCI_INDEX),
    ] {
        if let Ok(m) = RawManifest::new(Bytes::copy_from_slice(bytes), ct) {
            let _ = m.children();
            let _ = m.subject();
            let _ = m.is_schema1();
        }
    }
}

fn digest_hex() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}"
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_reference_parses_without_panic(s in "\\PC{0,120}") {
        let _ = s.parse::<ImageRef>();
        let _ = s.parse::<RegistryRef>();
    }

    #[test]
    fn registry_references_give_back_their_parts(
        host in "(r[a-z0-9]{0,8}\\.example|localhost|127\\.0\\.0\\.1)(:[1-9][0-9]{0,4})?",
        repo in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
        tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
        hex in proptest::option::of(digest_hex()),
    ) {
        let mut s = format!("{host}/{repo}:{tag}");
        if let Some(h) = &hex {
            s.push_str(&format!("@sha256:{h}"));
        }
        let r: RegistryRef = s.parse().unwrap();
        prop_assert_eq!(r.registry.as_str(), host.as_str());
        prop_assert_eq!(r.repository.as_str(), repo.as_str());
        prop_assert_eq!(r.tag.as_deref(), Some(tag.as_str()));
        prop_assert_eq!(r.digest.as_ref().map(|d| d.hex().to_string()), hex);
        prop_assert_eq!(r.to_string().parse::<RegistryRef>().unwrap().to_string(), r.to_string());
    }

    #[test]
    fn any_bytes_probe_without_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        probe(&b);
    }

    #[test]
    fn any_json_probes_without_panic(v in json(3)) {
        probe(v.to_string().as_bytes());
    }

    #[test]
    fn image_manifests_name_their_config_and_layers(
        sizes in proptest::collection::vec(0u64..1 << 40, 1..6),
        docker in any::<bool>(),
    ) {
        let d = |i: usize, size: u64| serde_json::json!({
            "mediaType": "application/octet-stream",
            "digest": Digest::of(&i.to_le_bytes()).to_string(),
            "size": size,
        });
        let mt = if docker { crate::manifest::DOCKER_MANIFEST } else { crate::manifest::OCI_MANIFEST };
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": d(0, sizes[0]),
            "layers": sizes[1..].iter().enumerate().map(|(i, s)| d(i + 1, *s)).collect::<Vec<_>>(),
        });
        let m = RawManifest::new(Bytes::from(body.to_string()), None).unwrap();
        prop_assert_eq!(m.media_type.as_str(), mt);
        match m.children().unwrap() {
            Children::Image { config, layers } => {
                prop_assert_eq!(config.size, sizes[0]);
                prop_assert_eq!(layers.iter().map(|l| l.size).collect::<Vec<_>>(), sizes[1..].to_vec());
            }
            Children::Index { .. } => prop_assert!(false, "an image read as an index"),
        }
    }
}

/// Arbitrary JSON, with the keys a manifest has among the random ones.
fn json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
        digest_hex().prop_map(|h| Value::String(format!("sha256:{h}"))),
    ];
    leaf.prop_recursive(depth, 32, 6, |inner| {
        let key = prop_oneof![
            Just("mediaType".to_string()),
            Just("schemaVersion".to_string()),
            Just("config".to_string()),
            Just("layers".to_string()),
            Just("manifests".to_string()),
            Just("subject".to_string()),
            Just("digest".to_string()),
            Just("size".to_string()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
