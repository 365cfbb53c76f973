//! The fused pass of the upload stream: xxh3-64 of the plaintext file bytes and ChaCha20 (IETF,
//! counter from 0, no MAC) over header + file, one continuous keystream, in one walk over each buffer.
//!
//! The `chacha20` crate picks its fastest backend at run time (AVX-512 when built with
//! `--cfg chacha20_avx512`, as .cargo/config.toml does; AVX2, SSE2 otherwise).

use chacha20::cipher::{Block, KeyIvInit, StreamCipher, StreamCipherCore, StreamCipherSeek};
use chacha20::variants::Ietf;
use chacha20::{ChaCha20, ChaChaCore, R20};

use super::pairing::StreamSecrets;
use crate::checksum::{Checksum, Hasher};
use crate::error::{Error, Result, KEYSTREAM_LIMIT};

/// Hash and cipher in slices this small so a slice is still in L1/L2 when the second pass reaches it.
const FUSE_SLICE: usize = 16 * 1024;

/// Keystream offset of the last block (counter 2^32 - 1). `cipher` 0.5's buffering wrapper refuses to
/// produce that block (its limit is one block short of the counter space), while the stream may use
/// it: `tail_block` makes it, so the limit stays exactly 256 GiB and no call can panic.
const LAST_BLOCK_AT: u64 = KEYSTREAM_LIMIT - 64;

/// The ChaCha20 backend the `chacha20` crate runs on this CPU: what `norman bench` reports. It
/// mirrors the crate's own choice (AVX-512 needs AVX-512F and VL and the `chacha20_avx512` cfg
/// compiled in; then AVX2, SSE2; NEON on aarch64) and its `chacha20_backend` override.
pub fn chacha20_backend() -> &'static str {
    if cfg!(chacha20_backend = "soft") {
        return "soft (forced by --cfg chacha20_backend)";
    }
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if cfg!(chacha20_backend = "avx512")
            || cfg!(chacha20_backend = "avx2")
            || cfg!(chacha20_backend = "sse2")
        {
            return "forced by --cfg chacha20_backend";
        }
        if cfg!(chacha20_avx512)
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return if cfg!(chacha20_avx512) { "avx2" } else { "avx2 (avx512 not compiled in)" };
        }
        if std::arch::is_x86_feature_detected!("sse2") {
            return "sse2";
        }
    }
    if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        return "neon";
    }
    "soft"
}

/// The state of one upload stream's cipher and checksum, shared by the writer and the receiver.
pub struct StreamCipherState {
    cipher: ChaCha20,
    /// A second core on the same key and nonce, used only for the last keystream block.
    tail_block: ChaChaCore<R20, Ietf>,
    hasher: Hasher,
    /// Keystream bytes consumed so far, authentication header included.
    offset: u64,
}

impl StreamCipherState {
    /// The cipher at offset 0 of the pairing's keystream, with an empty checksum.
    pub fn new(secrets: &StreamSecrets) -> Self {
        let (key, nonce) = (secrets.key.expose().into(), secrets.nonce.expose().into());
        Self {
            cipher: ChaCha20::new(key, nonce),
            tail_block: ChaChaCore::new(key, nonce),
            hasher: Hasher::new(),
            offset: 0,
        }
    }

    /// Continues the keystream at `offset` (tests of the 256 GiB limit; nothing else needs it).
    #[doc(hidden)]
    pub fn at_offset(secrets: &StreamSecrets, offset: u64) -> Self {
        let mut state = Self::new(secrets);
        // Past LAST_BLOCK_AT the wrapper is never used again (see xor_at), and past the limit
        // nothing is: so a seek it refuses changes nothing.
        let _ = state.cipher.try_seek(offset.min(LAST_BLOCK_AT));
        state.offset = offset;
        state
    }

    /// Reserves `len` keystream bytes, failing before any of them is used if the stream would pass
    /// the 256 GiB limit. Returns the offset of the first reserved byte.
    fn reserve(&mut self, len: usize) -> Result<u64> {
        let requested = len as u64;
        match self.offset.checked_add(requested) {
            Some(end) if end <= KEYSTREAM_LIMIT => Ok(std::mem::replace(&mut self.offset, end)),
            _ => Err(Error::KeystreamExhausted { at: self.offset, requested }),
        }
    }

    /// XORs the keystream from `start` into `buf`, the last block included (the slow path of a
    /// 256 GiB stream's last 64 bytes; every other call is one `apply_keystream`).
    fn xor_at(&mut self, start: u64, buf: &mut [u8]) {
        let end = start + buf.len() as u64;
        if end <= LAST_BLOCK_AT {
            self.cipher.apply_keystream(buf);
            return;
        }
        let head = LAST_BLOCK_AT.saturating_sub(start) as usize;
        let (head, tail) = buf.split_at_mut(head.min(buf.len()));
        self.cipher.apply_keystream(head);
        let mut block = Block::<ChaChaCore<R20, Ietf>>::default();
        self.tail_block.set_block_pos(u32::MAX);
        self.tail_block.write_keystream_block(&mut block);
        let skip = (start.max(LAST_BLOCK_AT) - LAST_BLOCK_AT) as usize;
        for (b, k) in tail.iter_mut().zip(&block[skip..]) {
            *b ^= k;
        }
    }

    /// Applies the keystream to bytes that are not file content (the authentication header): no hash.
    pub fn apply_unhashed(&mut self, buf: &mut [u8]) -> Result<()> {
        let start = self.reserve(buf.len())?;
        self.xor_at(start, buf);
        Ok(())
    }

    /// Sender side: hashes file bytes, then encrypts them in place.
    pub fn seal_in_place(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut at = self.reserve(buf.len())?;
        for slice in buf.chunks_mut(FUSE_SLICE) {
            self.hasher.update(slice);
            self.xor_at(at, slice);
            at += slice.len() as u64;
        }
        Ok(())
    }

    /// Sender side for borrowed input: hashes `src` and writes its ciphertext to `dst` (same length),
    /// one copy, leaving the caller's buffer untouched.
    pub fn seal_into(&mut self, src: &[u8], dst: &mut [u8]) -> Result<()> {
        if src.len() != dst.len() {
            return Err(Error::InvalidArgument(format!(
                "seal_into needs equal lengths, got {} and {}",
                src.len(),
                dst.len()
            )));
        }
        let mut at = self.reserve(src.len())?;
        for (s, d) in src.chunks(FUSE_SLICE).zip(dst.chunks_mut(FUSE_SLICE)) {
            self.hasher.update(s);
            if at + (s.len() as u64) <= LAST_BLOCK_AT {
                // Lengths are equal by construction (checked above), so b2b cannot panic here.
                self.cipher.apply_keystream_b2b(s, d);
            } else {
                d.copy_from_slice(s);
                self.xor_at(at, d);
            }
            at += s.len() as u64;
        }
        Ok(())
    }

    /// Receiver side: decrypts file bytes in place, then hashes the plaintext.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut at = self.reserve(buf.len())?;
        for slice in buf.chunks_mut(FUSE_SLICE) {
            self.xor_at(at, slice);
            self.hasher.update(slice);
            at += slice.len() as u64;
        }
        Ok(())
    }

    /// Checksum of the file bytes so far.
    pub fn checksum(&self) -> Checksum {
        self.hasher.digest()
    }

    /// File bytes hashed so far (header excluded).
    pub fn content_len(&self) -> u64 {
        self.hasher.len()
    }

    /// Keystream bytes consumed so far (header included).
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::super::chacha20_ref as reference;
    use super::*;

    fn secrets() -> StreamSecrets {
        StreamSecrets::generate(16)
    }

    #[test]
    fn in_place_and_b2b_agree_and_decrypt_back() {
        let s = secrets();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut a = StreamCipherState::new(&s);
        let mut in_place = data.clone();
        a.seal_in_place(&mut in_place).unwrap();
        let mut b = StreamCipherState::new(&s);
        let mut out = vec![0u8; data.len()];
        b.seal_into(&data[..333], &mut out[..333]).unwrap();
        b.seal_into(&data[333..], &mut out[333..]).unwrap();
        assert_eq!(in_place, out);
        assert_eq!(a.checksum(), Checksum::of(&data));
        assert_eq!(b.checksum(), a.checksum());
        let mut r = StreamCipherState::new(&s);
        r.open_in_place(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(r.checksum(), a.checksum());
    }

    #[test]
    fn keystream_limit_is_exact_and_consumes_nothing_on_failure() {
        let s = secrets();
        let mut state = StreamCipherState::at_offset(&s, KEYSTREAM_LIMIT - 10);
        let mut eleven = [0u8; 11];
        let err = state.seal_in_place(&mut eleven).unwrap_err();
        assert!(matches!(err, Error::KeystreamExhausted { at, requested: 11 } if at == KEYSTREAM_LIMIT - 10));
        assert_eq!(eleven, [0u8; 11], "nothing was encrypted");
        assert_eq!(state.offset(), KEYSTREAM_LIMIT - 10);
        let mut ten = [0u8; 10];
        state.seal_in_place(&mut ten).unwrap();
        assert_eq!(state.offset(), KEYSTREAM_LIMIT);
        assert!(state.seal_in_place(&mut [0u8; 1]).is_err());
        state.seal_in_place(&mut []).unwrap();
    }

    #[test]
    fn keystream_at_offset_matches_a_continuous_stream() {
        let s = secrets();
        let mut whole = vec![0u8; 1000];
        StreamCipherState::new(&s).apply_unhashed(&mut whole).unwrap();
        let mut tail = vec![0u8; 300];
        StreamCipherState::at_offset(&s, 700).apply_unhashed(&mut tail).unwrap();
        assert_eq!(&whole[700..], &tail[..]);
    }

    #[test]
    fn seal_into_rejects_unequal_lengths() {
        let mut state = StreamCipherState::new(&secrets());
        assert!(matches!(state.seal_into(&[1, 2, 3], &mut [0u8; 2]), Err(Error::InvalidArgument(_))));
        assert_eq!(state.offset(), 0);
    }

    fn rfc_secrets() -> StreamSecrets {
        let (key, nonce) = reference::rfc_key_nonce();
        StreamSecrets { key: key.into(), nonce: nonce.into(), header: Vec::new().into() }
    }

    fn keystream_of(state: &mut StreamCipherState, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        state.apply_unhashed(&mut buf).unwrap();
        buf
    }

    /// The backend the crate picked on this CPU (AVX-512, AVX2 or SSE2) against the scalar reference,
    /// at offsets and lengths around its block groups (4, 8 or 16 blocks), FUSE_SLICE and seeks.
    #[test]
    fn keystream_matches_the_reference_at_offsets_lengths_and_seeks() {
        let s = secrets();
        let (key, nonce) = (s.key.expose(), s.nonce.expose());
        let offsets =
            [0u64, 1, 63, 64, 65, 255, 256, 1000, 1023, 1024, 4097, 16_383, 1 << 20, (1 << 36) + 17];
        let lengths =
            [0usize, 1, 31, 63, 64, 65, 127, 256, 511, 1024, 1025, 2047, 4096 + 3, FUSE_SLICE + 100];
        for &offset in &offsets {
            for &len in &lengths {
                let got = keystream_of(&mut StreamCipherState::at_offset(&s, offset), len);
                let mut want = vec![0u8; len];
                reference::keystream(key, nonce, offset, &mut want);
                assert!(got == want, "keystream at offset {offset}, {len} bytes");
            }
        }
        // One stream consumed in uneven pieces through every entry point: the wrapper's buffered
        // partial blocks and the backend's multi-block path take turns.
        let total = 200_000;
        let mut want = vec![0u8; total];
        reference::keystream(key, nonce, 0, &mut want);
        let mut state = StreamCipherState::new(&s);
        let (mut at, mut step) = (0usize, 1usize);
        while at < total {
            let n = step.min(total - at);
            let mut piece = vec![0u8; n];
            match step % 4 {
                0 => state.apply_unhashed(&mut piece).unwrap(),
                1 => state.seal_in_place(&mut piece).unwrap(),
                2 => state.seal_into(&vec![0u8; n], &mut piece).unwrap(),
                _ => state.open_in_place(&mut piece).unwrap(),
            }
            assert!(piece[..] == want[at..at + n], "piece at {at}, {n} bytes");
            at += n;
            step = (step * 7 + 13) % 9000;
        }
    }

    #[test]
    fn keystream_matches_rfc8439_and_the_last_block() {
        let s = rfc_secrets();
        let block1 = keystream_of(&mut StreamCipherState::at_offset(&s, 64), 64);
        assert_eq!(hex::encode(block1), reference::RFC8439_BLOCK);
        let (key, nonce) = reference::rfc_key_nonce();
        assert_eq!(hex::encode(reference::block(&key, &nonce, u32::MAX)), reference::LAST_BLOCK);
        // Into the last block from before it, from inside it, and in pieces through the fused paths.
        let mut want = reference::block(&key, &nonce, u32::MAX - 1)[54..].to_vec();
        want.extend_from_slice(&reference::block(&key, &nonce, u32::MAX));
        let mut state = StreamCipherState::at_offset(&s, LAST_BLOCK_AT - 10);
        assert_eq!(keystream_of(&mut state, 74), want);
        assert_eq!(state.offset(), KEYSTREAM_LIMIT);
        assert!(state.apply_unhashed(&mut [0u8; 1]).is_err());
        let tail = keystream_of(&mut StreamCipherState::at_offset(&s, LAST_BLOCK_AT + 5), 59);
        assert_eq!(tail, want[15..]);
        let mut state = StreamCipherState::at_offset(&s, LAST_BLOCK_AT - 10);
        let mut sealed = [0u8; 30];
        state.seal_in_place(&mut sealed[..3]).unwrap();
        state.seal_into(&[0u8; 20], &mut sealed[3..23]).unwrap();
        state.open_in_place(&mut sealed[23..]).unwrap();
        assert_eq!(sealed[..], want[..30]);
    }
}
