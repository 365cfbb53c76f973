//! The fused pass of the upload stream: xxh3-64 of the plaintext file bytes and ChaCha20 (IETF,
//! counter from 0, no MAC) over header + file, one continuous keystream, in one walk over each buffer.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;

use super::pairing::StreamSecrets;
use crate::checksum::{Checksum, Hasher};
use crate::error::{Error, Result, KEYSTREAM_LIMIT};

/// Hash and cipher in slices this small so a slice is still in L1/L2 when the second pass reaches it.
const FUSE_SLICE: usize = 16 * 1024;

/// The state of one upload stream's cipher and checksum, shared by the writer and the receiver.
pub struct StreamCipherState {
    cipher: ChaCha20,
    hasher: Hasher,
    /// Keystream bytes consumed so far, authentication header included.
    offset: u64,
}

impl StreamCipherState {
    /// The cipher at offset 0 of the pairing's keystream, with an empty checksum.
    pub fn new(secrets: &StreamSecrets) -> Self {
        let cipher = ChaCha20::new(secrets.key.expose().into(), secrets.nonce.expose().into());
        Self { cipher, hasher: Hasher::new(), offset: 0 }
    }

    /// Continues the keystream at `offset` (tests of the 256 GiB limit; nothing else needs it).
    #[doc(hidden)]
    pub fn at_offset(secrets: &StreamSecrets, offset: u64) -> Self {
        let mut state = Self::new(secrets);
        state.cipher.seek(offset);
        state.offset = offset;
        state
    }

    /// Reserves `len` keystream bytes, failing before any of them is used if the stream would pass
    /// the 256 GiB limit.
    fn reserve(&mut self, len: usize) -> Result<()> {
        let requested = len as u64;
        match self.offset.checked_add(requested) {
            Some(end) if end <= KEYSTREAM_LIMIT => {
                self.offset = end;
                Ok(())
            }
            _ => Err(Error::KeystreamExhausted { at: self.offset, requested }),
        }
    }

    /// Applies the keystream to bytes that are not file content (the authentication header): no hash.
    pub fn apply_unhashed(&mut self, buf: &mut [u8]) -> Result<()> {
        self.reserve(buf.len())?;
        self.cipher.apply_keystream(buf);
        Ok(())
    }

    /// Sender side: hashes file bytes, then encrypts them in place.
    pub fn seal_in_place(&mut self, buf: &mut [u8]) -> Result<()> {
        self.reserve(buf.len())?;
        for slice in buf.chunks_mut(FUSE_SLICE) {
            self.hasher.update(slice);
            self.cipher.apply_keystream(slice);
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
        self.reserve(src.len())?;
        for (s, d) in src.chunks(FUSE_SLICE).zip(dst.chunks_mut(FUSE_SLICE)) {
            self.hasher.update(s);
            // Lengths are equal by construction, so b2b cannot fail here.
            let _ = self.cipher.apply_keystream_b2b(s, d);
        }
        Ok(())
    }

    /// Receiver side: decrypts file bytes in place, then hashes the plaintext.
    pub fn open_in_place(&mut self, buf: &mut [u8]) -> Result<()> {
        self.reserve(buf.len())?;
        for slice in buf.chunks_mut(FUSE_SLICE) {
            self.cipher.apply_keystream(slice);
            self.hasher.update(slice);
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
}
