//! How `norman msg` prints what it receives: one line per message, stable for scripts.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Bytes as text when they are valid UTF-8 without control characters, else `base64:...`.
pub fn show(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_owned(),
        _ => format!("base64:{}", STANDARD.encode(data)),
    }
}

/// A peer id as text when it is printable, else hex.
pub fn show_id(id: &[u8]) -> String {
    match std::str::from_utf8(id) {
        Ok(text) if !text.is_empty() && !text.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            text.to_owned()
        }
        _ => id.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// `TYPE_NAME uri=URI content=CONTENT`.
pub fn message_line(type_name: &str, uri: &[u8], content: &[u8]) -> String {
    format!("{type_name} uri={} content={}", show(uri), show(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_the_rest_is_base64() {
        assert_eq!(show(b"hello world"), "hello world");
        assert_eq!(show("h\u{e9}".as_bytes()), "h\u{e9}");
        assert_eq!(show(b""), "");
        assert_eq!(show(b"a\nb"), "base64:YQpi");
        assert_eq!(show(b"\x00\x01binary\xff"), "base64:AAFiaW5hcnn/");
        assert_eq!(show(b"\x7f"), "base64:fw==");
    }

    #[test]
    fn ids_are_text_or_hex() {
        assert_eq!(show_id(b"alpha"), "alpha");
        assert_eq!(show_id(b"a b"), "612062");
        assert_eq!(show_id(&[0, 255]), "00ff");
        assert_eq!(show_id(b""), "");
    }

    #[test]
    fn message_line_format() {
        assert_eq!(message_line("OK", b"a", b""), "OK uri=a content=");
        assert_eq!(message_line("RESPOND_URI", b"echo", b"\x00"), "RESPOND_URI uri=echo content=base64:AA==");
    }
}
