//! A blob streamed from a file by offset, hashed as it goes; its last chunk is held back until
//! the hash matches, so a receiver never gets all of a wrong blob.

use std::io::SeekFrom;
use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::tarindex::{refused, Loc, BUF};
use crate::digest::{Digest, DigestHasher};
use crate::error::Error;
use crate::store::BlobStream;

/// Streams `loc` of the file `data`, hashing from byte 0 (the part before `from` is hashed
/// but not sent), refusing a hash other than `expected` before the last chunk goes out.
pub(crate) fn stream_verified(
    data: PathBuf,
    shown: PathBuf,
    name: String,
    loc: Loc,
    expected: Option<Digest>,
    from: u64,
) -> BlobStream {
    struct St {
        f: Option<tokio::fs::File>,
        pos: u64,
        hasher: Option<DigestHasher>,
        done: bool,
    }
    let st = St {
        f: None,
        pos: 0,
        hasher: Some(DigestHasher::new()),
        done: false,
    };
    futures::stream::unfold(st, move |mut st| {
        let (data, shown, name, expected) = (data.clone(), shown.clone(), name.clone(), expected.clone());
        async move {
            if st.done {
                return None;
            }
            let fail = |e: Error| {
                let end = St {
                    f: None,
                    pos: 0,
                    hasher: None,
                    done: true,
                };
                Some((Err(e), end))
            };
            let read_err = |e: std::io::Error| refused(&shown, Some(&name), format!("cannot read the entry: {e}"));
            if st.f.is_none() {
                let mut f = match tokio::fs::File::open(&data).await {
                    Ok(f) => f,
                    Err(e) => return fail(read_err(e)),
                };
                if let Err(e) = f.seek(SeekFrom::Start(loc.offset)).await {
                    return fail(read_err(e));
                }
                st.f = Some(f);
            }
            loop {
                let left = loc.size - st.pos;
                if left == 0 {
                    // Only an empty entry gets here: its hash is checked all the same.
                    let actual = Digest::of(b"");
                    return match &expected {
                        Some(want) if want != &actual => {
                            let why = format!("the bytes hash to {actual}, not to {want}, the digest that names them");
                            fail(refused(&shown, Some(&name), why))
                        }
                        _ => None,
                    };
                }
                let mut buf = vec![0u8; (left.min(BUF as u64)) as usize];
                let f = st.f.as_mut().expect("opened");
                if let Err(e) = f.read_exact(&mut buf).await {
                    return fail(read_err(e));
                }
                let start = st.pos;
                st.pos += buf.len() as u64;
                let h = st.hasher.as_mut().expect("hashing");
                h.update(&buf);
                if st.pos == loc.size {
                    let (actual, _) = st.hasher.take().expect("hashing").finish();
                    if let Some(want) = &expected {
                        if &actual != want {
                            let why = format!(
                                "the bytes hash to {actual}, not to {want}, the digest that names them"
                            );
                            return fail(refused(&shown, Some(&name), why));
                        }
                    }
                    st.done = true;
                }
                let end = st.pos;
                if end <= from {
                    if st.done {
                        return None;
                    }
                    continue;
                }
                let skip = from.saturating_sub(start) as usize;
                let chunk = Bytes::from(buf).slice(skip..);
                return Some((Ok(chunk), st));
            }
        }
    })
    .boxed()
}
