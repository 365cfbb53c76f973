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

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::packify::{self, Value};
use super::wire::Message;
use crate::error::{Error, Result};

/// One layer: `seal` on the way out, `open` on the way in.
pub trait Layer: Send + Sync + 'static {
    /// A short name for errors and AUTH_ERROR replies ("HMAC", "SHA256-stream", "AEAD").
    fn name(&self) -> &'static str;
    fn seal(&self, msg: &mut Message) -> Result<()>;
    /// Checks and/or decrypts; auth failures are [`Error::MsgAuth`], the rest [`Error::Decrypt`].
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

    pub fn is_empty(&self) -> bool {
        self.stack.is_empty()
    }

    /// See [`Layer::per_recipient`].
    pub fn per_recipient(&self) -> bool {
        self.stack.iter().any(|l| l.per_recipient())
    }

    pub fn seal(&self, msg: &mut Message) -> Result<()> {
        self.stack.iter().try_for_each(|l| l.seal(msg))
    }

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

/// netaio's `hmac(key, iv, m)`: RFC 2104's shape over SHA-256 with a 136-byte block (so not
/// HMAC-SHA256), keyed by `derive_key(key, iv, "mac")`; `m` is given in parts.
pub fn netaio_hmac(key: &[u8; 32], iv: &[u8], m: &[&[u8]]) -> [u8; 32] {
    const B: usize = 136;
    let k = derive_key(key, iv, b"mac");
    let mut pad = [0u8; B];
    pad[..32].copy_from_slice(&k);
    let mut ipad = [0x36u8; B];
    let mut opad = [0x5cu8; B];
    for i in 0..B {
        ipad[i] ^= pad[i];
        opad[i] ^= pad[i];
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    for p in m {
        inner.update(p);
    }
    let inner: [u8; 32] = inner.finalize().into();
    sha256(&[&opad, &inner])
}

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

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Remembers recent message ids for a freshness window. Bounded: when full, the oldest entry is
/// evicted and its timestamp becomes a floor under which every message is refused, so an evicted
/// id can never be replayed.
struct ReplayCache {
    window_ms: u64,
    capacity: usize,
    state: Mutex<ReplayState>,
}

#[derive(Default)]
struct ReplayState {
    seen: HashSet<[u8; 16]>,
    order: VecDeque<(u64, [u8; 16])>,
    floor_ms: u64,
}

impl ReplayCache {
    fn new(window: Duration, capacity: usize) -> ReplayCache {
        ReplayCache {
            window_ms: window.as_millis() as u64,
            capacity: capacity.max(1),
            state: Mutex::new(ReplayState::default()),
        }
    }

    /// Records `id` sent at `ts_ms`; false when it was seen (or may have been).
    fn insert(&self, id: [u8; 16], ts_ms: u64) -> bool {
        let now = now_ms();
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        // Entries older than the window can go: the window check refuses their replays anyway.
        while let Some(&(ts, old)) = s.order.front() {
            if ts.saturating_add(self.window_ms) < now {
                s.order.pop_front();
                s.seen.remove(&old);
            } else {
                break;
            }
        }
        if ts_ms <= s.floor_ms || s.seen.contains(&id) {
            return false;
        }
        if s.order.len() >= self.capacity {
            if let Some((ts, old)) = s.order.pop_front() {
                s.seen.remove(&old);
                s.floor_ms = s.floor_ms.max(ts);
            }
        }
        s.seen.insert(id);
        s.order.push_back((ts_ms, id));
        true
    }
}

fn within(ts_ms: u64, window: Duration) -> bool {
    now_ms().abs_diff(ts_ms) <= window.as_millis() as u64
}

/// netaio's `HMACAuthPlugin`.
pub struct NetaioHmac {
    key: [u8; 32],
    hmac_field: String,
    nonce_field: String,
    ts_field: String,
    freshness: Option<(Duration, Option<ReplayCache>)>,
}

impl fmt::Debug for NetaioHmac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetaioHmac")
            .field("hmac_field", &self.hmac_field)
            .field("nonce_field", &self.nonce_field)
            .field("ts_field", &self.ts_field)
            .finish_non_exhaustive()
    }
}

impl Drop for NetaioHmac {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl NetaioHmac {
    /// The layer for `secret` (netaio hashes it: the key is `H(secret)`), default field names.
    pub fn new(secret: &[u8]) -> NetaioHmac {
        NetaioHmac {
            key: sha256(&[secret]),
            hmac_field: "hmac".into(),
            nonce_field: "nonce".into(),
            ts_field: "ts".into(),
            freshness: None,
        }
    }

    /// Field names (netaio's `hmac_field`, `nonce_field`, `ts_field`).
    pub fn fields(mut self, hmac: &str, nonce: &str, ts: &str) -> NetaioHmac {
        self.hmac_field = hmac.into();
        self.nonce_field = nonce.into();
        self.ts_field = ts.into();
        self
    }

    /// Refuses messages whose `ts` is more than `window` from now, and, with `replay_cache`,
    /// messages seen before. Off by default: netaio never checks, and its `ts` has whole seconds.
    pub fn freshness(mut self, window: Duration, replay_cache: bool) -> NetaioHmac {
        let cache = replay_cache.then(|| ReplayCache::new(window * 2, 1 << 18));
        self.freshness = Some((window, cache));
        self
    }

    fn mac(&self, nonce: &[u8], ts: &[u8], msg: &Message) -> [u8; 32] {
        netaio_hmac(&self.key, nonce, &[ts, &msg.uri_len_prefix(), &msg.uri, &msg.content])
    }
}

fn auth_failed() -> Error {
    Error::MsgAuth { layer: "HMAC" }
}

impl Layer for NetaioHmac {
    fn name(&self) -> &'static str {
        "HMAC"
    }

    fn seal(&self, msg: &mut Message) -> Result<()> {
        // An inner HMAC layer's nonce and ts are reused, as netaio does.
        let nonce: [u8; 16] = match msg.auth.get_bytes(&self.nonce_field).and_then(|n| n.try_into().ok()) {
            Some(n) => n,
            None => {
                let mut n = [0u8; 16];
                rand::thread_rng().fill_bytes(&mut n);
                n
            }
        };
        let ts: u32 = match msg.auth.get(&self.ts_field) {
            Some(Value::Int(i)) => {
                u32::try_from(*i).map_err(|_| Error::InvalidArgument("ts does not fit 4 bytes".into()))?
            }
            Some(Value::Bytes(b)) if b.len() <= 4 => b.iter().fold(0u32, |a, x| (a << 8) | *x as u32),
            Some(_) => return Err(Error::InvalidArgument("ts field is not 4 bytes or an int".into())),
            None => (now_ms() / 1000) as u32,
        };
        let ts = ts.to_be_bytes();
        let mac = self.mac(&nonce, &ts, msg);
        msg.auth.set_bytes(&self.nonce_field, &nonce);
        msg.auth.set_bytes(&self.ts_field, &ts);
        msg.auth.set_bytes(&self.hmac_field, &mac);
        Ok(())
    }

    fn open(&self, msg: &mut Message) -> Result<()> {
        let ts_int;
        let ts: &[u8] = match msg.auth.get(&self.ts_field) {
            None | Some(Value::Int(0)) => return Err(auth_failed()),
            Some(Value::Int(i)) => {
                ts_int = u32::try_from(*i).map_err(|_| auth_failed())?.to_be_bytes();
                &ts_int
            }
            Some(Value::Bytes(b)) => b,
            Some(_) => return Err(auth_failed()),
        };
        let nonce = msg.auth.get_bytes(&self.nonce_field).ok_or_else(auth_failed)?;
        let mac = msg.auth.get_bytes(&self.hmac_field).ok_or_else(auth_failed)?;
        if mac.len() != 32 || !bool::from(self.mac(nonce, ts, msg).ct_eq(mac)) {
            return Err(auth_failed());
        }
        if let Some((window, cache)) = &self.freshness {
            if ts.len() > 8 {
                return Err(auth_failed());
            }
            let ts_ms = ts.iter().fold(0u64, |a, x| (a << 8) | *x as u64).saturating_mul(1000);
            // Whole seconds on the wire: allow the second being cut off.
            if !within(ts_ms, *window + Duration::from_secs(1)) {
                return Err(auth_failed());
            }
            if let Some(cache) = cache {
                let mut id = [0u8; 16];
                id.copy_from_slice(&mac[..16]);
                if !cache.insert(id, ts_ms) {
                    return Err(auth_failed());
                }
            }
        }
        Ok(())
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
    use crate::msg::wire::MessageType;

    fn msg() -> Message {
        Message::new(MessageType::CREATE_URI, &b"a/b"[..], &b"hello"[..])
    }

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

    #[test]
    fn hmac_freshness_and_replay() {
        let l = Layers::new().with(NetaioHmac::new(b"s").freshness(Duration::from_secs(5), true));
        let mut m = msg();
        l.seal(&mut m).unwrap();
        l.open(&mut m.clone()).unwrap();
        assert!(l.open(&mut m.clone()).is_err(), "replay refused");
        let mut old = msg();
        old.auth.set("ts", Value::Int(1_700_000_000));
        l.seal(&mut old).unwrap();
        assert!(l.open(&mut old.clone()).is_err(), "stale refused");
        // Without freshness (netaio's behaviour) the stale message verifies, again and again.
        let plain = Layers::new().with(NetaioHmac::new(b"s"));
        plain.open(&mut old.clone()).unwrap();
        plain.open(&mut old).unwrap();
    }

    #[test]
    fn replay_cache_bounded() {
        let c = ReplayCache::new(Duration::from_secs(60), 4);
        let now = now_ms();
        for i in 0..4u8 {
            assert!(c.insert([i; 16], now + i as u64));
        }
        assert!(c.insert([9; 16], now + 10));
        // [0;16] was evicted: its timestamp is now a floor, so it cannot come back.
        assert!(!c.insert([0; 16], now));
        assert!(!c.insert([9; 16], now + 10));
        assert!(c.state.lock().unwrap().order.len() <= 4);
    }
}
