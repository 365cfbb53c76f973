//! SocketPairingResponse: what `file-push/socket/pair/*` returns, and its validated, decoded form.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sensitive::Sensitive;

/// ChaCha20 key length in bytes.
pub const KEY_LEN: usize = 32;
/// ChaCha20 nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Shortest authentication header a client uploads behind (PROTOCOL.md §4: our backend issues at
/// least 16 bytes; an empty or short one authenticates nothing).
pub const MIN_HEADER_LEN: usize = 16;

/// The six fields of PROTOCOL.md §3, as they travel in JSON. `encryption_key`, `nonce` and
/// `authentication_header` are standard base64 with padding. `Debug` redacts the three secrets.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SocketPairingResponse {
    /// Id of the pairing (named again when the upload completes).
    pub pairing_id: String,
    /// Host of the upload socket.
    pub host: String,
    /// Kept wide so that an out-of-range port is a validation error naming the field, not a JSON error.
    pub port: i64,
    /// ChaCha20 key (base64).
    pub encryption_key: String,
    /// ChaCha20 nonce (base64).
    pub nonce: String,
    /// Bytes the plaintext stream starts with, before the file (base64).
    pub authentication_header: String,
}

impl std::fmt::Debug for SocketPairingResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketPairingResponse")
            .field("pairing_id", &self.pairing_id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("encryption_key", &crate::sensitive::REDACTED)
            .field("nonce", &crate::sensitive::REDACTED)
            .field("authentication_header", &crate::sensitive::REDACTED)
            .finish()
    }
}

/// A pairing whose fields were checked and decoded: ready to open (or accept) an upload stream.
#[derive(Debug, Clone)]
pub struct Pairing {
    /// Id of the pairing.
    pub pairing_id: String,
    /// Host of the upload socket.
    pub host: String,
    /// Port of the upload socket.
    pub port: u16,
    /// Decoded key, nonce and authentication header.
    pub secrets: StreamSecrets,
}

/// The decoded key, nonce and authentication header of one upload stream.
#[derive(Debug, Clone)]
pub struct StreamSecrets {
    /// ChaCha20 key.
    pub key: Sensitive<[u8; KEY_LEN]>,
    /// ChaCha20 nonce.
    pub nonce: Sensitive<[u8; NONCE_LEN]>,
    /// Authentication header: the first bytes of the stream.
    pub header: Sensitive<Vec<u8>>,
}

impl StreamSecrets {
    /// Fresh random key, nonce and a `header_len`-byte authentication header (the backend's own
    /// generator is in the `norman` program; this one serves the unit tests).
    #[cfg(test)]
    pub(crate) fn generate(header_len: usize) -> Self {
        use rand::RngCore;
        let mut rng = rand::rngs::OsRng;
        let mut key = [0u8; KEY_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        let mut header = vec![0u8; header_len];
        rng.fill_bytes(&mut key);
        rng.fill_bytes(&mut nonce);
        rng.fill_bytes(&mut header);
        let secrets = StreamSecrets { key: key.into(), nonce: nonce.into(), header: header.into() };
        zeroize::Zeroize::zeroize(&mut key);
        secrets
    }

    /// The wire form of these secrets for a pairing response.
    pub fn to_response(&self, pairing_id: &str, host: &str, port: u16) -> SocketPairingResponse {
        SocketPairingResponse {
            pairing_id: pairing_id.to_owned(),
            host: host.to_owned(),
            port: i64::from(port),
            encryption_key: STANDARD.encode(self.key.expose()),
            nonce: STANDARD.encode(self.nonce.expose()),
            authentication_header: STANDARD.encode(self.header.expose()),
        }
    }
}

impl SocketPairingResponse {
    /// Parses a pairing from JSON; unknown fields are ignored, missing ones are an error.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| Error::InvalidArgument(format!("pairing JSON: {e}")))
    }

    /// Checks every field and decodes the secrets. The error names the first bad field.
    pub fn validate(&self) -> Result<Pairing> {
        if self.host.trim().is_empty() {
            return Err(bad("host", "is empty"));
        }
        let port = match u16::try_from(self.port) {
            Ok(0) | Err(_) => return Err(bad("port", format!("must be 1-65535, got {}", self.port))),
            Ok(p) => p,
        };
        let key = decode_fixed::<KEY_LEN>("encryption_key", &self.encryption_key)?;
        let nonce = decode_fixed::<NONCE_LEN>("nonce", &self.nonce)?;
        let header = decode("authentication_header", &self.authentication_header)?;
        Ok(Pairing {
            pairing_id: self.pairing_id.clone(),
            host: self.host.clone(),
            port,
            secrets: StreamSecrets { key, nonce, header },
        })
    }
}

impl SocketPairingResponse {
    /// [`SocketPairingResponse::validate`], and refuse an authentication header shorter than
    /// [`MIN_HEADER_LEN`] bytes: what a client checks before it sends a file behind it.
    pub fn validate_for_upload(&self) -> Result<Pairing> {
        let pairing = self.validate()?;
        let len = pairing.secrets.header.expose().len();
        if len < MIN_HEADER_LEN {
            return Err(bad(
                "authentication_header",
                format!("must decode to at least {MIN_HEADER_LEN} bytes (PROTOCOL.md §4), got {len}"),
            ));
        }
        Ok(pairing)
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidPairing { field, reason: reason.into() }
}

fn decode(field: &'static str, b64: &str) -> Result<Sensitive<Vec<u8>>> {
    STANDARD.decode(b64).map(Sensitive::new).map_err(|e| {
        // Describe where, never what: the input is (part of) a secret.
        use base64::DecodeError::*;
        let detail = match e {
            InvalidByte(at, _) => format!("invalid character at offset {at}"),
            InvalidLength(len) => format!("invalid length {len}"),
            InvalidLastSymbol(at, _) => format!("invalid last symbol at offset {at}"),
            InvalidPadding => "invalid padding".to_owned(),
        };
        bad(field, format!("is not valid standard base64: {detail}"))
    })
}

fn decode_fixed<const N: usize>(field: &'static str, b64: &str) -> Result<Sensitive<[u8; N]>> {
    let bytes = decode(field, b64)?;
    let array: [u8; N] = bytes
        .expose()
        .as_slice()
        .try_into()
        .map_err(|_| bad(field, format!("must decode to {N} bytes, got {}", bytes.expose().len())))?;
    Ok(Sensitive::new(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> SocketPairingResponse {
        StreamSecrets::generate(32).to_response("p-1", "127.0.0.1", 4000)
    }

    fn field_of(err: Error) -> &'static str {
        match err {
            Error::InvalidPairing { field, .. } => field,
            other => panic!("expected InvalidPairing, got {other:?}"),
        }
    }

    #[test]
    fn a_generated_pairing_validates_and_round_trips() {
        let secrets = StreamSecrets::generate(24);
        let wire = secrets.to_response("id", "localhost", 1);
        let p = wire.validate().unwrap();
        assert_eq!(p.port, 1);
        assert_eq!(p.secrets.key.expose(), secrets.key.expose());
        assert_eq!(p.secrets.nonce.expose(), secrets.nonce.expose());
        assert_eq!(p.secrets.header.expose(), secrets.header.expose());
        let json = serde_json::to_vec(&wire).unwrap();
        assert_eq!(SocketPairingResponse::from_json(&json).unwrap(), wire);
    }

    #[test]
    fn every_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut SocketPairingResponse)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("host", Box::new(|p| p.host = " ".into())),
            ("port", Box::new(|p| p.port = 0)),
            ("port", Box::new(|p| p.port = 65536)),
            ("port", Box::new(|p| p.port = -1)),
            ("encryption_key", Box::new(|p| p.encryption_key = "not base64!".into())),
            ("encryption_key", Box::new(|p| p.encryption_key = STANDARD.encode([0u8; 31]))),
            ("encryption_key", Box::new(|p| p.encryption_key = STANDARD.encode([0u8; 33]))),
            ("nonce", Box::new(|p| p.nonce = STANDARD.encode([0u8; 8]))),
            ("nonce", Box::new(|p| p.nonce = "AAAA====".into())),
            ("authentication_header", Box::new(|p| p.authentication_header = "%%%".into())),
        ];
        for (field, mutate) in cases {
            let mut p = good();
            mutate(&mut p);
            let err = p.validate().unwrap_err();
            let message = err.to_string();
            assert_eq!(field_of(err), field, "{message}");
            assert!(message.contains(field), "{message}");
        }
    }

    #[test]
    fn an_upload_needs_a_header_of_16_bytes() {
        for len in [0, 1, 15] {
            let p = StreamSecrets::generate(len).to_response("p", "127.0.0.1", 1);
            assert!(p.validate().is_ok(), "the cipher itself takes any header");
            let err = p.validate_for_upload().unwrap_err();
            assert!(err.to_string().contains("at least 16 bytes"), "{err}");
            assert_eq!(field_of(err), "authentication_header");
        }
        assert!(StreamSecrets::generate(16).to_response("p", "h", 1).validate_for_upload().is_ok());
    }

    #[test]
    fn debug_and_errors_never_show_secrets() {
        let p = good();
        let debug = format!("{p:?} {:?}", p.validate().unwrap());
        for secret in [&p.encryption_key, &p.nonce, &p.authentication_header] {
            assert!(!debug.contains(secret.as_str()), "{debug}");
        }
        let mut short = good();
        short.encryption_key = STANDARD.encode(b"0123456789abcdef0123456789abcde");
        let message = short.validate().unwrap_err().to_string();
        assert!(!message.contains(&short.encryption_key) && !message.contains("0123456789"), "{message}");
    }

    #[test]
    fn missing_field_is_a_json_error() {
        let err = SocketPairingResponse::from_json(br#"{"pairing_id":"x","host":"h","port":1}"#).unwrap_err();
        assert!(err.to_string().contains("encryption_key"), "{err}");
        let extra = br#"{"pairing_id":"x","host":"h","port":1,"encryption_key":"","nonce":"","authentication_header":"","new_field":3}"#;
        assert!(SocketPairingResponse::from_json(extra).is_ok());
    }
}
