//! `wire_enum!`: string enumerations that survive values from a newer server.
//!
//! Each generated enum has the known variants, with their exact wire strings, plus `Other(String)`,
//! which keeps an unknown value as received so that one new enum value does not make a whole object
//! unreadable, and so that it is sent back unchanged. Serde goes through the string (`as_str` / `From`).
//!
//! Build values with `From<&str>` (or `parse`), not with `Other(..)` directly: `Other("Api")` is not
//! equal to the known variant `Api`; `From` always picks the known variant when there is one.

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                #[doc = concat!("`\"", $wire, "\"` on the wire.")]
                $variant,
            )+
            /// A value this version does not know (e.g. from a newer server), kept as received.
            Other(String),
        }

        impl $name {
            /// The known values, in schema order.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $wire, )+
                    $name::Other(value) => value,
                }
            }

            /// The known variant for `value`, or `Other(value)`.
            pub fn parse(value: &str) -> Self {
                match value {
                    $( $wire => $name::$variant, )+
                    other => $name::Other(other.to_owned()),
                }
            }

            /// False for `Other(_)`.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::parse(value)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $( $wire => $name::$variant, )+
                    _ => $name::Other(value),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Ok(Self::parse(value))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(deserializer).map(Self::from)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    wire_enum! {
        /// A test enum.
        pub enum Color {
            Red => "Red",
            DarkBlue => "Dark_Blue",
        }
    }

    #[test]
    fn known_values_use_their_wire_strings() {
        assert_eq!(serde_json::to_string(&Color::DarkBlue).unwrap(), "\"Dark_Blue\"");
        assert_eq!(serde_json::from_str::<Color>("\"Red\"").unwrap(), Color::Red);
        assert_eq!(Color::KNOWN, &[Color::Red, Color::DarkBlue]);
        assert!(Color::Red.is_known());
        assert_eq!(Color::from("Dark_Blue"), Color::DarkBlue);
        assert_eq!(Color::from(String::from("Red")), Color::Red);
        assert_eq!("Red".parse::<Color>().unwrap(), Color::Red);
        assert_eq!(Color::DarkBlue.to_string(), "Dark_Blue");
    }

    #[test]
    fn unknown_values_round_trip_through_other() {
        let value: Color = serde_json::from_str("\"Ultraviolet\"").unwrap();
        assert_eq!(value, Color::Other("Ultraviolet".into()));
        assert!(!value.is_known());
        assert_eq!(serde_json::to_string(&value).unwrap(), "\"Ultraviolet\"");
        // Case matters: the wire strings are exact.
        assert_eq!(Color::from("red"), Color::Other("red".into()));
    }

    #[test]
    fn non_strings_are_rejected() {
        assert!(serde_json::from_str::<Color>("3").is_err());
        assert!(serde_json::from_str::<Color>("null").is_err());
    }
}
