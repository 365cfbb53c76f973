//! The `chacha20` crate chooses its backend at run time and offers no way to call another one; only a
//! build with `--cfg chacha20_backend="soft"|"sse2"|"avx2"|"avx512"` pins one. That cfg applies to a
//! whole build, so each backend gets this small crate's own build (scripts/test-cipher-backends.sh),
//! not the library's, and its keystream is checked here against RFC 8439 and the scalar reference the
//! library's tests use, with the calls StreamCipherState makes (buffered pieces, seeks, the last block).

#[cfg(test)]
#[path = "../../src/socket/chacha20_ref.rs"]
mod reference;

#[cfg(test)]
mod tests {
    use super::reference;
    use chacha20::cipher::{Block, KeyIvInit, StreamCipher, StreamCipherCore, StreamCipherSeek};
    use chacha20::variants::Ietf;
    use chacha20::{ChaCha20, ChaChaCore, R20};

    fn hex(bytes: &[u8]) -> String {
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
