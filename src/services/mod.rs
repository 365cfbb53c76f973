//! Typed services for every route of PROTOCOL.md §2, one module per service, each a thin view over
//! an [`HttpClient`]. Routes and shapes live here and nowhere else.

mod authenticate;
mod file_pull;
mod file_push;
mod persist;
mod retrieve;
mod status_flags;

/// Uploads live with downloads in [`crate::transfer`]; re-exported here where they used to be.
pub use crate::transfer::{UploadTarget, Uploads};
pub use authenticate::Authenticate;
pub use file_pull::FilePull;
pub use file_push::FilePush;
pub use persist::Persist;
pub use retrieve::Retrieve;
pub use status_flags::StatusFlags;

use crate::http::HttpClient;

impl HttpClient {
    /// The `authenticate/*` routes.
    pub fn authenticate(&self) -> Authenticate<'_> {
        Authenticate { http: self }
    }
    /// The `persist/*` routes.
    pub fn persist(&self) -> Persist<'_> {
        Persist { http: self }
    }
    /// The status flag routes.
    pub fn status_flags(&self) -> StatusFlags<'_> {
        StatusFlags { http: self }
    }
    /// The `file-push/*` routes.
    pub fn file_push(&self) -> FilePush<'_> {
        FilePush { http: self }
    }
    /// The `file-pull/*` routes.
    pub fn file_pull(&self) -> FilePull<'_> {
        FilePull { http: self }
    }
    /// The `retrieve/*` routes.
    pub fn retrieve(&self) -> Retrieve<'_> {
        Retrieve { http: self }
    }
}

/// Percent-encodes one path segment (ids come from callers; a `/` or `?` must not change the route).
pub(crate) fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_cannot_escape_their_place() {
        assert_eq!(super::segment("abc-123_x.y~z"), "abc-123_x.y~z");
        assert_eq!(super::segment("../a/b?c#d e"), "..%2Fa%2Fb%3Fc%23d%20e");
        assert_eq!(super::segment("é"), "%C3%A9");
    }
}
