//! The encrypted upload stream (PROTOCOL.md §3-4): the writer a client runs ([`SocketClient`],
//! [`UploadStream`]) and its mirror, the receiver a backend runs ([`UploadReceiver`]).

mod cipher;
mod pairing;
mod receiver;
mod writer;

pub use cipher::StreamCipherState;
pub use pairing::{Pairing, SocketPairingResponse, StreamSecrets, KEY_LEN, NONCE_LEN};
pub use receiver::{CallbackSink, PartFile, ReceiveOptions, Received, UploadReceiver};
pub use writer::{SocketClient, UploadStream, UploadSummary};
