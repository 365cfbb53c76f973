//! The Norman checksum: xxh3-64 with seed 0, written as 16 lowercase hex digits (big-endian), exactly
//! what Python's `xxhash.xxh3_64(data).hexdigest()` prints.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use xxhash_rust::xxh3::Xxh3;

use crate::error::{Error, Result};

/// An xxh3-64 digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum(pub u64);

impl Checksum {
    /// One-shot digest of a buffer.
    pub fn of(data: &[u8]) -> Self {
        Checksum(xxhash_rust::xxh3::xxh3_64(data))
    }

    /// The 16 lowercase hex digits sent to `file-push/socket/complete`.
    pub fn to_hex(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Checksum {
    type Err = Error;

    /// Accepts exactly 16 hex digits, either case.
    fn from_str(s: &str) -> Result<Self> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidArgument(format!("a checksum is 16 hex digits, got {s:?}")));
        }
        u64::from_str_radix(s, 16)
            .map(Checksum)
            .map_err(|e| Error::InvalidArgument(format!("bad checksum {s:?}: {e}")))
    }
}

/// Streaming xxh3-64: feed any chunking, get the same digest as one-shot.
#[derive(Clone, Default)]
pub struct Hasher {
    state: Xxh3,
    len: u64,
}

impl Hasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) {
        self.state.update(data);
        self.len += data.len() as u64;
    }

    /// Digest of everything fed so far; the hasher can keep going.
    pub fn digest(&self) -> Checksum {
        Checksum(self.state.digest())
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Digest of everything `reader` yields, with a reused buffer (memory flat whatever the size).
pub fn checksum_reader(mut reader: impl Read) -> std::io::Result<(Checksum, u64)> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok((hasher.digest(), hasher.len())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Digest of a file's content.
pub fn checksum_file(path: &Path) -> std::io::Result<(Checksum, u64)> {
    checksum_reader(std::fs::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_from_the_protocol() {
        assert_eq!(Checksum::of(b"").to_hex(), "2d06800538d394c2");
        assert_eq!(Checksum::of(b"abc").to_hex(), "78af5f94892f3950");
    }

    #[test]
    fn streaming_equals_one_shot_for_any_split() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for split in [0, 1, 15, 16, 17, 128, 239, 240, 241, 1024, 4999, 5000] {
            let mut h = Hasher::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.digest(), Checksum::of(&data), "split at {split}");
            assert_eq!(h.len(), 5000);
        }
    }

    #[test]
    fn parse_round_trips_and_rejects_garbage() {
        let c: Checksum = "78AF5F94892F3950".parse().unwrap();
        assert_eq!(c.to_hex(), "78af5f94892f3950");
        for bad in ["", "78af5f94892f395", "78af5f94892f39500", "78af5f94892f395g", "+8af5f94892f3950"] {
            assert!(bad.parse::<Checksum>().is_err(), "{bad:?}");
        }
    }
}
