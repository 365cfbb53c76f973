//! Messaging: framed, authenticated, encrypted messages over TCP and UDP, byte-compatible with
//! netaio 0.0.9 (see `docs/netaio/WIRE.md`).

pub mod layer;
pub mod packify;
pub mod router;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use layer::{Aead, Layer, Layers, NetaioHmac, NetaioStreamCipher};
pub use router::{handler, Handler, Key};
pub use tcp::{Backoff, Call, Client, ClientConfig, Server, ServerConfig, ServerStats, SlowConsumer};
pub use udp::{Datagram, GoneReason, MulticastConfig, Node, NodeConfig, NodeEvent, Peer, PeerConfig};
pub use wire::{AuthFields, Header, Limits, Message, MessageType};

/// The auth field in which libnorman requesters put a request id (8 bytes, big-endian) and
/// libnorman responders echo it; netaio peers ignore it.
pub const REQUEST_ID_FIELD: &str = "norman_rid";
