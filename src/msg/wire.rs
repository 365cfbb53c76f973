//! netaio 0.0.9's message frame (WIRE.md §1): a 9-byte header (type u8, auth_length u16,
//! body_length u16, CRC-32 of the body u32, all big-endian), the auth fields (a packify dict) and
//! the body (u16 uri length, uri, content). No I/O here.

use std::fmt;

use bytes::Bytes;

use super::packify::{self, Value};
use crate::error::{Error, Result};

/// The length of the fixed header.
pub const HEADER_LEN: usize = 9;
/// The largest body (and auth data) a u16 length can describe.
pub const MAX_FIELD_LEN: usize = u16::MAX as usize;
/// The largest uri + content netaio's own senders accept (`Body.prepare`, WIRE.md §1.2).
pub const NETAIO_MAX_PAYLOAD: usize = 65_422;

/// The first application (custom) message type.
pub const FIRST_CUSTOM_TYPE: u8 = 31;

/// A message type byte. 0-30 are netaio's (named below; the unassigned ones are refused on
/// receipt, as netaio refuses them), 31-255 are application types and carried as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageType(pub u8);

macro_rules! message_types {
    ($($name:ident = $v:expr),* $(,)?) => {
        impl MessageType {
            $(
                #[doc = concat!("netaio's `", stringify!($name), "` (", stringify!($v), ").")]
                pub const $name: MessageType = MessageType($v);
            )*

            /// netaio's name of the type (`None` for application and unassigned types).
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The type called `name` (netaio's names, case-insensitive), or `TYPE_n`/a number.
            pub fn from_name(name: &str) -> Option<MessageType> {
                $(if name.eq_ignore_ascii_case(stringify!($name)) {
                    return Some(MessageType::$name);
                })*
                let digits = name.strip_prefix("TYPE_").unwrap_or(name);
                digits.parse::<u8>().ok().map(MessageType)
            }
        }
    };
}

message_types! {
    REQUEST_URI = 0,
    RESPOND_URI = 1,
    CREATE_URI = 2,
    UPDATE_URI = 3,
    DELETE_URI = 4,
    SUBSCRIBE_URI = 5,
    UNSUBSCRIBE_URI = 6,
    PUBLISH_URI = 7,
    NOTIFY_URI = 8,
    ADVERTISE_PEER = 9,
    OK = 10,
    CONFIRM_SUBSCRIBE = 11,
    CONFIRM_UNSUBSCRIBE = 12,
    PEER_DISCOVERED = 13,
    ERROR = 20,
    AUTH_ERROR = 23,
    NOT_FOUND = 24,
    NOT_PERMITTED = 25,
    DISCONNECT = 30,
}

impl MessageType {
    /// ERROR, AUTH_ERROR, NOT_FOUND or NOT_PERMITTED: a reply that completes a request with an error.
    pub const fn is_error(self) -> bool {
        matches!(self.0, 20 | 23 | 24 | 25)
    }

    /// Types netaio never answers an auth failure to (their name contains "ERROR": loop prevention).
    pub const fn is_error_named(self) -> bool {
        matches!(self.0, 20 | 23)
    }

    /// Types that answer or announce (replies, errors, notifications, peer management): an
    /// unmatched one gets no NOT_FOUND back (two nodes would otherwise answer each other).
    pub const fn is_answer(self) -> bool {
        matches!(self.0, 1 | 8 | 9 | 10 | 11 | 12 | 13 | 20 | 23 | 24 | 25 | 30)
    }

    /// A known netaio type or an application type: what a netaio peer can decode.
    pub const fn is_valid(self) -> bool {
        self.0 >= FIRST_CUSTOM_TYPE || self.name().is_some()
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "TYPE_{}", self.0),
        }
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}({})", self.0)
    }
}

/// The 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type.
    pub message_type: MessageType,
    /// Length of the auth fields in bytes.
    pub auth_length: u16,
    /// Length of the body (uri length prefix, uri, content) in bytes.
    pub body_length: u16,
    /// CRC-32 of the body.
    pub checksum: u32,
}

impl Header {
    /// Decodes the first 9 bytes of `b`; refuses unassigned reserved types and bodies shorter than
    /// the uri length field.
    pub fn decode(b: &[u8]) -> Result<Header> {
        let b: &[u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| Error::Protocol(format!("header shorter than {HEADER_LEN} bytes")))?;
        let h = Header {
            message_type: MessageType(b[0]),
            auth_length: u16::from_be_bytes([b[1], b[2]]),
            body_length: u16::from_be_bytes([b[3], b[4]]),
            checksum: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        };
        if !h.message_type.is_valid() {
            return Err(Error::Protocol(format!("unassigned message type {}", b[0])));
        }
        if h.body_length < 2 {
            return Err(Error::Protocol("body shorter than its uri length field".into()));
        }
        Ok(h)
    }

    /// The 9 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = self.message_type.0;
        b[1..3].copy_from_slice(&self.auth_length.to_be_bytes());
        b[3..5].copy_from_slice(&self.body_length.to_be_bytes());
        b[5..9].copy_from_slice(&self.checksum.to_be_bytes());
        b
    }

    /// auth + body bytes that follow the header.
    pub fn payload_len(&self) -> usize {
        self.auth_length as usize + self.body_length as usize
    }
}

/// Receive limits, checked on the header before anything is read or allocated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest auth data accepted (netaio's layers need about 200 bytes).
    pub max_auth: usize,
    /// Largest body accepted (at most 65 535, the u16 limit).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_auth: 4096, max_body: MAX_FIELD_LEN }
    }
}

impl Limits {
    /// Refuses (`Oversize`) a header whose auth or body length passes these limits.
    pub fn check(&self, h: &Header) -> Result<()> {
        if h.auth_length as usize > self.max_auth {
            return Err(Error::Oversize { limit: self.max_auth as u64 });
        }
        if h.body_length as usize > self.max_body {
            return Err(Error::Oversize { limit: self.max_body as u64 });
        }
        Ok(())
    }

    /// The largest whole frame these limits admit.
    pub fn max_frame(&self) -> usize {
        HEADER_LEN + self.max_auth.min(MAX_FIELD_LEN) + self.max_body.min(MAX_FIELD_LEN)
    }
}

/// The auth fields: netaio's `dict[str, bytes]` (values may be any packify value; the bundled
/// layers write bytes). Kept in insertion order; encoded canonically (sorted by packed item).
#[derive(Clone, Default, PartialEq)]
pub struct AuthFields {
    fields: Vec<(String, Value)>,
}

impl fmt::Debug for AuthFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values are nonces, MACs and IVs, of no use in a log.
        f.debug_list().entries(self.fields.iter().map(|(k, _)| k)).finish()
    }
}

impl AuthFields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The value of `name` when it is bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.get(name).and_then(Value::as_bytes)
    }

    /// Sets (or replaces) `name`.
    pub fn set(&mut self, name: &str, value: Value) {
        match self.fields.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.fields.push((name.to_owned(), value)),
        }
    }

    /// Sets (or replaces) `name` with bytes, reusing the old buffer when it held bytes.
    pub fn set_bytes(&mut self, name: &str, value: &[u8]) {
        match self.fields.iter_mut().find(|(k, _)| k == name) {
            Some((_, Value::Bytes(v))) => {
                v.clear();
                v.extend_from_slice(value);
            }
            Some((_, v)) => *v = Value::Bytes(value.to_vec()),
            None => self.fields.push((name.to_owned(), Value::Bytes(value.to_vec()))),
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let i = self.fields.iter().position(|(k, _)| k == name)?;
        Some(self.fields.remove(i).1)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Appends the canonical packify dict to `out`; `skip` leaves one field out (an AEAD tag).
    pub fn encode_into_skipping(&self, out: &mut Vec<u8>, skip: Option<&str>) {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (buf, ranges) = &mut *scratch;
            buf.clear();
            ranges.clear();
            let mut key = Vec::new();
            let mut val = Vec::new();
            for (k, v) in &self.fields {
                if Some(k.as_str()) == skip {
                    continue;
                }
                key.clear();
                val.clear();
                pack_str(k, &mut key);
                v.pack_into(&mut val);
                let start = buf.len();
                packify::pack_packed_pair(&key, &val, buf);
                ranges.push(start..buf.len());
            }
            ranges.sort_by(|a, b| buf[a.clone()].cmp(&buf[b.clone()]));
            packify::pack_seq_header(packify::DICT, ranges.iter().map(|r| r.len()), out);
            for r in ranges.iter() {
                out.extend_from_slice(&buf[r.clone()]);
            }
            if buf.capacity() > 1 << 16 {
                *buf = Vec::new();
            }
        })
    }

    /// Appends the encoded fields to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_into_skipping(out, None)
    }

    /// The encoded fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.fields.len() * 40);
        self.encode_into(&mut out);
        out
    }

    /// Decodes a packify dict whose keys are strings.
    pub fn decode(data: &[u8]) -> Result<AuthFields> {
        match Value::unpack(data)? {
            Value::Dict(pairs) => {
                let mut fields = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    match k {
                        Value::Str(k) => fields.push((k, v)),
                        _ => return Err(Error::Protocol("auth field name is not a string".into())),
                    }
                }
                Ok(AuthFields { fields })
            }
            _ => Err(Error::Protocol("auth data is not a packify dict".into())),
        }
    }
}

fn pack_str(s: &str, out: &mut Vec<u8>) {
    // Same bytes as Value::Str(s).pack_into without building a String.
    let n = s.len();
    if n < 256 {
        out.extend_from_slice(&[0x43, n as u8]);
    } else if n < 65536 {
        out.push(0x83);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xC3);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

type Scratch = (Vec<u8>, Vec<std::ops::Range<usize>>);
thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// One message: type, auth fields and body (uri + content). `uri` and `content` are `Bytes`, so a
/// decoded message shares its frame's buffer instead of copying it.
#[derive(Clone, PartialEq)]
pub struct Message {
    /// The message type.
    pub message_type: MessageType,
    /// Auth fields added by the layers.
    pub auth: AuthFields,
    /// The uri (routing key).
    pub uri: Bytes,
    /// The content.
    pub content: Bytes,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("type", &self.message_type)
            .field("auth", &self.auth)
            .field("uri", &String::from_utf8_lossy(&self.uri[..self.uri.len().min(64)]))
            .field("content_len", &self.content.len())
            .finish()
    }
}

impl Message {
    /// A message with no auth fields.
    pub fn new(message_type: MessageType, uri: impl Into<Bytes>, content: impl Into<Bytes>) -> Message {
        Message { message_type, auth: AuthFields::new(), uri: uri.into(), content: content.into() }
    }

    /// netaio's `make_error_msg(text, uri)`: the type follows the text ("not found" -> NOT_FOUND,
    /// "auth" -> AUTH_ERROR, "not permitted" -> NOT_PERMITTED, else ERROR).
    pub fn error(text: &str, uri: impl Into<Bytes>) -> Message {
        let t = if text.contains("not found") {
            MessageType::NOT_FOUND
        } else if text.contains("auth") {
            MessageType::AUTH_ERROR
        } else if text.contains("not permitted") {
            MessageType::NOT_PERMITTED
        } else {
            MessageType::ERROR
        };
        Message::new(t, uri, Bytes::copy_from_slice(text.as_bytes()))
    }

    /// A reply to this message: `message_type`, the same uri (netaio's requesters match replies
    /// by uri) and request id (libnorman's requesters match by it), `content`.
    pub fn reply(&self, message_type: MessageType, content: impl Into<Bytes>) -> Message {
        let mut m = Message::new(message_type, self.uri.clone(), content);
        if let Some(rid) = self.auth.get_bytes(super::REQUEST_ID_FIELD) {
            m.auth.set_bytes(super::REQUEST_ID_FIELD, rid);
        }
        m
    }

    /// Length of the encoded body (2 + uri + content).
    pub fn body_len(&self) -> usize {
        2 + self.uri.len() + self.content.len()
    }

    /// The u16 uri length prefix of the body.
    pub fn uri_len_prefix(&self) -> [u8; 2] {
        (self.uri.len() as u16).to_be_bytes()
    }

    /// CRC-32 of the body (the header's checksum).
    pub fn checksum(&self) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.uri_len_prefix());
        h.update(&self.uri);
        h.update(&self.content);
        h.finalize()
    }

    /// Appends the whole frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let body_len = self.body_len();
        if self.uri.len() > MAX_FIELD_LEN || body_len > MAX_FIELD_LEN {
            return Err(Error::Oversize { limit: MAX_FIELD_LEN as u64 });
        }
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        self.auth.encode_into(out);
        let auth_len = out.len() - start - HEADER_LEN;
        if auth_len > MAX_FIELD_LEN {
            out.truncate(start);
            return Err(Error::Oversize { limit: MAX_FIELD_LEN as u64 });
        }
        out.extend_from_slice(&self.uri_len_prefix());
        out.extend_from_slice(&self.uri);
        out.extend_from_slice(&self.content);
        let header = Header {
            message_type: self.message_type,
            auth_length: auth_len as u16,
            body_length: body_len as u16,
            checksum: crc32fast::hash(&out[start + HEADER_LEN + auth_len..]),
        };
        out[start..start + HEADER_LEN].copy_from_slice(&header.encode());
        Ok(())
    }

    /// The whole frame.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(HEADER_LEN + 8 + self.body_len());
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Decodes one frame from the start of `frame` (trailing bytes ignored, as netaio's UDP node
    /// does), after checking the header against `limits`. A wrong checksum is
    /// [`Error::ChecksumMismatch`]; every other defect is [`Error::Protocol`] or [`Error::Oversize`].
    pub fn decode(frame: &Bytes, limits: &Limits) -> Result<Message> {
        let header = Header::decode(frame)?;
        limits.check(&header)?;
        let end = HEADER_LEN + header.payload_len();
        if frame.len() < end {
            return Err(Error::Truncated {
                during: "reading a message",
                expected: end as u64,
                received: frame.len() as u64,
            });
        }
        Message::decode_parts(header, frame.slice(HEADER_LEN..end))
    }

    /// Decodes auth data + body (`payload`, exactly `header.payload_len()` bytes) under `header`.
    pub fn decode_parts(header: Header, payload: Bytes) -> Result<Message> {
        let auth_len = header.auth_length as usize;
        if payload.len() != header.payload_len() {
            return Err(Error::Protocol("payload length differs from the header".into()));
        }
        if header.body_length < 2 {
            return Err(Error::Protocol("body shorter than its uri length field".into()));
        }
        let auth = AuthFields::decode(&payload[..auth_len])?;
        let body = payload.slice(auth_len..);
        let uri_len = u16::from_be_bytes([body[0], body[1]]) as usize;
        if 2 + uri_len > body.len() {
            return Err(Error::Protocol("uri length past the body".into()));
        }
        let actual = crc32fast::hash(&body);
        if actual != header.checksum {
            return Err(Error::ChecksumMismatch {
                expected: format!("{:08x}", header.checksum),
                actual: format!("{actual:08x}"),
            });
        }
        Ok(Message {
            message_type: header.message_type,
            auth,
            uri: body.slice(2..2 + uri_len),
            content: body.slice(2 + uri_len..),
        })
    }

    /// A short printable description (type, uri, start of the content) for errors and logs.
    pub fn describe(&self) -> String {
        let excerpt = |b: &[u8], n: usize| {
            let s = String::from_utf8_lossy(&b[..b.len().min(n)]).replace(|c: char| c.is_control(), "?");
            if b.len() > n {
                format!("{s}...")
            } else {
                s
            }
        };
        format!(
            "{} uri={:?} content={:?}",
            self.message_type,
            excerpt(&self.uri, 64),
            excerpt(&self.content, 200)
        )
    }
}
