//! A wrapper for secrets: tokens, keys, passwords, authentication headers.
//!
//! `Sensitive<T>` prints as `<redacted>` through `Debug` and `Display`, is wiped on drop, implements
//! no serde trait (so a secret cannot be serialized by accident), and hands out its value only through
//! the explicit [`Sensitive::expose`] call, which is easy to find in review.

use std::fmt;
use zeroize::Zeroize;

/// Text printed in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// A secret value: redacted when printed, zeroed when dropped.
#[derive(Clone, Default)]
pub struct Sensitive<T: Zeroize>(T);

impl<T: Zeroize> Sensitive<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself. Every use of this is a place where a secret leaves its wrapper.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> From<T> for Sensitive<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T: Zeroize> Drop for Sensitive<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Zeroize> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let token = Sensitive::new(String::from("tok-123-secret"));
        assert_eq!(format!("{token:?}"), REDACTED);
        assert_eq!(format!("{token}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&token)), "Some(<redacted>)");
        assert_eq!(token.expose(), "tok-123-secret");
    }

    #[test]
    fn zeroize_runs_on_the_inner_value() {
        // Drop calls the same zeroize used here; check it wipes the bytes in place.
        let mut key = Sensitive::new(vec![7u8; 32]);
        key.0.zeroize();
        assert!(key.expose().is_empty());
        let mut arr = Sensitive::new([9u8; 32]);
        arr.0.zeroize();
        assert_eq!(arr.expose(), &[0u8; 32]);
    }
}
