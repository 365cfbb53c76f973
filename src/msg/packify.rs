//! The subset of packify (0.3.1 == 0.4.0 for everything here) that netaio puts on the wire: the
//! auth fields dict and the peer tuple (WIRE.md §1.3). Encoding is canonical (smallest widths, dict
//! items sorted by their packed bytes, as packify does); decoding is tolerant (any width, any item
//! order, trailing bytes ignored, as packify's `struct.unpack` does) but bounded: nesting depth is
//! limited, and no count or length is trusted before it is checked against the bytes that remain,
//! so a decoder never allocates more than a small multiple of its input. PACKABLE (a Python class
//! name) is refused.

use crate::error::{Error, Result};

/// Containers nested deeper than this are refused (the stack stays bounded on hostile input).
pub const MAX_DEPTH: usize = 16;

const CAT1: u8 = 0x40;
const CAT2: u8 = 0x80;
const CAT3: u8 = 0xC0;

const T_NONE: u8 = 0;
const T_BYTES: u8 = 1;
const T_BYTEARRAY: u8 = 2;
const T_STR: u8 = 3;
const T_INT: u8 = 4;
const T_NEG_INT: u8 = 5;
const T_BOOL: u8 = 6;
const T_FLOAT: u8 = 7;
const T_DECIMAL: u8 = 8;
const T_LIST: u8 = 10;
const T_SET: u8 = 11;
const T_TUPLE: u8 = 12;
const T_DICT: u8 = 13;
const T_PACKABLE: u8 = 20;

/// One packify value. Integers are limited to the i128 range (packify's own CAT0 integers of more
/// than 16 bytes are refused); sets keep their wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python `None`.
    None,
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `bytearray`.
    ByteArray(Vec<u8>),
    /// `str`.
    Str(String),
    /// `int`.
    Int(i128),
    /// `bool`.
    Bool(bool),
    /// `float`.
    Float(f64),
    /// `Decimal`, as its string.
    Decimal(String),
    /// `list`.
    List(Vec<Value>),
    /// `set`, in wire order.
    Set(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `dict`, as key-value pairs in wire order.
    Dict(Vec<(Value, Value)>),
}

impl Value {
    /// The bytes of a `Bytes` or `ByteArray` value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) | Value::ByteArray(b) => Some(b),
            _ => None,
        }
    }

    /// The text of a `Str` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of an `Int` value.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The packed bytes of this value.
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.pack_into(&mut out);
        out
    }

    /// Appends the canonical encoding of this value to `out`.
    pub fn pack_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::None => out.push(T_NONE),
            Value::Bytes(b) => pack_blob(T_BYTES, b, out),
            Value::ByteArray(b) => pack_blob(T_BYTEARRAY, b, out),
            Value::Str(s) => pack_blob(T_STR, s.as_bytes(), out),
            Value::Decimal(s) => pack_blob(T_DECIMAL, s.as_bytes(), out),
            Value::Int(i) => pack_int(*i, out),
            Value::Bool(b) => out.extend_from_slice(&[T_BOOL, *b as u8]),
            Value::Float(f) => {
                out.push(T_FLOAT);
                out.extend_from_slice(&f.to_be_bytes());
            }
            Value::List(items) => pack_seq(T_LIST, items.iter().map(|v| v.pack()).collect(), out),
            Value::Set(items) => pack_seq(T_SET, items.iter().map(|v| v.pack()).collect(), out),
            Value::Tuple(items) => pack_seq(T_TUPLE, items.iter().map(|v| v.pack()).collect(), out),
            Value::Dict(pairs) => {
                let mut items: Vec<Vec<u8>> = pairs
                    .iter()
                    .map(|(k, v)| {
                        let mut item = Vec::new();
                        pack_pair(k, v, &mut item);
                        item
                    })
                    .collect();
                items.sort();
                pack_seq(T_DICT, items, out)
            }
        }
    }

    /// Decodes one value from the start of `data` (trailing bytes are ignored, as packify does).
    pub fn unpack(data: &[u8]) -> Result<Value> {
        unpack_at(data, 0)
    }
}

/// The length category of `n` and its width in bytes (packify's `LengthCategory.for_len`).
fn category(n: u64) -> (u8, usize) {
    if n < 1 << 8 {
        (CAT1, 1)
    } else if n < 1 << 16 {
        (CAT2, 2)
    } else {
        (CAT3, 4)
    }
}

fn put_width(n: u64, width: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&n.to_be_bytes()[8 - width..]);
}

fn pack_blob(kind: u8, b: &[u8], out: &mut Vec<u8>) {
    let (cat, w) = category(b.len() as u64);
    out.push(cat | kind);
    put_width(b.len() as u64, w, out);
    out.extend_from_slice(b);
}

fn pack_int(i: i128, out: &mut Vec<u8>) {
    let kind = if i < 0 { T_NEG_INT } else { T_INT };
    let magnitude = i.unsigned_abs();
    if magnitude < 1 << 32 {
        let (cat, w) = category(magnitude as u64);
        out.push(cat | kind);
        put_width(magnitude as u64, w, out);
    } else {
        // CAT0: a size byte, then the magnitude in that many bytes.
        let bytes = magnitude.to_be_bytes();
        let skip = (magnitude.leading_zeros() / 8) as usize;
        out.push(kind);
        out.push((16 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A (key, value) tuple, as packify packs each dict item.
fn pack_pair(k: &Value, v: &Value, out: &mut Vec<u8>) {
    let mut kp = Vec::new();
    k.pack_into(&mut kp);
    let mut vp = Vec::new();
    v.pack_into(&mut vp);
    pack_packed_pair(&kp, &vp, out);
}

/// Packs the tuple (a, b) from the already packed items.
pub(crate) fn pack_packed_pair(a: &[u8], b: &[u8], out: &mut Vec<u8>) {
    let (icat, iw) = category(a.len().max(b.len()) as u64);
    out.extend_from_slice(&[CAT1 | T_TUPLE, icat, 2]);
    put_width(a.len() as u64, iw, out);
    put_width(b.len() as u64, iw, out);
    out.extend_from_slice(a);
    out.extend_from_slice(b);
}

/// Writes the header of a container of already packed items whose lengths are `lens`.
pub(crate) fn pack_seq_header(kind: u8, lens: impl Iterator<Item = usize> + Clone, out: &mut Vec<u8>) {
    let count = lens.clone().count() as u64;
    let (cat, w) = category(count);
    let (icat, iw) = category(lens.clone().max().unwrap_or(0) as u64);
    out.push(cat | kind);
    out.push(icat);
    put_width(count, w, out);
    for len in lens {
        put_width(len as u64, iw, out);
    }
}

fn pack_seq(kind: u8, items: Vec<Vec<u8>>, out: &mut Vec<u8>) {
    pack_seq_header(kind, items.iter().map(|i| i.len()), out);
    for item in items {
        out.extend_from_slice(&item);
    }
}

pub(crate) const DICT: u8 = T_DICT;

fn bad(message: &str) -> Error {
    Error::Protocol(format!("packify: {message}"))
}

/// Reads a big-endian unsigned integer of `width` bytes at `*pos`.
fn read_uint(data: &[u8], pos: &mut usize, width: usize) -> Result<u64> {
    let end = pos.checked_add(width).filter(|e| *e <= data.len()).ok_or_else(|| bad("truncated length"))?;
    let v = data[*pos..end].iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
    *pos = end;
    Ok(v)
}

fn width_of(cat: u8) -> Result<usize> {
    match cat {
        CAT1 => Ok(1),
        CAT2 => Ok(2),
        CAT3 => Ok(4),
        _ => Err(bad("length category 0 where a length is required")),
    }
}

fn take<'a>(data: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8]> {
    let len = usize::try_from(len).map_err(|_| bad("length past the data"))?;
    let end = pos.checked_add(len).filter(|e| *e <= data.len()).ok_or_else(|| bad("length past the data"))?;
    let s = &data[*pos..end];
    *pos = end;
    Ok(s)
}

fn unpack_at(data: &[u8], depth: usize) -> Result<Value> {
    let (&code, _) = data.split_first().ok_or_else(|| bad("empty value"))?;
    let cat = code & 0xC0;
    let kind = code & 0x3F;
    let mut pos = 1usize;
    match kind {
        T_NONE => Ok(Value::None),
        T_BYTES | T_BYTEARRAY | T_STR | T_DECIMAL => {
            let len = read_uint(data, &mut pos, width_of(cat)?)?;
            let b = take(data, &mut pos, len)?;
            match kind {
                T_BYTES => Ok(Value::Bytes(b.to_vec())),
                T_BYTEARRAY => Ok(Value::ByteArray(b.to_vec())),
                _ => {
                    let s = std::str::from_utf8(b).map_err(|_| bad("string is not UTF-8"))?.to_owned();
                    Ok(if kind == T_STR { Value::Str(s) } else { Value::Decimal(s) })
                }
            }
        }
        T_INT | T_NEG_INT => {
            let magnitude: u128 = if cat == 0 {
                let size = read_uint(data, &mut pos, 1)?;
                if size > 16 {
                    return Err(bad("integer larger than 128 bits"));
                }
                take(data, &mut pos, size)?.iter().fold(0u128, |acc, b| (acc << 8) | *b as u128)
            } else {
                read_uint(data, &mut pos, width_of(cat)?)? as u128
            };
            let v = if kind == T_NEG_INT {
                if magnitude > i128::MAX as u128 + 1 {
                    return Err(bad("integer out of range"));
                }
                (magnitude as i128).wrapping_neg()
            } else {
                i128::try_from(magnitude).map_err(|_| bad("integer out of range"))?
            };
            Ok(Value::Int(v))
        }
        T_BOOL => Ok(Value::Bool(read_uint(data, &mut pos, 1)? != 0)),
        T_FLOAT => Ok(Value::Float(f64::from_bits(read_uint(data, &mut pos, 8)?))),
        T_LIST | T_SET | T_TUPLE | T_DICT => {
            if depth >= MAX_DEPTH {
                return Err(bad("containers nested too deeply"));
            }
            let count_width = width_of(cat)?;
            let icat = read_uint(data, &mut pos, 1)? as u8;
            if icat & 0x3F != 0 {
                return Err(bad("bad item length category"));
            }
            let iw = width_of(icat)?;
            let count = read_uint(data, &mut pos, count_width)?;
            // Every item takes at least `iw` bytes of lengths and one byte of data: check the count
            // against what remains before allocating anything for it.
            let remaining = (data.len() - pos) as u64;
            if count.saturating_mul(iw as u64 + 1) > remaining {
                return Err(bad("item count past the data"));
            }
            let mut lens_pos = pos;
            pos += count as usize * iw;
            let mut items = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let len = read_uint(data, &mut lens_pos, iw)?;
                let item = take(data, &mut pos, len)?;
                items.push(unpack_at(item, depth + 1)?);
            }
            match kind {
                T_LIST => Ok(Value::List(items)),
                T_SET => Ok(Value::Set(items)),
                T_TUPLE => Ok(Value::Tuple(items)),
                _ => {
                    let mut pairs = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Value::Tuple(mut kv) | Value::List(mut kv) if kv.len() == 2 => {
                                let v = kv.pop().unwrap_or(Value::None);
                                let k = kv.pop().unwrap_or(Value::None);
                                pairs.push((k, v));
                            }
                            _ => return Err(bad("dict item is not a (key, value) pair")),
                        }
                    }
                    Ok(Value::Dict(pairs))
                }
            }
        }
        T_PACKABLE => Err(bad("PACKABLE values (Python classes) are refused")),
        _ => Err(bad("unknown type code")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_examples() {
        let d = Value::Dict(vec![(Value::Str("test".into()), Value::Bytes(b"test".to_vec()))]);
        assert_eq!(hex::encode(d.pack()), "4d4001114c40020606430474657374410474657374");
        assert_eq!(Value::Dict(vec![]).pack(), [0x4d, 0x40, 0x00]);
        assert_eq!(Value::Int(5).pack(), [0x44, 5]);
        assert_eq!(Value::Int(300).pack(), [0x84, 1, 44]);
        assert_eq!(Value::Int(-1).pack(), [0x45, 1]);
        assert_eq!(Value::Int(1 << 40).pack(), [0x04, 6, 1, 0, 0, 0, 0, 0]);
        for v in [
            Value::Int(1 << 40),
            Value::Int(-(1 << 33)),
            Value::Int(i128::MIN),
            Value::Float(1.5),
            Value::Bool(true),
            Value::None,
            Value::List(vec![Value::Str("é".into()), Value::Bytes(vec![0; 300])]),
            Value::Set(vec![Value::Int(1)]),
            Value::Decimal("1.25".into()),
            Value::ByteArray(vec![1, 2]),
        ] {
            assert_eq!(Value::unpack(&v.pack()).unwrap(), v);
        }
    }

    #[test]
    fn tolerant_and_bounded() {
        // A wide (CAT2) length for a short string, and trailing bytes: accepted.
        assert_eq!(Value::unpack(&[0x83, 0, 2, b'h', b'i', 0xff]).unwrap(), Value::Str("hi".into()));
        // PACKABLE refused, huge counts refused before allocating.
        assert!(Value::unpack(&[0x54, 1, 1, b'A', b'x']).is_err());
        assert!(Value::unpack(&[0xCA, 0xC0, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Deep nesting refused.
        let mut v = Value::None;
        for _ in 0..40 {
            v = Value::List(vec![v]);
        }
        assert!(Value::unpack(&v.pack()).is_err());
    }
}
