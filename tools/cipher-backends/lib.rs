//! The `chacha20` crate chooses its backend at run time and offers no way to call another one; only a
//! build with `--cfg chacha20_backend="soft"|"sse2"|"avx2"|"avx512"` pins one. That cfg applies to a
//! whole build, so each backend gets this small crate's own build (scripts/test-cipher-backends.sh),
//! not the library's, and its keystream is checked here against RFC 8439 and the scalar reference the
//! library's tests use, with the calls StreamCipherState makes (buffered pieces, seeks, the last block).

#[cfg(test)]
#[path = "../../src/socket/chacha20_ref.rs"]
mod reference;

// The library's own kernels, checked here on their own (fast to build, whatever cfg this build has);
// the library's cipher tests check them again through StreamCipherState.
#[cfg(all(test, target_arch = "x86_64"))]
#[path = "../../src/socket/chacha_simd.rs"]
#[allow(dead_code)] // detect(): the library picks; these tests take every level the CPU has
mod chacha_simd;

#[cfg(all(test, target_arch = "x86_64"))]
mod own_kernels {
    use super::chacha_simd::Level;
    use super::reference;

    fn state(key: &[u8; 32], nonce: &[u8; 12]) -> [u32; 16] {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut s = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for i in 0..8 {
            s[4 + i] = word(&key[4 * i..]);
        }
        for i in 0..3 {
            s[13 + i] = word(&nonce[4 * i..]);
        }
        s
    }

    /// Each kernel the CPU has, in place and buffer to buffer, from block counters across the range
    /// up to the last pass that ends exactly at counter 2^32 - 1, against the scalar reference.
    #[test]
    fn kernels_match_the_reference() {
        let (key, nonce) = reference::rfc_key_nonce();
        let st = state(&key, &nonce);
        let mut tested = 0;
        for level in [Level::Avx512, Level::Avx2] {
            if !level.available() {
                continue;
            }
            tested += 1;
            let pass = level.pass_bytes();
            let last_pass = u32::MAX - (pass / 64) as u32 + 1;
            for counter in [0u32, 1, 7, 15, 16, 1000, 1 << 31, last_pass - 3 * (pass / 64) as u32, last_pass]
            {
                let passes = if counter >= last_pass - 3 * (pass / 64) as u32 {
                    ((u32::MAX - counter) as usize + 1) * 64 / pass
                } else {
                    3
                };
                let len = passes * pass;
                let mut want = vec![0u8; len];
                reference::keystream(&key, &nonce, counter as u64 * 64, &mut want);
                let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                let mut in_place = data.clone();
                let mut out = vec![0u8; len];
                // SAFETY: the level is available; the buffers hold `passes` passes.
                unsafe {
                    level.xor_passes(&st, counter, in_place.as_ptr(), in_place.as_mut_ptr(), passes);
                    level.xor_passes(&st, counter, data.as_ptr(), out.as_mut_ptr(), passes);
                }
                let got: Vec<u8> = in_place.iter().zip(&data).map(|(c, d)| c ^ d).collect();
                assert!(got == want, "{level:?} from counter {counter}");
                assert_eq!(out, in_place, "{level:?} buffer to buffer, counter {counter}");
            }
            // The RFC 8439 block (counter 1) and the last block (2^32 - 1), inside a pass.
            let mut pass_buf = vec![0u8; pass];
            unsafe { level.xor_passes(&st, 1, pass_buf.as_ptr(), pass_buf.as_mut_ptr(), 1) };
            assert_eq!(super::tests::hex(&pass_buf[..64]), reference::RFC8439_BLOCK, "{level:?}");
            let mut pass_buf = vec![0u8; pass];
            unsafe { level.xor_passes(&st, last_pass, pass_buf.as_ptr(), pass_buf.as_mut_ptr(), 1) };
            assert_eq!(super::tests::hex(&pass_buf[pass - 64..]), reference::LAST_BLOCK, "{level:?}");
        }
        let has = |f| std::fs::read_to_string("/proc/cpuinfo").map(|c| c.split_whitespace().any(|w| w == f));
        assert_eq!(tested, [has("avx512f"), has("avx2")].iter().filter(|h| matches!(h, Ok(true))).count());
    }
}

#[cfg(test)]
mod tests {
    use super::reference;
    use chacha20::cipher::{Block, KeyIvInit, StreamCipher, StreamCipherCore, StreamCipherSeek};
    use chacha20::variants::Ietf;
    use chacha20::{ChaCha20, ChaChaCore, R20};

    pub(super) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Key and nonce that are not the RFC's (every byte differs, so a swapped word shows).
    fn other_key_nonce() -> ([u8; 32], [u8; 12]) {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        (key, [0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07, 0x18, 0x29, 0x3a, 0x4b, 0x5c])
    }

    #[test]
    fn rfc8439_block_and_the_last_block() {
        let (key, nonce) = reference::rfc_key_nonce();
        let mut cipher = ChaCha20::new(&key.into(), &nonce.into());
        cipher.seek(64u64);
        let mut block = [0u8; 64];
        cipher.apply_keystream(&mut block);
        assert_eq!(hex(&block), reference::RFC8439_BLOCK);
        // The core's single-block path at counter 2^32 - 1, as StreamCipherState makes the last block.
        let mut core = ChaChaCore::<R20, Ietf>::new(&key.into(), &nonce.into());
        core.set_block_pos(u32::MAX);
        let mut last = Block::<ChaChaCore<R20, Ietf>>::default();
        core.write_keystream_block(&mut last);
        assert_eq!(hex(&last), reference::LAST_BLOCK);
    }

    #[test]
    fn keystream_matches_the_reference_at_offsets_lengths_and_seeks() {
        let (key, nonce) = other_key_nonce();
        let offsets =
            [0u64, 1, 63, 64, 65, 255, 256, 1000, 1023, 1024, 4097, 16_383, 1 << 20, (1 << 36) + 17];
        let lengths = [0usize, 1, 31, 63, 64, 65, 127, 256, 511, 1024, 1025, 2047, 4099, 16_484];
        for &offset in &offsets {
            for &len in &lengths {
                let mut cipher = ChaCha20::new(&key.into(), &nonce.into());
                cipher.seek(offset);
                let mut got = vec![0u8; len];
                cipher.apply_keystream(&mut got);
                let mut want = vec![0u8; len];
                reference::keystream(&key, &nonce, offset, &mut want);
                assert!(got == want, "offset {offset}, {len} bytes");
            }
        }
        // One stream in uneven pieces, in place and buffer to buffer.
        let total = 300_000;
        let mut want = vec![0u8; total];
        reference::keystream(&key, &nonce, 0, &mut want);
        let mut cipher = ChaCha20::new(&key.into(), &nonce.into());
        let (mut at, mut step) = (0usize, 1usize);
        while at < total {
            let n = step.min(total - at);
            let mut piece = vec![0u8; n];
            if step % 2 == 0 {
                cipher.apply_keystream(&mut piece);
            } else {
                cipher.apply_keystream_b2b(&vec![0u8; n], &mut piece);
            }
            assert!(piece[..] == want[at..at + n], "piece at {at}, {n} bytes");
            at += n;
            step = (step * 7 + 13) % 9000;
        }
    }
}
