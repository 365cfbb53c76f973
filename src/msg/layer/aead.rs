//! libnorman's ChaCha20-Poly1305 layer ([`Aead`]).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use rand::RngCore;

use super::replay::{now_ms, within, ReplayCache};
use super::Layer;
use crate::error::{Error, Result};
use crate::msg::packify::{self, Value};
use crate::msg::wire::Message;

/// Default replay cache capacity of [`Aead`] (entries; about 60 bytes each).
pub const AEAD_REPLAY_ENTRIES: usize = 1 << 18;

const AEAD_VERSION: u8 = 1;
const AEAD_FLAG_URI: u8 = 1;
const AEAD_FIXED: usize = 2 + 12 + 8;

/// libnorman's AEAD layer: ChaCha20-Poly1305 with a random 96-bit nonce per message.
///
/// Its one auth field (default name `aead`) holds `version ‖ flags ‖ nonce(12) ‖ ts_ms(u64 BE) ‖
/// covered field names (u8 length ‖ name)… ‖ tag(16)`. The associated data is the message type,
/// that field without its tag, each covered auth field (name and packed value, in the listed
/// order) and, when the uri is not encrypted, the uri. The covered fields are every auth field
/// present when this layer sealed (outer layers add theirs later), so a request id, or an inner
/// layer's fields, cannot be changed or removed. With `encrypt_uri` (default) the uri travels
/// inside the ciphertext and the wire uri is empty.
pub struct Aead {
    cipher: ChaCha20Poly1305,
    field: String,
    encrypt_uri: bool,
    window: Option<Duration>,
    replay: Option<ReplayCache>,
}

impl fmt::Debug for Aead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aead")
            .field("field", &self.field)
            .field("encrypt_uri", &self.encrypt_uri)
            .field("window", &self.window)
            .field("replay_cache", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}

impl Aead {
    /// Default window (both ways) for the message timestamp.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

    /// The layer for a 32-byte key, with a 60 s window and a replay cache.
    pub fn new(key: &[u8; 32]) -> Aead {
        Aead {
            cipher: ChaCha20Poly1305::new(key.into()),
            field: "aead".into(),
            encrypt_uri: true,
            window: Some(Self::DEFAULT_WINDOW),
            replay: Some(ReplayCache::new(Self::DEFAULT_WINDOW * 2, AEAD_REPLAY_ENTRIES)),
        }
    }

    /// Names the auth field this layer writes and reads (default "aead").
    pub fn field(mut self, name: &str) -> Aead {
        self.field = name.into();
        self
    }

    /// Whether the uri is encrypted (on by default; an inner layer should say false so that
    /// routing by uri works).
    pub fn encrypt_uri(mut self, on: bool) -> Aead {
        self.encrypt_uri = on;
        self
    }

    /// The timestamp window and replay cache (`None`: neither; not recommended).
    pub fn window(mut self, window: Option<Duration>, replay_entries: usize) -> Aead {
        self.window = window;
        self.replay = window.filter(|_| replay_entries > 0).map(|w| ReplayCache::new(w * 2, replay_entries));
        self
    }

    fn associated_data(
        &self,
        msg: &Message,
        head: &[u8],
        names: &[&str],
        uri_plain: bool,
    ) -> Result<Vec<u8>> {
        let mut ad = Vec::with_capacity(64 + head.len());
        ad.push(msg.message_type.0);
        ad.extend_from_slice(&(head.len() as u16).to_be_bytes());
        ad.extend_from_slice(head);
        let mut v = Vec::new();
        for name in names {
            let value = msg.auth.get(name).ok_or(Error::MsgAuth { layer: "AEAD" })?;
            v.clear();
            value.pack_into(&mut v);
            let mut k = Vec::new();
            Value::Str((*name).to_owned()).pack_into(&mut k);
            packify::pack_packed_pair(&k, &v, &mut ad);
        }
        if uri_plain {
            ad.extend_from_slice(&msg.uri_len_prefix());
            ad.extend_from_slice(&msg.uri);
        }
        Ok(ad)
    }
}

fn aead_failed() -> Error {
    Error::MsgAuth { layer: "AEAD" }
}

impl Layer for Aead {
    fn name(&self) -> &'static str {
        "AEAD"
    }

    fn per_recipient(&self) -> bool {
        self.replay.is_some()
    }

    fn seal(&self, msg: &mut Message) -> Result<()> {
        let mut names: Vec<&str> = msg.auth.iter().map(|(k, _)| k).filter(|k| *k != self.field).collect();
        names.sort_unstable();
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut head = Vec::with_capacity(AEAD_FIXED + 16 + names.iter().map(|n| n.len() + 1).sum::<usize>());
        head.push(AEAD_VERSION);
        head.push(if self.encrypt_uri { AEAD_FLAG_URI } else { 0 });
        head.extend_from_slice(&nonce);
        head.extend_from_slice(&now_ms().to_be_bytes());
        for n in &names {
            let len = u8::try_from(n.len())
                .map_err(|_| Error::InvalidArgument("auth field name over 255 bytes".into()))?;
            head.push(len);
            head.extend_from_slice(n.as_bytes());
        }
        let ad = self.associated_data(msg, &head, &names, !self.encrypt_uri)?;
        let mut buf = if self.encrypt_uri {
            let mut pt = Vec::with_capacity(msg.body_len());
            pt.extend_from_slice(&msg.uri_len_prefix());
            pt.extend_from_slice(&msg.uri);
            pt.extend_from_slice(&msg.content);
            pt
        } else {
            msg.content.to_vec()
        };
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &ad, &mut buf)
            .map_err(|_| Error::InvalidArgument("message too large for the AEAD layer".into()))?;
        head.extend_from_slice(&tag);
        if self.encrypt_uri {
            msg.uri = Bytes::new();
        }
        msg.content = buf.into();
        msg.auth.set(&self.field, Value::Bytes(head));
        Ok(())
    }

    fn open(&self, msg: &mut Message) -> Result<()> {
        let field = msg.auth.get_bytes(&self.field).ok_or_else(aead_failed)?;
        if field.len() < AEAD_FIXED + 16 || field[0] != AEAD_VERSION {
            return Err(aead_failed());
        }
        let (head, tag) = field.split_at(field.len() - 16);
        let uri_encrypted = head[1] & AEAD_FLAG_URI != 0;
        let nonce: [u8; 12] = head[2..14].try_into().map_err(|_| aead_failed())?;
        let ts_ms = u64::from_be_bytes(head[14..22].try_into().map_err(|_| aead_failed())?);
        let mut names = Vec::new();
        let mut rest = &head[AEAD_FIXED..];
        while let Some((&n, tail)) = rest.split_first() {
            let name = tail.get(..n as usize).ok_or_else(aead_failed)?;
            names.push(std::str::from_utf8(name).map_err(|_| aead_failed())?);
            rest = &tail[n as usize..];
        }
        if let Some(w) = self.window {
            if !within(ts_ms, w) {
                return Err(aead_failed());
            }
        }
        if uri_encrypted && !msg.uri.is_empty() {
            return Err(aead_failed());
        }
        let ad = self.associated_data(msg, head, &names, !uri_encrypted)?;
        let tag = Tag::clone_from_slice(tag);
        let mut buf = msg.content.to_vec();
        self.cipher
            .decrypt_in_place_detached(Nonce::from_slice(&nonce), &ad, &mut buf, &tag)
            .map_err(|_| aead_failed())?;
        // Only an authentic message enters the replay cache (forgeries cannot fill it).
        if let Some(cache) = &self.replay {
            let mut id = [0u8; 16];
            id[..12].copy_from_slice(&nonce);
            if !cache.insert(id, ts_ms) {
                return Err(aead_failed());
            }
        }
        if uri_encrypted {
            if buf.len() < 2 {
                return Err(aead_failed());
            }
            let n = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if 2 + n > buf.len() {
                return Err(aead_failed());
            }
            let pt = Bytes::from(buf);
            msg.uri = pt.slice(2..2 + n);
            msg.content = pt.slice(2 + n..);
        } else {
            msg.content = buf.into();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::layer::{test_msg as msg, Layers};
    use crate::msg::wire::MessageType;

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = [7u8; 32];
        let sealer = Layers::aead(&key);
        let opener = Layers::aead(&key);
        let mut m = msg();
        m.auth.set_bytes("norman_rid", &[0, 0, 0, 0, 0, 0, 0, 9]);
        sealer.seal(&mut m).unwrap();
        assert!(m.uri.is_empty());
        let wire = m.clone();
        opener.open(&mut m).unwrap();
        assert_eq!((&m.uri[..], &m.content[..]), (&b"a/b"[..], &b"hello"[..]));
        // A replay is refused.
        assert_eq!(opener.open(&mut wire.clone()).unwrap_err().kind(), crate::ErrorKind::MsgAuth);
        // Type, covered field and content changes are refused (fresh opener: no replay involved).
        let mut t = wire.clone();
        t.message_type = MessageType::DELETE_URI;
        assert!(Layers::aead(&key).open(&mut t).is_err());
        let mut t = wire.clone();
        t.auth.set_bytes("norman_rid", &[1]);
        assert!(Layers::aead(&key).open(&mut t).is_err());
        let mut t = wire.clone();
        t.auth.remove("norman_rid");
        assert!(Layers::aead(&key).open(&mut t).is_err());
        let mut t = wire.clone();
        let mut c = t.content.to_vec();
        c[0] ^= 1;
        t.content = c.into();
        assert!(Layers::aead(&key).open(&mut t).is_err());
        assert!(Layers::aead(&[8u8; 32]).open(&mut wire.clone()).is_err());
        // Fields added after sealing (an outer layer's) do not matter.
        let mut t = wire.clone();
        t.auth.set_bytes("hmac", &[1, 2]);
        Layers::aead(&key).open(&mut t).unwrap();
    }

    #[test]
    fn aead_window() {
        let key = [1u8; 32];
        let mut m = msg();
        Layers::aead(&key).seal(&mut m).unwrap();
        // Rewrite the timestamp far in the past: refused by the window before the tag is checked.
        let mut f = m.auth.get_bytes("aead").unwrap().to_vec();
        f[14..22].copy_from_slice(&1u64.to_be_bytes());
        m.auth.set_bytes("aead", &f);
        assert!(Layers::aead(&key).open(&mut m.clone()).is_err());
        // Without a window the tag still fails (the timestamp is authenticated).
        assert!(Layers::new().with(Aead::new(&key).window(None, 0)).open(&mut m).is_err());
    }
}
