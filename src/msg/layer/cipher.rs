//! netaio's SHA-256 stream cipher: its keystream and its `Sha256StreamCipherPlugin`
//! ([`NetaioStreamCipher`]).

use std::fmt;

use bytes::Bytes;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{derive_key, sha256, Layer};
use crate::error::{Error, Result};
use crate::msg::wire::Message;

/// XORs `data` with netaio's SHA-256 keystream: block i = `H(derive_key(key, iv, "enc") ‖ u32 i)`.
pub fn netaio_keystream_xor(key: &[u8; 32], iv: &[u8], data: &mut [u8]) {
    let k = derive_key(key, iv, b"enc");
    let mut base = Sha256::new();
    base.update(k);
    for (i, chunk) in data.chunks_mut(32).enumerate() {
        let block: [u8; 32] = base.clone().chain_update((i as u32).to_be_bytes()).finalize().into();
        for (d, k) in chunk.iter_mut().zip(block.iter()) {
            *d ^= k;
        }
    }
}

/// netaio's `Sha256StreamCipherPlugin`.
pub struct NetaioStreamCipher {
    key: [u8; 32],
    iv_field: String,
    encrypt_uri: bool,
}

impl fmt::Debug for NetaioStreamCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetaioStreamCipher")
            .field("iv_field", &self.iv_field)
            .field("encrypt_uri", &self.encrypt_uri)
            .finish_non_exhaustive()
    }
}

impl Drop for NetaioStreamCipher {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl NetaioStreamCipher {
    /// The cipher for `key` (netaio hashes it), iv field "iv", `encrypt_uri` on (netaio's default).
    pub fn new(key: &[u8]) -> NetaioStreamCipher {
        NetaioStreamCipher { key: sha256(&[key]), iv_field: "iv".into(), encrypt_uri: true }
    }

    /// Names the auth field carrying the IV (default "iv").
    pub fn iv_field(mut self, name: &str) -> NetaioStreamCipher {
        self.iv_field = name.into();
        self
    }

    /// Whether the uri is encrypted too (both ends must agree; an inner layer should say false,
    /// or routing by uri breaks).
    pub fn encrypt_uri(mut self, on: bool) -> NetaioStreamCipher {
        self.encrypt_uri = on;
        self
    }

    /// Encrypts with a given iv and, with `encrypt_uri`, a given split point (1..len-1) of the
    /// ciphertext between uri and content (netaio picks both at random): for test vectors.
    pub fn encrypt_with(&self, msg: &mut Message, iv: &[u8; 16], split: Option<usize>) -> Result<()> {
        if self.encrypt_uri {
            let mut pt = Vec::with_capacity(msg.body_len());
            pt.extend_from_slice(&msg.uri_len_prefix());
            pt.extend_from_slice(&msg.uri);
            pt.extend_from_slice(&msg.content);
            netaio_keystream_xor(&self.key, iv, &mut pt);
            let max = pt.len() - 1;
            let r = match split {
                Some(r) if (1..=max.max(1)).contains(&r) => r,
                Some(_) => return Err(Error::InvalidArgument("split point outside the ciphertext".into())),
                None if max <= 1 => 1,
                None => rand::Rng::gen_range(&mut rand::thread_rng(), 1..=max),
            };
            let ct = Bytes::from(pt);
            msg.uri = ct.slice(..r);
            msg.content = ct.slice(r..);
        } else {
            let mut ct = msg.content.to_vec();
            netaio_keystream_xor(&self.key, iv, &mut ct);
            msg.content = ct.into();
        }
        msg.auth.set_bytes(&self.iv_field, iv);
        Ok(())
    }
}

fn decrypt_failed(reason: &'static str) -> Error {
    Error::Decrypt { layer: "SHA256-stream", reason }
}

impl Layer for NetaioStreamCipher {
    fn name(&self) -> &'static str {
        "SHA256-stream"
    }

    fn seal(&self, msg: &mut Message) -> Result<()> {
        let mut iv = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut iv);
        self.encrypt_with(msg, &iv, None)
    }

    fn open(&self, msg: &mut Message) -> Result<()> {
        let iv = msg.auth.get_bytes(&self.iv_field).ok_or_else(|| decrypt_failed("iv field missing"))?;
        if self.encrypt_uri {
            let mut pt = Vec::with_capacity(msg.uri.len() + msg.content.len());
            pt.extend_from_slice(&msg.uri);
            pt.extend_from_slice(&msg.content);
            netaio_keystream_xor(&self.key, iv, &mut pt);
            if pt.len() < 2 {
                return Err(decrypt_failed("ciphertext shorter than the uri length"));
            }
            let n = u16::from_be_bytes([pt[0], pt[1]]) as usize;
            if 2 + n > pt.len() {
                return Err(decrypt_failed("uri length past the plaintext (wrong key?)"));
            }
            let pt = Bytes::from(pt);
            msg.uri = pt.slice(2..2 + n);
            msg.content = pt.slice(2 + n..);
        } else {
            let mut pt = msg.content.to_vec();
            netaio_keystream_xor(&self.key, iv, &mut pt);
            msg.content = pt.into();
        }
        Ok(())
    }
}
