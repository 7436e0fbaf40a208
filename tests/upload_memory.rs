//! Memory stays bounded whatever the blob and chunk sizes: a 256 MiB blob generated on the fly
//! goes to the real registry chunked (64 MiB chunks) and monolithically, and the process's peak
//! resident memory grows by much less than one chunk. Alone in its binary, so that no other
//! test's memory counts.
mod support;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use ferry::digest::DigestHasher;
use ferry::manifest::Descriptor;
use ferry::store::registry::{RegistryClient, RegistryOptions, RegistryStore, UploadStrategy};
use ferry::store::{BlobSource, BlobStream, Store};
use support::registry::Registry;

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 256 * MIB;
const FRAME: u64 = 256 * 1024;

/// `SIZE` bytes made on demand: one random block, each frame stamped with its offset.
struct Generated {
    block: Bytes,
    seed: u8,
}

impl Generated {
    fn new(seed: u8) -> Generated {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ seed as u64;
        let block: Vec<u8> = (0..FRAME)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Generated {
            block: block.into(),
            seed,
        }
    }

    fn frame(&self, index: u64) -> Bytes {
        let mut f = self.block.to_vec();
        f[..8].copy_from_slice(&index.to_le_bytes());
        f[8] = self.seed;
        f.into()
    }

    fn descriptor(&self) -> Descriptor {
        let mut h = DigestHasher::new();
        for i in 0..SIZE / FRAME {
            h.update(&self.frame(i));
        }
        let (digest, size) = h.finish();
        Descriptor {
            media_type: "application/octet-stream".into(),
            digest,
            size,
            platform: None,
        }
    }
}

#[async_trait]
impl BlobSource for Generated {
    async fn open(&self, offset: u64) -> ferry::Result<BlobStream> {
        assert_eq!(offset % FRAME, 0, "no resume expected here");
        let me = Generated {
            block: self.block.clone(),
            seed: self.seed,
        };
        let frames = (offset / FRAME..SIZE / FRAME).map(move |i| Ok(me.frame(i)));
        Ok(futures::stream::iter(frames).boxed())
    }
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_uploads_keep_memory_bounded() {
    let reg = Registry::start();
    let client = RegistryClient::new(&reg.addr, RegistryOptions::default()).unwrap();
    let store = RegistryStore::new(client.clone(), "team/big");
    let cases = [
        (UploadStrategy::Chunked, 64 * MIB, 1u8),
        (UploadStrategy::Monolithic, 64 * MIB, 2),
        (UploadStrategy::Streamed, 64 * MIB, 3),
    ];
    let before = peak_rss();
    for (strategy, chunk, seed) in cases {
        let source = Generated::new(seed);
        let desc = source.descriptor();
        let r = store
            .upload_with(&desc, &source, strategy, chunk)
            .await
            .unwrap();
        assert_eq!(r.strategy, strategy);
        assert!(store.has_blob(&desc).await.unwrap());
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 32 * MIB,
        "peak RSS grew by {} MiB while uploading 3 × 256 MiB",
        grown / MIB
    );
    assert_eq!(client.stats().blob_bytes_uploaded, 3 * SIZE);
}
