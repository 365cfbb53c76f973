//! libnorman: the Norman Core SDK as a native library.
//!
//! The core is plain async Rust on tokio; the C ABI (`norman.h`) wraps it for C, C++, Go and Node.
//! Wire behaviour follows `PROTOCOL.md` (shipped in `docs/`).

#![warn(missing_docs)]

pub mod bson_frame;
pub mod checksum;
pub mod config;
pub mod error;
pub mod ffi;
pub mod http;
pub mod msg;
pub mod objects;
pub mod sensitive;
pub mod services;
pub mod socket;
pub mod streaming;
pub mod transfer;

pub use checksum::{Checksum, Hasher};
pub use config::AppConfig;
pub use error::{Error, ErrorKind, Result};
pub use sensitive::Sensitive;
