//! StreamCipherState on every keystream backend this CPU has (our AVX-512 and AVX2 kernels, the
//! `chacha20` crate's pick) against RFC 8439 and the scalar reference.

use super::super::chacha20_ref as reference;
use super::super::keystream::Keystream;
use super::*;

/// Keystream offset of the last block (counter 2^32 - 1).
const LAST_BLOCK_AT: u64 = KEYSTREAM_LIMIT - 64;

fn secrets() -> StreamSecrets {
    StreamSecrets::generate(16)
}

/// One state per backend, each at `offset` of the keystream of `s`.
fn states_at(s: &StreamSecrets, offset: u64) -> Vec<(&'static str, StreamCipherState)> {
    Keystream::every_backend(s.key.expose(), s.nonce.expose())
        .into_iter()
        .map(|(name, ks)| (name, StreamCipherState::with_keystream_at(ks, offset)))
        .collect()
}

#[test]
fn every_backend_this_cpu_has_is_tested() {
    let names: Vec<_> = states_at(&secrets(), 0).into_iter().map(|(name, _)| name).collect();
    assert!(names.contains(&"crate"));
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(names.contains(&"avx512"), std::arch::is_x86_feature_detected!("avx512f"));
        assert_eq!(names.contains(&"avx2"), std::arch::is_x86_feature_detected!("avx2"));
    }
}

#[test]
fn in_place_and_b2b_agree_and_decrypt_back() {
    let s = secrets();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let mut sealed_by = Vec::new();
    for ((name, mut a), ((_, mut b), (_, mut r))) in
        states_at(&s, 0).into_iter().zip(states_at(&s, 0).into_iter().zip(states_at(&s, 0)))
    {
        let mut in_place = data.clone();
        a.seal_in_place(&mut in_place).unwrap();
        let mut out = vec![0u8; data.len()];
        b.seal_into(&data[..333], &mut out[..333]).unwrap();
        b.seal_into(&data[333..], &mut out[333..]).unwrap();
        assert!(in_place == out, "{name}");
        assert_eq!(a.checksum(), Checksum::of(&data));
        assert_eq!(b.checksum(), a.checksum());
        sealed_by.push(out.clone());
        r.open_in_place(&mut out).unwrap();
        assert!(out == data, "{name}");
        assert_eq!(r.checksum(), a.checksum());
    }
    assert!(sealed_by.windows(2).all(|w| w[0] == w[1]), "backends agree");
}

#[test]
fn keystream_limit_is_exact_and_consumes_nothing_on_failure() {
    let s = secrets();
    for (name, mut state) in states_at(&s, KEYSTREAM_LIMIT - 10) {
        let mut eleven = [0u8; 11];
        let err = state.seal_in_place(&mut eleven).unwrap_err();
        assert!(
            matches!(err, Error::KeystreamExhausted { at, requested: 11 } if at == KEYSTREAM_LIMIT - 10),
            "{name}"
        );
        assert_eq!(eleven, [0u8; 11], "nothing was encrypted");
        assert_eq!(state.offset(), KEYSTREAM_LIMIT - 10);
        let mut ten = [0u8; 10];
        state.seal_in_place(&mut ten).unwrap();
        assert_eq!(state.offset(), KEYSTREAM_LIMIT);
        assert!(state.seal_in_place(&mut [0u8; 1]).is_err());
        state.seal_in_place(&mut []).unwrap();
    }
}

#[test]
fn keystream_at_offset_matches_a_continuous_stream() {
    let s = secrets();
    let mut whole = vec![0u8; 3000];
    StreamCipherState::new(&s).apply_unhashed(&mut whole).unwrap();
    for (name, mut state) in states_at(&s, 700) {
        let mut tail = vec![0u8; 2300];
        state.apply_unhashed(&mut tail).unwrap();
        assert!(whole[700..] == tail[..], "{name}");
    }
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

/// Every backend against the scalar reference, at offsets and lengths around block groups (4, 8, 16
/// blocks: the passes of the kernels and the crate's backends), FUSE_SLICE, seeks and the end of the
/// counter space.
#[test]
fn keystream_matches_the_reference_at_offsets_lengths_and_seeks() {
    let s = secrets();
    let (key, nonce) = (s.key.expose(), s.nonce.expose());
    let offsets = [
        0u64,
        1,
        63,
        64,
        65,
        255,
        256,
        511,
        513,
        1000,
        1023,
        1024,
        4097,
        16_383,
        1 << 20,
        (1 << 36) + 17,
        KEYSTREAM_LIMIT - 70_000,
        KEYSTREAM_LIMIT - 1024 - 3,
    ];
    let lengths = [
        0usize,
        1,
        31,
        63,
        64,
        65,
        127,
        256,
        511,
        512,
        513,
        1023,
        1024,
        1025,
        2047,
        4096 + 3,
        FUSE_SLICE + 100,
        3 * FUSE_SLICE + 1000,
    ];
    for &offset in &offsets {
        for &len in &lengths {
            let len = len.min((KEYSTREAM_LIMIT - offset) as usize);
            let mut want = vec![0u8; len];
            reference::keystream(key, nonce, offset, &mut want);
            for (name, mut state) in states_at(&s, offset) {
                let got = keystream_of(&mut state, len);
                assert!(got == want, "{name}: keystream at offset {offset}, {len} bytes");
            }
        }
    }
}

/// One stream in uneven pieces through every entry point, from the start and up to the very end of
/// the keystream: the kernels' cached partial passes and whole passes take turns.
#[test]
fn keystream_in_pieces_matches_the_reference_to_the_last_block() {
    let s = secrets();
    let (key, nonce) = (s.key.expose(), s.nonce.expose());
    let total = 200_000usize;
    for start in [0, 32, KEYSTREAM_LIMIT - total as u64] {
        let mut want = vec![0u8; total];
        reference::keystream(key, nonce, start, &mut want);
        for (name, mut state) in states_at(&s, start) {
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
                assert!(piece[..] == want[at..at + n], "{name}: piece at {start} + {at}, {n} bytes");
                at += n;
                step = (step * 7 + 13) % 9000;
            }
            assert_eq!(state.offset(), start + total as u64);
        }
    }
}

#[test]
fn keystream_matches_rfc8439_and_the_last_block() {
    let s = rfc_secrets();
    let (key, nonce) = reference::rfc_key_nonce();
    assert_eq!(hex::encode(reference::block(&key, &nonce, u32::MAX)), reference::LAST_BLOCK);
    // Into the last block from before it, from inside it, and in pieces through the fused paths.
    let mut want = reference::block(&key, &nonce, u32::MAX - 1)[54..].to_vec();
    want.extend_from_slice(&reference::block(&key, &nonce, u32::MAX));
    for ((name, mut at_block1), (_, mut before_last)) in
        states_at(&s, 64).into_iter().zip(states_at(&s, LAST_BLOCK_AT - 10))
    {
        assert_eq!(hex::encode(keystream_of(&mut at_block1, 64)), reference::RFC8439_BLOCK, "{name}");
        assert_eq!(keystream_of(&mut before_last, 74), want, "{name}");
        assert_eq!(before_last.offset(), KEYSTREAM_LIMIT);
        assert!(before_last.apply_unhashed(&mut [0u8; 1]).is_err());
    }
    for ((name, mut inside), (_, mut pieces)) in
        states_at(&s, LAST_BLOCK_AT + 5).into_iter().zip(states_at(&s, LAST_BLOCK_AT - 10))
    {
        assert_eq!(keystream_of(&mut inside, 59), want[15..], "{name}");
        let mut sealed = [0u8; 30];
        pieces.seal_in_place(&mut sealed[..3]).unwrap();
        pieces.seal_into(&[0u8; 20], &mut sealed[3..23]).unwrap();
        pieces.open_in_place(&mut sealed[23..]).unwrap();
        assert_eq!(sealed[..], want[..30], "{name}");
    }
}
