//! netaio's HMAC: its `hmac` function and its `HMACAuthPlugin` ([`NetaioHmac`]).

use std::fmt;
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::replay::{now_ms, within, ReplayCache};
use super::{derive_key, sha256, Layer};
use crate::error::{Error, Result};
use crate::msg::packify::Value;
use crate::msg::wire::Message;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::layer::{test_msg as msg, Layers};

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
}
