//! BSON documents as the content of messages of the messaging layer: typed objects through a real
//! msg Server and Client with the AEAD layer on loopback, and the checks on content.

use std::time::Duration;

use bson::{doc, RawDocumentBuf};
use bytes::Bytes;
use norman::bson_frame::{message_document, message_typed, Dialect, FrameWriter, Limits};
use norman::msg::{Call, Client, ClientConfig, Layers, Message, MessageType, Server, ServerConfig};
use norman::{Error, ErrorKind};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Job {
    name: String,
    sizes: Vec<i64>,
    done: bool,
}

#[tokio::test]
async fn typed_documents_over_an_encrypted_channel() {
    let key = [9u8; 32];
    let server = Server::new(ServerConfig { layers: Layers::aead(&key), ..Default::default() });
    server.on(MessageType::REQUEST_URI, Some(b"jobs"), |m: Message, _call: Call| async move {
        let mut job: Job = match message_typed(&m, &Limits::default()) {
            Ok(job) => job,
            Err(e) => return Some(Message::error(&e.to_string(), m.uri.clone())),
        };
        job.done = true;
        job.sizes.push(job.sizes.iter().sum());
        let mut writer = FrameWriter::new(Limits::default(), Dialect::Standard);
        Some(
            writer
                .message(MessageType::RESPOND_URI, m.uri.clone(), &job)
                .unwrap_or_else(|e| Message::error(&e.to_string(), m.uri.clone())),
        )
    });
    let addr = server.listen("127.0.0.1:0").await.unwrap();
    let client =
        Client::connect(&addr.to_string(), ClientConfig { layers: Layers::aead(&key), ..Default::default() })
            .await
            .unwrap();

    let job = Job { name: "resize".into(), sizes: vec![1, 2, 3], done: false };
    let request = FrameWriter::new(Limits::default(), Dialect::Standard)
        .message(MessageType::REQUEST_URI, &b"jobs"[..], &job)
        .unwrap();
    let reply = client
        .request(request.message_type, &request.uri[..], &request.content[..], Duration::from_secs(10))
        .await
        .unwrap();
    let back: Job = message_typed(&reply, &Limits::default()).unwrap();
    assert_eq!(back, Job { name: "resize".into(), sizes: vec![1, 2, 3, 6], done: true });

    // Content that is not a document comes back as the server's error reply.
    let e = client
        .request(MessageType::REQUEST_URI, b"jobs", b"\x03\x00\x00\x00", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Remote { reply } if String::from_utf8_lossy(&reply.content).contains("BSON frame length 3")),
        "{e}"
    );
    server.shutdown().await;
}

#[test]
fn message_content_is_exactly_one_valid_document() {
    let limits = Limits::default();
    let raw = RawDocumentBuf::try_from(&doc! {"k": "v", "n": [1, 2]}).unwrap();
    let writer = FrameWriter::new(limits, Dialect::Standard);
    let m = writer.message_raw(MessageType::PUBLISH_URI, &b"topic"[..], &raw).unwrap();
    assert_eq!(&m.content[..], raw.as_bytes());
    // Through the wire codec and back, zero-copy from the decoded frame.
    let frame = Bytes::from(m.encode().unwrap());
    let decoded = Message::decode(&frame, &norman::msg::Limits::default()).unwrap();
    assert_eq!(message_document(&decoded, &limits).unwrap(), &*raw);

    let with = |content: Vec<u8>| Message::new(MessageType::OK, &b""[..], content);
    let mut trailing = raw.as_bytes().to_vec();
    trailing.push(0);
    for (content, kind) in [
        (vec![], ErrorKind::Decode),
        (vec![5, 0, 0], ErrorKind::Decode),
        (trailing, ErrorKind::Decode),
        (raw.as_bytes()[..raw.as_bytes().len() - 1].to_vec(), ErrorKind::Decode),
        ((i32::MAX).to_le_bytes().to_vec(), ErrorKind::Oversize),
        (vec![7, 0, 0, 0, 0x42, 0, 0], ErrorKind::Decode),
    ] {
        let e = message_document(&with(content.clone()), &limits).unwrap_err();
        assert_eq!(e.kind(), kind, "{content:?}: {e}");
    }
    // The limits of the reader apply.
    let small = Limits { max_bytes: 16, ..Limits::default() };
    assert_eq!(message_document(&m, &small).unwrap_err().kind(), ErrorKind::Oversize);

    // A document larger than a message body can hold is refused when the message is built.
    let big = RawDocumentBuf::try_from(&doc! {"s": "x".repeat(70_000)}).unwrap();
    assert_eq!(writer.message_raw(MessageType::OK, &b"u"[..], &big).unwrap_err().kind(), ErrorKind::Oversize);
    // The dialect's checks apply too.
    let ts = RawDocumentBuf::try_from(&doc! {"t": bson::Timestamp { time: 1, increment: 1 }}).unwrap();
    let e =
        FrameWriter::new(limits, Dialect::PyBson).message_raw(MessageType::OK, &b""[..], &ts).unwrap_err();
    assert!(matches!(e, Error::PyBsonUnsupported { ref field, .. } if field == "t"), "{e}");
}
