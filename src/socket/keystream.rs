//! The ChaCha20 keystream of one upload stream, XORed in at explicit offsets: our SIMD kernels
//! (chacha_simd.rs) where the CPU has AVX-512F or AVX2, the `chacha20` crate elsewhere. Both give
//! the whole 2^32-block keystream, the last block (counter 2^32 - 1) included; callers never pass
//! the end of it (StreamCipherState::reserve).

use chacha20::cipher::{Block, KeyIvInit, StreamCipher, StreamCipherCore, StreamCipherSeek};
use chacha20::variants::Ietf;
use chacha20::{ChaCha20, ChaChaCore, R20};
#[cfg(target_arch = "x86_64")]
use zeroize::Zeroize;

#[cfg(target_arch = "x86_64")]
use super::chacha_simd::Level;
use crate::error::KEYSTREAM_LIMIT;

/// Keystream offset of the last block (counter 2^32 - 1). `cipher` 0.5's buffering wrapper refuses to
/// produce that block (its limit is one block short of the counter space), while the stream may use
/// it: the crate path makes it with a second core, so the limit stays exactly 256 GiB.
const LAST_BLOCK_AT: u64 = KEYSTREAM_LIMIT - 64;

pub(super) enum Keystream {
    #[cfg(target_arch = "x86_64")]
    Simd(Box<SimdStream>),
    Crate {
        /// Its position is always the next offset asked for (calls are sequential after a seek).
        cipher: ChaCha20,
        /// A second core on the same key and nonce, used only for the last keystream block.
        tail_block: ChaChaCore<R20, Ietf>,
    },
}

/// The kernel's input state and one pass of keystream kept for the next call, so that calls of any
/// size and alignment (a 32-byte header, then slices) compute each block once.
#[cfg(target_arch = "x86_64")]
pub(super) struct SimdStream {
    level: Level,
    /// RFC 8439 state: constants, key, (counter, unused here), nonce.
    state: [u32; 16],
    cache: [u8; 1024],
    /// Keystream offset of `cache[0]` and the valid length (0: empty).
    cache_at: u64,
    cache_len: usize,
}

#[cfg(target_arch = "x86_64")]
impl Drop for SimdStream {
    fn drop(&mut self) {
        self.state.zeroize();
        self.cache.zeroize();
    }
}

impl Keystream {
    /// The keystream of `key` and `nonce`, on the fastest kernel this CPU has.
    pub(super) fn new(key: &[u8; 32], nonce: &[u8; 12]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(level) = super::chacha_simd::detect() {
            return Self::with_level(key, nonce, level);
        }
        Self::with_crate(key, nonce)
    }

    /// The `chacha20` crate's backend (its own run-time choice).
    pub(super) fn with_crate(key: &[u8; 32], nonce: &[u8; 12]) -> Self {
        Keystream::Crate {
            cipher: ChaCha20::new(key.into(), nonce.into()),
            tail_block: ChaChaCore::new(key.into(), nonce.into()),
        }
    }

    /// A given kernel; the caller checked `level.available()`.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn with_level(key: &[u8; 32], nonce: &[u8; 12], level: Level) -> Self {
        let mut state = [0u32; 16];
        state[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        for (word, bytes) in state[4..12].iter_mut().zip(key.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for (word, bytes) in state[13..].iter_mut().zip(nonce.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        Keystream::Simd(Box::new(SimdStream { level, state, cache: [0; 1024], cache_at: 0, cache_len: 0 }))
    }

    /// Moves to `offset` (at most KEYSTREAM_LIMIT) for the next call.
    pub(super) fn seek(&mut self, offset: u64) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Keystream::Simd(_) => {} // positions are explicit
            // Past LAST_BLOCK_AT the wrapper is never used again (see xor_at), so clamping is exact.
            Keystream::Crate { cipher, .. } => {
                let _ = cipher.try_seek(offset.min(LAST_BLOCK_AT));
            }
        }
    }

    /// XORs the keystream from offset `start` into `buf`; `start` is where the previous call (or
    /// seek) ended, and `start + buf.len() <= KEYSTREAM_LIMIT`.
    pub(super) fn xor_at(&mut self, start: u64, buf: &mut [u8]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Keystream::Simd(simd) => {
                let ptr = buf.as_mut_ptr();
                // SAFETY: src and dst are the same valid buffer of buf.len() bytes (in place).
                unsafe { simd.xor(start, ptr, ptr, buf.len()) }
            }
            Keystream::Crate { cipher, tail_block } => crate_xor_at(cipher, tail_block, start, buf),
        }
    }

    /// As `xor_at`, reading `src` and writing `dst` (equal lengths, checked by the caller).
    pub(super) fn xor_b2b(&mut self, start: u64, src: &[u8], dst: &mut [u8]) {
        debug_assert_eq!(src.len(), dst.len());
        let len = src.len().min(dst.len());
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: both buffers are valid for len bytes, and one is shared, the other exclusive,
            // so they do not overlap.
            Keystream::Simd(simd) => unsafe { simd.xor(start, src.as_ptr(), dst.as_mut_ptr(), len) },
            Keystream::Crate { cipher, tail_block } => {
                if start + (len as u64) <= LAST_BLOCK_AT {
                    // Equal lengths, so b2b cannot panic.
                    cipher.apply_keystream_b2b(&src[..len], &mut dst[..len]);
                } else {
                    dst[..len].copy_from_slice(&src[..len]);
                    crate_xor_at(cipher, tail_block, start, &mut dst[..len]);
                }
            }
        }
    }
}

/// The crate's path: one `apply_keystream`, but the last block from the second core.
fn crate_xor_at(cipher: &mut ChaCha20, tail_block: &mut ChaChaCore<R20, Ietf>, start: u64, buf: &mut [u8]) {
    let end = start + buf.len() as u64;
    if end <= LAST_BLOCK_AT {
        cipher.apply_keystream(buf);
        return;
    }
    let head = LAST_BLOCK_AT.saturating_sub(start) as usize;
    let (head, tail) = buf.split_at_mut(head.min(buf.len()));
    cipher.apply_keystream(head);
    let mut block = Block::<ChaChaCore<R20, Ietf>>::default();
    tail_block.set_block_pos(u32::MAX);
    tail_block.write_keystream_block(&mut block);
    let skip = (start.max(LAST_BLOCK_AT) - LAST_BLOCK_AT) as usize;
    for (b, k) in tail.iter_mut().zip(&block[skip..]) {
        *b ^= k;
    }
}

#[cfg(target_arch = "x86_64")]
impl SimdStream {
    /// Whole passes straight from the kernel when aligned; anything else through the cache.
    ///
    /// # Safety
    /// `src` and `dst` are valid for `len` bytes and equal or not overlapping.
    unsafe fn xor(&mut self, start: u64, src: *const u8, dst: *mut u8, len: usize) {
        let pass = self.level.pass_bytes();
        let mut done = 0;
        while done < len {
            let pos = start + done as u64;
            let cached = self.cache_at..self.cache_at + self.cache_len as u64;
            if cached.contains(&pos) {
                let skip = (pos - self.cache_at) as usize;
                let n = (self.cache_len - skip).min(len - done);
                xor_from(&self.cache[skip..skip + n], src.add(done), dst.add(done));
                done += n;
            } else if pos.is_multiple_of(64) && len - done >= pass {
                let passes = (len - done) / pass;
                // Blocks below 2^32 (pos + passes * pass <= KEYSTREAM_LIMIT), so the cast is exact.
                self.level.xor_passes(&self.state, (pos / 64) as u32, src.add(done), dst.add(done), passes);
                done += passes * pass;
            } else {
                self.fill_cache(pos / 64);
            }
        }
    }

    /// One pass of keystream from `block` on into the cache. Blocks past 2^32 - 1 wrap to 0 in the
    /// kernel, but lie beyond KEYSTREAM_LIMIT, so nothing reads them.
    fn fill_cache(&mut self, block: u64) {
        let pass = self.level.pass_bytes();
        self.cache[..pass].fill(0);
        let ptr = self.cache.as_mut_ptr();
        // SAFETY: the level was checked at construction; the cache holds at least one pass.
        unsafe { self.level.xor_passes(&self.state, block as u32, ptr, ptr, 1) };
        self.cache_at = block * 64;
        self.cache_len = pass;
    }
}

/// `dst[i] = src[i] ^ ks[i]` for `ks.len()` bytes, 32 at a time (up to a pass of cached keystream
/// after every unaligned call, so not byte by byte).
///
/// # Safety
/// `src` and `dst` are valid for `ks.len()` bytes and equal or not overlapping.
#[cfg(target_arch = "x86_64")]
unsafe fn xor_from(ks: &[u8], src: *const u8, dst: *mut u8) {
    let mut at = 0;
    for k in ks.chunks_exact(32) {
        let mut word = std::ptr::read_unaligned(src.add(at).cast::<[u8; 32]>());
        for (w, k) in word.iter_mut().zip(k) {
            *w ^= k;
        }
        std::ptr::write_unaligned(dst.add(at).cast::<[u8; 32]>(), word);
        at += 32;
    }
    for (i, k) in ks[at..].iter().enumerate() {
        *dst.add(at + i) = *src.add(at + i) ^ k;
    }
}

#[cfg(test)]
impl Keystream {
    /// The crate's backend and each of our kernels this CPU has, named.
    pub(super) fn every_backend(key: &[u8; 32], nonce: &[u8; 12]) -> Vec<(&'static str, Keystream)> {
        #[allow(unused_mut)]
        let mut all = vec![("crate", Self::with_crate(key, nonce))];
        #[cfg(target_arch = "x86_64")]
        for (name, level) in [("avx512", Level::Avx512), ("avx2", Level::Avx2)] {
            if level.available() {
                all.push((name, Self::with_level(key, nonce, level)));
            }
        }
        all
    }
}
