//! The fused pass of the upload stream: xxh3-64 of the plaintext file bytes and ChaCha20 (IETF,
//! counter from 0, no MAC) over header + file, one continuous keystream, in one walk over each buffer.
//!
//! The keystream comes from our AVX-512 or AVX2 kernel where the CPU has one (chacha_simd.rs), else
//! from the `chacha20` crate, which picks its own backend at run time (keystream.rs).

use super::keystream::Keystream;
use super::pairing::StreamSecrets;
use crate::checksum::{Checksum, Hasher};
use crate::error::{Error, Result, KEYSTREAM_LIMIT};

/// Hash and cipher in slices this small so a slice is still in L1/L2 when the second pass reaches it.
const FUSE_SLICE: usize = 16 * 1024;

/// The ChaCha20 backend StreamCipherState runs on this CPU: what `norman bench` reports. Our own
/// kernels first (AVX-512F, AVX2 on x86_64), else the `chacha20` crate's backend (`crate_backend`).
pub fn chacha20_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    match super::chacha_simd::detect() {
        Some(super::chacha_simd::Level::Avx512) => return "avx512 (libnorman kernel, 16 blocks)",
        Some(super::chacha_simd::Level::Avx2) => return "avx2 (libnorman kernel, 8 blocks)",
        None => {}
    }
    chacha20_crate_backend()
}

/// The ChaCha20 backend the `chacha20` crate runs on this CPU (where ours are not used, and for
/// comparison in `norman bench`). It mirrors the crate's own choice (AVX-512 needs AVX-512F and VL and the `chacha20_avx512` cfg
/// compiled in; then AVX2, SSE2; NEON on aarch64) and its `chacha20_backend` override.
pub fn chacha20_crate_backend() -> &'static str {
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
    keystream: Keystream,
    hasher: Hasher,
    /// Keystream bytes consumed so far, authentication header included.
    offset: u64,
}

impl StreamCipherState {
    /// The cipher at offset 0 of the pairing's keystream, with an empty checksum.
    pub fn new(secrets: &StreamSecrets) -> Self {
        Self::at_offset(secrets, 0)
    }

    /// Continues the keystream at `offset` (tests of the 256 GiB limit; nothing else needs it).
    #[doc(hidden)]
    pub fn at_offset(secrets: &StreamSecrets, offset: u64) -> Self {
        Self::with_keystream_at(Keystream::new(secrets.key.expose(), secrets.nonce.expose()), offset)
    }

    fn with_keystream_at(mut keystream: Keystream, offset: u64) -> Self {
        // Past the limit nothing is ever produced, so clamping the seek changes nothing.
        keystream.seek(offset.min(KEYSTREAM_LIMIT));
        Self { keystream, hasher: Hasher::new(), offset }
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

    /// Applies the keystream to bytes that are not file content (the authentication header): no hash.
    pub fn apply_unhashed(&mut self, buf: &mut [u8]) -> Result<()> {
        let start = self.reserve(buf.len())?;
        self.keystream.xor_at(start, buf);
        Ok(())
    }

    /// Sender side: hashes file bytes, then encrypts them in place.
    pub fn seal_in_place(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut at = self.reserve(buf.len())?;
        for slice in buf.chunks_mut(FUSE_SLICE) {
            self.hasher.update(slice);
            self.keystream.xor_at(at, slice);
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
            self.keystream.xor_b2b(at, s, d);
            at += s.len() as u64;
        }
        Ok(())
    }

    /// Receiver side: decrypts file bytes in place, then hashes the plaintext.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut at = self.reserve(buf.len())?;
        for slice in buf.chunks_mut(FUSE_SLICE) {
            self.keystream.xor_at(at, slice);
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
#[path = "cipher_tests.rs"]
mod tests;
