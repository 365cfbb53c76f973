//! One BSON document as the content of a message of the messaging layer ([`crate::msg`]), so typed
//! objects travel over its authenticated, encrypted channels as well as over plain sockets. The
//! content is exactly the document (its length prefix included), under the same [`Limits`] and
//! checks as a frame; a message body holds at most 65 535 bytes (uri included).

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};

use super::{decode, FrameWriter, Limits, RawDocument};
use crate::error::{Error, Result};
use crate::msg::wire::MAX_FIELD_LEN;
use crate::msg::{Message, MessageType};

impl FrameWriter {
    /// A message carrying `doc` as its content, checked as [`FrameWriter::send_raw`] checks it.
    pub fn message_raw(
        &self,
        message_type: MessageType,
        uri: impl Into<Bytes>,
        doc: &RawDocument,
    ) -> Result<Message> {
        self.check(doc)?;
        let uri = uri.into();
        fits(&uri, doc.as_bytes().len())?;
        Ok(Message::new(message_type, uri, Bytes::copy_from_slice(doc.as_bytes())))
    }

    /// A message carrying `value` serialized as one document (no copy of the encoded bytes).
    pub fn message<T: Serialize>(
        &mut self,
        message_type: MessageType,
        uri: impl Into<Bytes>,
        value: &T,
    ) -> Result<Message> {
        let doc = self.encode_owned(value)?;
        let uri = uri.into();
        fits(&uri, doc.as_bytes().len())?;
        Ok(Message::new(message_type, uri, Bytes::from(doc.into_bytes())))
    }
}

fn fits(uri: &Bytes, document: usize) -> Result<()> {
    let room = MAX_FIELD_LEN.saturating_sub(2 + uri.len());
    if document > room {
        return Err(Error::Oversize { limit: room as u64 });
    }
    Ok(())
}

/// The document a message carries, validated under `limits`, borrowed from its content.
pub fn message_document<'m>(message: &'m Message, limits: &Limits) -> Result<&'m RawDocument> {
    let content = &message.content[..];
    let Some(prefix) = content.first_chunk::<4>() else {
        return Err(Error::Decode {
            what: "BSON message content".into(),
            message: format!("{} bytes cannot hold a document", content.len()),
        });
    };
    let announced = limits.check_length(i32::from_le_bytes(*prefix))?;
    if announced != content.len() {
        return Err(Error::Decode {
            what: "BSON message content".into(),
            message: format!("the document announces {announced} bytes, the content holds {}", content.len()),
        });
    }
    limits.validate(content)
}

/// The document a message carries, deserialized into `T`.
pub fn message_typed<T: DeserializeOwned>(message: &Message, limits: &Limits) -> Result<T> {
    decode(message_document(message, limits)?)
}
