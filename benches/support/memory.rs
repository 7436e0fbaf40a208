//! In-memory blobs for benches: deterministic incompressible bytes and a [`BlobSource`] over them.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use ferry::error::Result;
use ferry::store::{BlobSource, BlobStream};

/// Bytes per chunk a [`MemorySource`] yields (the layout store's read size).
const CHUNK: usize = 256 * 1024;

/// `len` pseudo-random bytes (xorshift64*), the same on every run.
pub fn pattern(len: usize) -> Bytes {
    let mut out = vec![0u8; len];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for word in out.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        word.copy_from_slice(&v[..word.len()]);
    }
    out.into()
}

/// A blob source reading zero-copy slices of a buffer, so an upload bench measures only the
/// upload side.
pub struct MemorySource(pub Bytes);

#[async_trait]
impl BlobSource for MemorySource {
    async fn open(&self, offset: u64) -> Result<BlobStream> {
        let rest = self.0.slice(offset as usize..);
        let chunks = (0..rest.len())
            .step_by(CHUNK)
            .map(move |at| Ok(rest.slice(at..(at + CHUNK).min(rest.len()))));
        Ok(futures::stream::iter(chunks).boxed())
    }
}
