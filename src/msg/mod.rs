//! Messaging: framed, authenticated, encrypted messages over TCP and UDP, byte-compatible with
//! netaio 0.0.9 (see `docs/netaio/WIRE.md`).

pub mod layer;
pub mod packify;
pub mod wire;

pub use layer::{Aead, Layer, Layers, NetaioHmac, NetaioStreamCipher};
pub use wire::{AuthFields, Header, Limits, Message, MessageType};
