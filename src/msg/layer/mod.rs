//! Auth and cipher layers (WIRE.md §2). A [`Layers`] stack seals in the order its layers were
//! added and opens in reverse: netaio's per-level order (cipher, then auth) is
//! `Layers::new().with(cipher).with(hmac)`, and a server or node applies a handler's (inner) stack
//! before its instance (outer) stack when sealing, the reverse when opening (WIRE.md §2.4).
//!
//! - [`NetaioHmac`]: netaio's `HMACAuthPlugin`, byte for byte (136-byte block), plus an optional
//!   freshness window and replay cache (off by default: netaio peers never check time).
//! - [`NetaioStreamCipher`]: netaio's `Sha256StreamCipherPlugin`, byte for byte (compat only: it
//!   has no integrity of its own).
//! - [`Aead`]: libnorman's ChaCha20-Poly1305 layer, whose associated data covers the message type,
//!   the uri (when not encrypted) and every auth field present when it sealed, with a timestamp
//!   window and a replay cache on by default. Between libnorman peers, use this one.

mod aead;
mod cipher;
mod hmac;
mod replay;

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::msg::wire::Message;

pub use aead::{Aead, AEAD_REPLAY_ENTRIES};
pub use cipher::{netaio_keystream_xor, NetaioStreamCipher};
pub use hmac::{netaio_hmac, NetaioHmac};

/// One layer: `seal` on the way out, `open` on the way in.
pub trait Layer: Send + Sync + 'static {
    /// A short name for errors and AUTH_ERROR replies ("HMAC", "SHA256-stream", "AEAD").
    fn name(&self) -> &'static str;
    /// Signs and/or encrypts an outgoing message in place.
    fn seal(&self, msg: &mut Message) -> Result<()>;
    /// Checks and/or decrypts; auth failures are [`Error::MsgAuth`](crate::Error::MsgAuth), the rest [`Error::Decrypt`](crate::Error::Decrypt).
    fn open(&self, msg: &mut Message) -> Result<()>;
    /// Whether one sealed copy must not go to several recipients (a replay cache shared by
    /// receivers in one process would refuse the second copy): notify and broadcast then seal
    /// per recipient.
    fn per_recipient(&self) -> bool {
        false
    }
}

/// A stack of layers, cheap to clone (layers are shared; replay caches too).
#[derive(Clone, Default)]
pub struct Layers {
    stack: Vec<Arc<dyn Layer>>,
}

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.stack.iter().map(|l| l.name())).finish()
    }
}

impl Layers {
    /// No layers (messages in the clear).
    pub fn new() -> Layers {
        Layers::default()
    }

    /// Adds `layer` on top: it seals after, and opens before, the layers already there.
    pub fn with(mut self, layer: impl Layer) -> Layers {
        self.stack.push(Arc::new(layer));
        self
    }

    /// Adds an already shared layer on top (see [`Layers::with`]).
    pub fn with_arc(mut self, layer: Arc<dyn Layer>) -> Layers {
        self.stack.push(layer);
        self
    }

    /// netaio's usual instance layers: the stream cipher (when `cipher_key`) inside the HMAC
    /// (when `secret`), both with netaio's default field names.
    pub fn netaio(secret: Option<&[u8]>, cipher_key: Option<&[u8]>) -> Layers {
        let mut l = Layers::new();
        if let Some(k) = cipher_key {
            l = l.with(NetaioStreamCipher::new(k));
        }
        if let Some(s) = secret {
            l = l.with(NetaioHmac::new(s));
        }
        l
    }

    /// libnorman's AEAD layer alone, with its defaults.
    pub fn aead(key: &[u8; 32]) -> Layers {
        Layers::new().with(Aead::new(key))
    }

    /// Whether there are no layers.
    pub fn is_empty(&self) -> bool {
        self.stack.is_empty()
    }

    /// See [`Layer::per_recipient`].
    pub fn per_recipient(&self) -> bool {
        self.stack.iter().any(|l| l.per_recipient())
    }

    /// Seals `msg` with every layer, innermost first.
    pub fn seal(&self, msg: &mut Message) -> Result<()> {
        self.stack.iter().try_for_each(|l| l.seal(msg))
    }

    /// Opens `msg` with every layer, outermost first.
    pub fn open(&self, msg: &mut Message) -> Result<()> {
        self.stack.iter().rev().try_for_each(|l| l.open(msg))
    }
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// netaio's `derive_key(a, b, c) = H(H(a) ‖ H(b) ‖ H(c))`.
pub fn derive_key(a: &[u8], b: &[u8], c: &[u8]) -> [u8; 32] {
    sha256(&[&sha256(&[a]), &sha256(&[b]), &sha256(&[c])])
}

/// A message for the layers' tests.
#[cfg(test)]
fn test_msg() -> Message {
    Message::new(crate::msg::wire::MessageType::CREATE_URI, &b"a/b"[..], &b"hello"[..])
}
