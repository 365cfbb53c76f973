//! bson_frame: exact reads (every outcome, resumption), the frame reader and writer, the py-bson
//! dialect, Extended JSON, and a seeded property test of the reader on arbitrary bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bson::{doc, Bson, Decimal128, RawDocumentBuf};
use norman::bson_frame::{
    from_relaxed_extjson, py_bson, read_exact_into, to_relaxed_extjson, Dialect, Exact, FrameReader,
    FrameWriter, Limits,
};
use norman::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

/// Hands out scripted chunks (at most `max` bytes per read), then errors or EOF, one per read.
struct Script {
    steps: Vec<Result<Vec<u8>, io::ErrorKind>>,
    max: usize,
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.steps.is_empty() {
            return Poll::Ready(Ok(())); // EOF
        }
        let max = self.max;
        match &mut self.steps[0] {
            Err(kind) => {
                let kind = *kind;
                let _ = self.steps.remove(0);
                Poll::Ready(Err(io::Error::new(kind, "scripted")))
            }
            Ok(chunk) => {
                let n = chunk.len().min(buf.remaining()).min(max);
                buf.put_slice(&chunk[..n]);
                chunk.drain(..n);
                if chunk.is_empty() {
                    let _ = self.steps.remove(0);
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

fn script(steps: Vec<Result<Vec<u8>, io::ErrorKind>>) -> Script {
    Script { steps, max: usize::MAX }
}

#[tokio::test]
async fn exact_read_outcomes() {
    let during = "testing";
    // Clean close before the first byte.
    let (mut buf, mut filled) = ([0u8; 4], 0);
    let got = read_exact_into(&mut &[][..], &mut buf, &mut filled, None, during).await.unwrap();
    assert_eq!((got, filled), (Exact::Closed, 0));

    // Full, across several reads.
    let mut r = Script { steps: vec![Ok(vec![1, 2, 3]), Ok(vec![4, 5, 6])], max: 2 };
    let (mut buf, mut filled) = ([0u8; 5], 0);
    assert_eq!(read_exact_into(&mut r, &mut buf, &mut filled, None, during).await.unwrap(), Exact::Full);
    assert_eq!(buf, [1, 2, 3, 4, 5]);

    // Truncated: the end of stream inside.
    let (mut buf, mut filled) = ([0u8; 4], 0);
    let e = read_exact_into(&mut &[7u8, 8][..], &mut buf, &mut filled, None, during).await.unwrap_err();
    assert!(matches!(e, Error::Truncated { expected: 4, received: 2, .. }), "{e}");
    assert_eq!((filled, &buf[..2]), (2, &[7u8, 8][..]));

    // An I/O error keeps what was read; the next call resumes; Interrupted is retried.
    let mut r = script(vec![
        Ok(vec![1, 2]),
        Err(io::ErrorKind::ConnectionReset),
        Err(io::ErrorKind::Interrupted),
        Ok(vec![3, 4]),
    ]);
    let (mut buf, mut filled) = ([0u8; 4], 0);
    let e = read_exact_into(&mut r, &mut buf, &mut filled, None, during).await.unwrap_err();
    assert!(matches!(&e, Error::Io { source, .. } if source.kind() == io::ErrorKind::ConnectionReset), "{e}");
    assert_eq!((e.kind(), filled), (ErrorKind::Io, 2));
    assert_eq!(read_exact_into(&mut r, &mut buf, &mut filled, None, during).await.unwrap(), Exact::Full);
    assert_eq!(buf, [1, 2, 3, 4]);

    // A timeout keeps what was read; the next call resumes.
    let (mut client, mut server) = tokio::io::duplex(64);
    client.write_all(&[9, 8]).await.unwrap();
    let (mut buf, mut filled) = ([0u8; 5], 0);
    let timeout = Some(Duration::from_millis(50));
    let e = read_exact_into(&mut server, &mut buf, &mut filled, timeout, during).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { after_ms: 50, .. }), "{e}");
    assert_eq!(filled, 2);
    client.write_all(&[7, 6, 5]).await.unwrap();
    assert_eq!(
        read_exact_into(&mut server, &mut buf, &mut filled, timeout, during).await.unwrap(),
        Exact::Full
    );
    assert_eq!(buf, [9, 8, 7, 6, 5]);

    // A resumed read that then meets the end of stream is truncated, not closed.
    drop(client);
    let (mut buf2, mut filled2) = ([0u8; 3], 1);
    let e = read_exact_into(&mut server, &mut buf2, &mut filled2, None, during).await.unwrap_err();
    assert!(matches!(e, Error::Truncated { expected: 3, received: 1, .. }), "{e}");
    // A nonsensical `filled` is refused, not a panic.
    let mut filled = 9;
    let e = read_exact_into(&mut &[][..], &mut [0u8; 4], &mut filled, None, during).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

fn bytes(doc: &bson::Document) -> Vec<u8> {
    doc.to_vec().unwrap()
}

#[tokio::test]
async fn frames_back_to_back_one_byte_at_a_time_and_clean_close() {
    let a = bytes(&doc! {"a": 1, "s": "x"});
    let b = bytes(&doc! {"b": [1.5, {"c": null}]});
    let stream = [a.clone(), b.clone()].concat();
    for max in [1, 3, usize::MAX] {
        let mut r = Script { steps: vec![Ok(stream.clone())], max };
        let mut frames = FrameReader::new(Limits::default());
        assert_eq!(frames.read(&mut r, None).await.unwrap().unwrap().as_bytes(), &a[..]);
        assert_eq!(frames.read(&mut r, None).await.unwrap().unwrap().as_bytes(), &b[..]);
        assert!(frames.read(&mut r, None).await.unwrap().is_none(), "clean close");
    }
}

#[tokio::test]
async fn frame_lengths_outside_the_limits_are_refused_before_reading_the_body() {
    let limits = Limits { max_bytes: 1000, ..Limits::default() };
    for (length, kind) in [
        (4, ErrorKind::Decode),
        (0, ErrorKind::Decode),
        (-1, ErrorKind::Decode),
        (i32::MIN, ErrorKind::Decode),
        (1001, ErrorKind::Oversize),
        (i32::MAX, ErrorKind::Oversize),
    ] {
        let mut r = script(vec![Ok(length.to_le_bytes().to_vec()), Ok(vec![0; 2000])]);
        let mut frames = FrameReader::new(limits);
        let e = frames.read(&mut r, None).await.unwrap_err();
        assert!(matches!(e, Error::FrameLength { length: l, max: 1000 } if l == i64::from(length)), "{e}");
        assert_eq!(e.kind(), kind, "{length}");
        // The stream is out of step: the reader refuses to go on.
        assert!(matches!(frames.read(&mut r, None).await, Err(Error::FrameStreamBroken)));
    }
    // Exactly the maximum is accepted.
    let doc = bytes(&doc! {"s": "x".repeat(1000 - 13)});
    assert_eq!(doc.len(), 1000);
    let mut frames = FrameReader::new(limits);
    assert!(frames.read(&mut &doc[..], None).await.unwrap().is_some());
}

#[tokio::test]
async fn truncation_timeout_and_invalid_documents() {
    let doc = bytes(&doc! {"hello": "world", "n": 5});
    // Truncated inside the header, then inside the body.
    for cut in [2, 10] {
        let mut frames = FrameReader::new(Limits::default());
        let mut r = &doc[..cut];
        let e = frames.read(&mut r, None).await.unwrap_err();
        let expected = if cut < 4 { 4 } else { doc.len() as u64 };
        assert!(
            matches!(e, Error::Truncated { expected: x, received, .. } if x == expected && received == cut as u64),
            "{e}"
        );
        assert!(matches!(frames.read(&mut r, None).await, Err(Error::FrameStreamBroken)));
    }
    // A timeout inside the body; the next call resumes the same frame.
    let (mut client, mut server) = tokio::io::duplex(1024);
    let mut frames = FrameReader::new(Limits::default());
    client.write_all(&doc[..7]).await.unwrap();
    let e = frames.read(&mut server, Some(Duration::from_millis(30))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    client.write_all(&doc[7..]).await.unwrap();
    assert_eq!(frames.read(&mut server, None).await.unwrap().unwrap().as_bytes(), &doc[..]);

    // Complete frames that are not valid documents: refused, and the next frame still reads.
    let mut bad_utf8 = bytes(&doc! {"s": "abc"});
    let at = bad_utf8.len() - 3;
    bad_utf8[at] = 0xff;
    let mut bad_bool = bytes(&doc! {"b": true});
    let at = bad_bool.len() - 2;
    bad_bool[at] = 2;
    let mut bad_tag = bytes(&doc! {"i": 1});
    bad_tag[4] = 0x42;
    let mut no_nul = bytes(&doc! {"i": 1});
    let last = no_nul.len() - 1;
    no_nul[last] = 1;
    for bad in [bad_utf8, bad_bool, bad_tag, no_nul] {
        let stream = [bad.clone(), doc.clone()].concat();
        let mut r = &stream[..];
        let mut frames = FrameReader::new(Limits::default());
        let e = frames.read(&mut r, None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert_eq!(frames.read(&mut r, None).await.unwrap().unwrap().as_bytes(), &doc[..]);
    }
}

fn nested(levels: usize) -> bson::Document {
    let mut doc = doc! {"leaf": 1};
    for _ in 1..levels {
        doc = doc! {"d": [doc]};
    }
    doc
}

#[tokio::test]
async fn nesting_depth_is_bounded() {
    let limits = Limits { max_depth: 20, ..Limits::default() };
    // Each level of `nested` is a document holding an array holding a document: 2 levels.
    let ok = bytes(&nested(10));
    assert!(FrameReader::new(limits).read(&mut &ok[..], None).await.unwrap().is_some());
    let deep = bytes(&nested(11));
    let e = FrameReader::new(limits).read(&mut &deep[..], None).await.unwrap_err();
    assert!(
        e.to_string().contains("nested deeper than 20 levels at `d.0.d.0.d.0.d.0.d.0.d.0.d.0.d.0.d.0.d.0`"),
        "{e}"
    );
    // The writer bounds it too.
    let e = FrameWriter::new(limits, Dialect::Standard)
        .check(bson::RawDocument::from_bytes(&deep).unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    values: Vec<f64>,
    #[serde(with = "norman::bson_frame::py_bson::u64_field")]
    counter: u64,
    raw: bson::Binary,
}

#[tokio::test]
async fn typed_and_raw_documents_through_a_stream() {
    let (mut client, mut server) = tokio::io::duplex(1 << 16);
    let reading = Reading {
        sensor: "t1".into(),
        values: vec![1.5, -2.0],
        counter: u64::MAX - 1,
        raw: bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0, 1, 255] },
    };
    // A uint64 above i64::MAX is py-bson's 0x11: refused unless asked for, naming the field.
    let mut strict = FrameWriter::new(Limits::default(), Dialect::PyBson);
    let e = strict.send(&mut client, &reading).await.unwrap_err();
    assert!(matches!(&e, Error::PyBsonUnsupported { field, .. } if field == "counter"), "{e}");
    let mut writer = FrameWriter::new(Limits::default(), Dialect::PyBson).allow_uint64(true);
    writer.send(&mut client, &reading).await.unwrap();
    let raw = RawDocumentBuf::try_from(&doc! {"k": "v"}).unwrap();
    writer.send_raw(&mut client, &raw).await.unwrap();
    drop(client);

    let mut frames = FrameReader::new(Limits::default());
    let back: Reading = frames.read_typed(&mut server, None).await.unwrap().unwrap();
    assert_eq!(back, reading);
    assert_eq!(frames.read(&mut server, None).await.unwrap().unwrap(), &*raw);
    assert!(frames.read_typed::<Reading, _>(&mut server, None).await.unwrap().is_none());
}

#[tokio::test]
async fn writer_refuses_what_py_bson_misreads_naming_the_field() {
    let cases: Vec<(bson::Document, &str, &str)> = vec![
        (doc! {"a": [{"d": Decimal128::from_bytes([0; 16])}]}, "a.0.d", "Decimal128"),
        (
            doc! {"r": bson::Regex { pattern: "x".try_into().unwrap(), options: "".try_into().unwrap() }},
            "r",
            "regular expression",
        ),
        (doc! {"o": bson::oid::ObjectId::new()}, "o", "ObjectId"),
        (doc! {"t": bson::Timestamp { time: 1, increment: 2 }}, "t", "Timestamp (0x11)"),
        (doc! {"x": {"y": Bson::Undefined}}, "x.y", "undefined"),
        (doc! {"k": Bson::MaxKey}, "k", "MaxKey"),
        (doc! {"j": Bson::JavaScriptCode("f()".into())}, "j", "JavaScript"),
        (doc! {"s": Bson::Symbol("x".into())}, "s", "symbol"),
        (
            doc! {"u": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![1; 15] }},
            "u",
            "of 15 bytes",
        ),
        (
            doc! {"m": bson::Binary { subtype: bson::spec::BinarySubtype::Md5, bytes: vec![1; 16] }},
            "m",
            "subtype 0x05",
        ),
        (doc! {"d": bson::DateTime::from_millis(-62_135_596_800_001)}, "d", "years 1 to 9999"),
    ];
    for (doc, field, reason) in cases {
        let raw = RawDocumentBuf::try_from(&doc).unwrap();
        let e = FrameWriter::new(Limits::default(), Dialect::PyBson).check(&raw).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(
            matches!(&e, Error::PyBsonUnsupported { field: f, reason: r } if f == field && r.contains(reason)),
            "{e}"
        );
        // The standard dialect sends them.
        FrameWriter::new(Limits::default(), Dialect::Standard).check(&raw).unwrap();
    }
    // What py-bson reads faithfully passes, including the edges of its datetime range.
    let fine = doc! {
        "i": 1, "l": i64::MIN, "f": 0.5, "s": "s", "n": null, "b": false, "a": [1, {"x": 2}],
        "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 3] },
        "uuid": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![0; 16] },
        "lo": bson::DateTime::from_millis(-62_135_596_800_000), "hi": bson::DateTime::from_millis(253_402_300_799_999),
    };
    FrameWriter::new(Limits::default(), Dialect::PyBson)
        .check(&RawDocumentBuf::try_from(&fine).unwrap())
        .unwrap();

    // Too large for the limit: refused before anything is written.
    let (mut client, _server) = tokio::io::duplex(1 << 16);
    let big = RawDocumentBuf::try_from(&doc! {"s": "x".repeat(100)}).unwrap();
    let e = FrameWriter::new(Limits { max_bytes: 64, ..Limits::default() }, Dialect::Standard)
        .send_raw(&mut client, &big)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Oversize);
    // Bytes whose header is right but whose body is not are not sent either.
    let mut bad = bytes(&doc! {"i": 1});
    bad[4] = 0x42;
    let e = FrameWriter::new(Limits::default(), Dialect::Standard)
        .check(bson::RawDocument::from_bytes(&bad).unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
}

#[test]
fn extended_json_keeps_order_and_reads_py_bson_uint64() {
    let text = r#"{"z":1,"a":[1.5,"x",null,true],"big":9223372036854775813,"neg":-3000000000,"dt":{"$date":"2024-02-29T12:34:56.789Z"},"bin":{"$binary":{"base64":"AQI=","subType":"00"}},"o":{"$oid":"0123456789abcdef01234567"}}"#;
    let doc = from_relaxed_extjson(text, Dialect::Standard).unwrap();
    assert_eq!(doc.get("big").unwrap(), Some(bson::RawBsonRef::Double(9223372036854775813.0)));
    assert_eq!(
        doc.iter().map(|e| e.unwrap().0.as_str().to_string()).collect::<Vec<_>>(),
        ["z", "a", "big", "neg", "dt", "bin", "o"]
    );
    let back = to_relaxed_extjson(&doc, Dialect::Standard).unwrap();
    assert_eq!(back, text.replace("9223372036854775813", "9.223372036854776e+18"));

    // py-bson dialect: integers above i64::MAX are its 0x11 uint64, both ways.
    let py = from_relaxed_extjson(text, Dialect::PyBson).unwrap();
    let big = py.get("big").unwrap().unwrap();
    assert_eq!(py_bson::as_u64(&big), Some((1 << 63) + 5));
    assert_eq!(big.element_type(), bson::spec::ElementType::Timestamp);
    assert_eq!(to_relaxed_extjson(&py, Dialect::PyBson).unwrap(), text);
    assert!(to_relaxed_extjson(&py, Dialect::Standard)
        .unwrap()
        .contains(r#""big":{"$timestamp":{"i":5,"t":2147483648}}"#));
    assert_eq!(
        py_bson::uint64(u64::MAX),
        Bson::Timestamp(bson::Timestamp { time: u32::MAX, increment: u32::MAX })
    );

    let e = from_relaxed_extjson(r#"{"a":{"b":{"$timestamp":{"t":1,"i":1}}}}"#, Dialect::PyBson).unwrap_err();
    assert!(e.to_string().contains("field `a.b`: a $timestamp is 0x11"), "{e}");
    for bad in ["[1]", "1", "{", r#"{"a":{"$numberLong":5}}"#, r#"{"a\u0000b":1}"#] {
        assert_eq!(
            from_relaxed_extjson(bad, Dialect::Standard).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
    // Non-finite doubles, and every other type, in their relaxed form.
    let odd = RawDocumentBuf::try_from(&doc! {"nan": f64::NAN, "inf": f64::NEG_INFINITY, "t": bson::Timestamp { time: 1, increment: 2 }, "k": Bson::MinKey}).unwrap();
    assert_eq!(
        to_relaxed_extjson(&odd, Dialect::Standard).unwrap(),
        r#"{"nan":{"$numberDouble":"NaN"},"inf":{"$numberDouble":"-Infinity"},"t":{"$timestamp":{"i":2,"t":1}},"k":{"$minKey":1}}"#
    );
}

/// xorshift64*: a fixed seed, so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Arbitrary bytes, valid documents mutated, and hostile length prefixes never panic the reader;
/// whatever it accepts is within the limits, fully decodable and convertible to Extended JSON.
#[tokio::test]
async fn property_reader_on_arbitrary_bytes() {
    let limits = Limits { max_bytes: 512, max_depth: 8 };
    let seeds: Vec<Vec<u8>> = vec![
        bytes(&doc! {"a": 1, "b": "two", "c": [1.5, null, {"d": true}], "e": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 3] }}),
        bytes(&doc! {"t": bson::Timestamp { time: 1, increment: 2 }, "r": bson::Regex { pattern: "a".try_into().unwrap(), options: "i".try_into().unwrap() }, "j": Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "f".into(), scope: doc! {"x": 1} })}),
        bytes(&doc! {"o": bson::oid::ObjectId::from_bytes([7; 12]), "dt": bson::DateTime::from_millis(5), "dec": Decimal128::from_bytes([1; 16]), "k": Bson::MaxKey}),
        from_relaxed_extjson(r#"{"p":{"$dbPointer":{"$ref":"ns","$id":{"$oid":"0123456789abcdef01234567"}}},"s":{"$symbol":"y"},"u":{"$undefined":true}}"#, Dialect::Standard).unwrap().into_bytes(),
        bytes(&nested(6)),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0u32, 0u32);
    for case in 0..4000 {
        let mut data = match case % 3 {
            0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect::<Vec<u8>>(),
            _ => seeds[rng.below(seeds.len() as u64) as usize].clone(),
        };
        if case % 3 != 0 {
            for _ in 0..=rng.below(4) {
                let i = rng.below(data.len() as u64) as usize;
                data[i] = rng.next() as u8;
            }
            match rng.below(4) {
                0 => data.truncate(rng.below(data.len() as u64) as usize),
                1 => data.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
                _ => {}
            }
        }
        if case % 7 == 0 && data.len() >= 4 {
            let hostile = [i32::MAX, i32::MIN, -1, 0, 4, 5, 513, 512][rng.below(8) as usize];
            data[..4].copy_from_slice(&hostile.to_le_bytes());
        }
        let mut r = Script { steps: vec![Ok(data.clone())], max: 1 + rng.below(8) as usize };
        let mut frames = FrameReader::new(limits);
        for _ in 0..4 {
            match frames.read(&mut r, None).await {
                Ok(None) => break,
                Ok(Some(doc)) => {
                    accepted += 1;
                    assert!(doc.as_bytes().len() <= 512);
                    bson::Document::try_from(doc).expect("a validated document decodes");
                    to_relaxed_extjson(doc, Dialect::Standard).expect("and converts");
                    to_relaxed_extjson(doc, Dialect::PyBson).expect("in both dialects");
                    let _ = FrameWriter::new(limits, Dialect::PyBson).check(doc);
                }
                Err(Error::FrameStreamBroken) => break,
                Err(_) => refused += 1,
            }
        }
    }
    assert!(accepted > 300 && refused > 1000, "accepted {accepted}, refused {refused}");
}
