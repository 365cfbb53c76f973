//! The encrypted upload stream (PROTOCOL.md §3-4): the writer a client runs ([`SocketClient`],
//! [`UploadStream`]). Its mirror, the receiver a backend runs, lives in the `norman` program
//! (`norman serve`, `norman receive`); both share [`StreamCipherState`].

#[cfg(test)]
mod chacha20_ref;
#[cfg(target_arch = "x86_64")]
mod chacha_simd;
mod cipher;
mod keystream;
mod pairing;
mod parallel;
mod writer;

pub use cipher::{chacha20_backend, chacha20_crate_backend, StreamCipherState};
pub use pairing::{Pairing, SocketPairingResponse, StreamSecrets, KEY_LEN, MIN_HEADER_LEN, NONCE_LEN};
pub use parallel::{
    available_threads, ParallelKeystream, MAX_CIPHER_THREADS, MIN_PARALLEL_JOB, PARALLEL_SEGMENT,
};
pub use writer::{SocketClient, UploadStream, UploadSummary};
