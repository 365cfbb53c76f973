//! libnorman: the Norman Core SDK as a native library.
//!
//! The core is plain async Rust on tokio; the C ABI (`norman.h`) wraps it for C, C++, Go and Node.
//! Wire behaviour follows `PROTOCOL.md` (shipped in `docs/`).

//!
//! Everything below runs offline; requests need a server (`norman serve` is one) and a tokio runtime.
//!
//! ```
//! use norman::http::HttpClient;
//! use norman::objects::Model;
//! use norman::{AppConfig, Checksum, Hasher};
//!
//! // Configuration from values (or `AppConfig::from_env()` for the NORMAN_* variables).
//! let config = AppConfig { base_url: "http://127.0.0.1:8080/v0".into(), ..AppConfig::default() };
//! config.validate()?;
//!
//! // xxh3-64, one-shot or streamed in any chunking: the checksum uploads complete with.
//! let mut hasher = Hasher::new();
//! hasher.update(b"hello ");
//! hasher.update(b"world");
//! assert_eq!(hasher.digest(), Checksum::of(b"hello world"));
//! assert_eq!(Checksum::of(b"").to_hex(), "2d06800538d394c2");
//!
//! // Wire objects are plain serde types.
//! let model = Model::new("account-1", "my-model", "v1").with_asset("File");
//! let json = serde_json::to_value(&model).expect("a model serializes");
//! assert_eq!(json["name"], "my-model");
//! assert_eq!(json["assets"][0]["asset_name"], "File");
//!
//! // One client; each service (`http.persist()`, `http.file_push()`, ...) is a view over it.
//! let http = HttpClient::new(&config)?.with_token("token");
//! assert!(http.has_token());
//! assert_eq!(http.url("persist/models/get")?.as_str(), "http://127.0.0.1:8080/v0/persist/models/get");
//! # Ok::<(), norman::Error>(())
//! ```
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
