//! Messaging: framed, authenticated, encrypted messages over TCP and UDP, byte-compatible with
//! netaio 0.0.9 (its wire protocol is written down in `docs/netaio/WIRE.md`), so that libnorman and Python
//! services using netaio can be mixed.
//!
//! - [`wire`] - the frame (9-byte header, packify auth fields, body), [`MessageType`], [`Limits`].
//! - [`packify`] - the subset of packify netaio puts on the wire.
//! - [`layer`] - auth/cipher layers. Between libnorman peers use [`Aead`] (ChaCha20-Poly1305; the
//!   message type, uri and every auth field are authenticated; timestamp window and replay cache
//!   on). For netaio peers: [`NetaioHmac`] and [`NetaioStreamCipher`], exactly as netaio computes
//!   them (their weaknesses included: see `WIRE.md` §2).
//! - [`router`] - handler keys `(type, uri, peer)` → `(type, uri)` → `type`, one-shot handlers,
//!   default handler.
//! - [`tcp`] - [`Server`] (handlers, subscribe/notify, broadcast, bounded writer queues, limits)
//!   and [`Client`] (requests with deadlines, typed remote errors, reconnection).
//! - [`udp`] - [`Node`] (datagrams, multicast, netaio's peer management, IPv6).
//!
//! Beyond netaio: requests carry a request id auth field ([`REQUEST_ID_FIELD`]) that libnorman
//! responders echo, so concurrent requests on one connection never get each other's replies
//! (netaio peers ignore it and are matched by uri, as netaio does); an ERROR, AUTH_ERROR,
//! NOT_FOUND or NOT_PERMITTED reply completes a request at once with
//! [`crate::Error::Remote`]; a message whose inner (per-handler) check fails never reaches its
//! handler.
//!
//! ```no_run
//! use std::time::Duration;
//! use norman::msg::{Call, Client, ClientConfig, Layers, Message, MessageType, Server, ServerConfig};
//!
//! # async fn demo() -> norman::Result<()> {
//! let key = [7u8; 32]; // shared by both ends, e.g. read from a file
//! let server = Server::new(ServerConfig { layers: Layers::aead(&key), ..Default::default() });
//! server.on(MessageType::REQUEST_URI, Some(b"echo"), |m: Message, _call: Call| async move {
//!     Some(m.reply(MessageType::RESPOND_URI, m.content.clone()))
//! });
//! server.on(MessageType::SUBSCRIBE_URI, None, |m: Message, call: Call| async move {
//!     call.subscribe(&m.uri);
//!     Some(m.reply(MessageType::CONFIRM_SUBSCRIBE, bytes::Bytes::new()))
//! });
//! let addr = server.listen("127.0.0.1:0").await?;
//!
//! let client = Client::connect(&addr.to_string(), ClientConfig { layers: Layers::aead(&key), ..Default::default() }).await?;
//! let reply = client.request(MessageType::REQUEST_URI, b"echo", b"hello", Duration::from_secs(5)).await?;
//! assert_eq!(&reply.content[..], b"hello");
//! match client.get(b"missing", Duration::from_secs(5)).await {
//!     Err(norman::Error::Remote { reply }) => assert_eq!(reply.message_type, MessageType::NOT_FOUND),
//!     other => panic!("{other:?}"),
//! }
//! client.subscribe(b"news", Duration::from_secs(5)).await?;
//! server.notify(b"news", b"something happened").await?;
//! let note = client.recv().await; // NOTIFY_URI uri=news
//! # let _ = note;
//!
//! // With a netaio peer: its HMAC + stream cipher (cipher inside, as netaio orders them).
//! let _netaio = Layers::netaio(Some(b"secret"), Some(b"cipher key"));
//! server.shutdown().await;
//! # Ok(()) }
//! ```

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
