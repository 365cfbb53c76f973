//! A plain scalar ChaCha20 (RFC 8439 section 2.3, IETF: 32-bit block counter, 96-bit nonce), written
//! from the RFC for tests only: the reference the SIMD backends of the `chacha20` crate are compared
//! against, at any keystream offset. Shared with tools/cipher-backends (included by path).

/// The keystream block at `counter`.
pub fn block(key: &[u8; 32], nonce: &[u8; 12], counter: u32) -> [u8; 64] {
    let word = |b: &[u8], i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for i in 0..8 {
        init[4 + i] = word(key, i);
    }
    init[12] = counter;
    for i in 0..3 {
        init[13 + i] = word(nonce, i);
    }
    let mut s = init;
    for _ in 0..10 {
        for (a, b, c, d) in [(0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)] {
            quarter_round(&mut s, a, b, c, d);
        }
        for (a, b, c, d) in [(0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)] {
            quarter_round(&mut s, a, b, c, d);
        }
    }
    let mut out = [0u8; 64];
    for i in 0..16 {
        out[4 * i..4 * i + 4].copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
    }
    out
}

fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// The keystream bytes from byte `offset` on, written into `out` (offset + len within 2^32 blocks).
pub fn keystream(key: &[u8; 32], nonce: &[u8; 12], offset: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut done = 0;
    while done < out.len() {
        let counter = u32::try_from(pos / 64).expect("offset within the 2^32-block keystream");
        let skip = (pos % 64) as usize;
        let ks = block(key, nonce, counter);
        let n = (64 - skip).min(out.len() - done);
        out[done..done + n].copy_from_slice(&ks[skip..skip + n]);
        done += n;
        pos += n as u64;
    }
}

/// RFC 8439 section 2.3.2: key 00..1f, nonce 000000090000004a00000000, counter 1.
pub const RFC8439_BLOCK: &str = "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e\
                                 d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e";
/// The same key and nonce at the last counter, 2^32 - 1 (OpenSSL's ChaCha20, through Python's
/// `cryptography`): the block `cipher` 0.5's wrapper refuses and StreamCipherState makes itself.
pub const LAST_BLOCK: &str = "ff2941b8d740f6cbb50936bf997ebd5218cb108dc53f41c64841d0218167430c\
                              a03b770ca74ccb642a28194d1dedd2ed13151e25ec5d7faeb6d060bfb7e6b146";

/// The key and nonce of both RFC vectors.
pub fn rfc_key_nonce() -> ([u8; 32], [u8; 12]) {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = i as u8;
    }
    (key, [0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0])
}
