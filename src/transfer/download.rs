//! Downloads: request a file, hash every byte as it arrives, and accept the result only when its
//! length is the one the backend announced; to a file, only through a temporary file renamed into
//! place once verified.

use std::path::Path;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::FileTarget;
use crate::checksum::{Checksum, Hasher};
use crate::error::{Error, Result};
use crate::http::{ByteStream, HttpClient};
use crate::streaming::PartFile;

/// What a verified download received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadSummary {
    /// Bytes received.
    pub bytes: u64,
    /// xxh3-64 of the bytes received.
    pub checksum: Checksum,
}

/// The hash-and-length check of a body: feed it every chunk, then [`Verifier::finish`] says
/// whether the body was whole.
#[derive(Clone, Default)]
pub struct Verifier {
    hasher: Hasher,
    expected: Option<u64>,
}

impl Verifier {
    /// A check against `expected` bytes (`None`: the sender announced no length).
    pub fn new(expected: Option<u64>) -> Self {
        Self { hasher: Hasher::new(), expected }
    }

    /// Feeds one chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether no byte was fed yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The announced length, if any.
    pub fn expected(&self) -> Option<u64> {
        self.expected
    }

    /// xxh3-64 of the bytes fed so far.
    pub fn checksum(&self) -> Checksum {
        self.hasher.digest()
    }

    /// The body ended: [`Error::Truncated`] when fewer bytes came than announced,
    /// [`Error::Oversize`] when more did.
    pub fn finish(&self, during: &'static str) -> Result<DownloadSummary> {
        let received = self.len();
        match self.expected {
            Some(expected) if received < expected => Err(Error::Truncated { during, expected, received }),
            Some(expected) if received > expected => Err(Error::Oversize { limit: expected }),
            _ => Ok(DownloadSummary { bytes: received, checksum: self.checksum() }),
        }
    }
}

/// A download whose every chunk is hashed and whose end is checked against the announced length.
pub struct VerifiedStream {
    stream: Option<ByteStream>,
    verifier: Verifier,
}

impl VerifiedStream {
    /// Verifies `stream` against its announced length.
    pub fn new(stream: ByteStream) -> Self {
        let verifier = Verifier::new(stream.content_length);
        Self { stream: Some(stream), verifier }
    }

    /// The length the backend announced.
    pub fn content_length(&self) -> Option<u64> {
        self.verifier.expected()
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.verifier.len()
    }

    /// xxh3-64 of the bytes received so far (of the whole file once the stream ended).
    pub fn checksum(&self) -> Checksum {
        self.verifier.checksum()
    }

    /// The next chunk; `Ok(None)` at the end of a whole file (and after). A short (or long) body
    /// is an error at its end; after an error the stream is over.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let Some(stream) = self.stream.as_mut() else { return Ok(None) };
        match stream.next_chunk().await {
            Some(Ok(chunk)) => {
                self.verifier.update(&chunk);
                Ok(Some(chunk))
            }
            Some(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            None => {
                self.stream = None;
                self.verifier.finish("downloading").map(|_| None)
            }
        }
    }

    /// Writes the file to `dest` through a temporary file beside it: `dest` appears (atomically
    /// replaced) only once every announced byte arrived and reached the disk; on any failure the
    /// temporary file is removed and `dest` is untouched. `progress` is told the bytes so far.
    pub async fn save_to(mut self, dest: &Path, mut progress: impl FnMut(u64)) -> Result<DownloadSummary> {
        let mut part = PartFile::create_beside(dest).await?;
        while let Some(chunk) = self.next_chunk().await? {
            part.writer().write_all(&chunk).await.map_err(Error::io("writing the downloaded file"))?;
            progress(self.received());
        }
        part.commit(dest).await?;
        Ok(self.summary())
    }

    fn summary(&self) -> DownloadSummary {
        DownloadSummary { bytes: self.received(), checksum: self.checksum() }
    }
}

/// Downloads over an [`HttpClient`] (the `retrieve` routes).
pub struct Downloads<'a> {
    http: &'a HttpClient,
}

impl<'a> Downloads<'a> {
    /// Downloads over `http`.
    pub fn new(http: &'a HttpClient) -> Self {
        Self { http }
    }

    /// Requests `target` and waits for the response headers (an HTTP error when there is no such
    /// file).
    pub async fn open(&self, target: &FileTarget) -> Result<VerifiedStream> {
        let retrieve = self.http.retrieve();
        let stream = match target {
            FileTarget::Asset { account_id, model_id, asset_id } => {
                retrieve.get_model_asset(account_id, model_id, asset_id, None).await
            }
            FileTarget::Input { account_id, model_id, invocation_id, input_id } => {
                retrieve.get_invocation_input(account_id, model_id, invocation_id, input_id, None).await
            }
            FileTarget::Output { account_id, model_id, invocation_id, output_id } => {
                retrieve.get_invocation_output(account_id, model_id, invocation_id, output_id, None).await
            }
        }?;
        Ok(VerifiedStream::new(stream))
    }

    /// Downloads `target` into the file at `dest`, atomically (see [`VerifiedStream::save_to`]).
    pub async fn to_file(
        &self,
        target: &FileTarget,
        dest: &Path,
        progress: impl FnMut(u64),
    ) -> Result<DownloadSummary> {
        self.open(target).await?.save_to(dest, progress).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_accepts_only_the_announced_length() {
        let mut v = Verifier::new(Some(5));
        v.update(b"abc");
        assert!(matches!(v.finish("x"), Err(Error::Truncated { expected: 5, received: 3, .. })));
        v.update(b"de");
        let done = v.finish("x").unwrap();
        assert_eq!((done.bytes, done.checksum), (5, Checksum::of(b"abcde")));
        v.update(b"f");
        assert!(matches!(v.finish("x"), Err(Error::Oversize { limit: 5 })));
        let mut unknown = Verifier::new(None);
        unknown.update(b"anything");
        assert_eq!(unknown.finish("x").unwrap().bytes, 8);
    }

    /// A one-connection HTTP server on loopback answering `head` then `body`, then closing.
    async fn serve_once(head: &'static str, body: &'static [u8]) -> HttpClient {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request).await;
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body).await;
        });
        let config = crate::AppConfig {
            base_url: format!("http://127.0.0.1:{port}/v0/"),
            retries: 0,
            ..crate::AppConfig::default()
        };
        HttpClient::new(&config).unwrap()
    }

    fn target() -> FileTarget {
        FileTarget::Asset { account_id: "a".into(), model_id: "m".into(), asset_id: "x".into() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_body_never_reaches_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("kept.bin");
        std::fs::write(&dest, b"precious").unwrap();
        let http =
            serve_once("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n", b"abc").await;
        let err = Downloads::new(&http).to_file(&target(), &dest, |_| {}).await.unwrap_err();
        assert!(matches!(err.kind(), crate::ErrorKind::Truncated | crate::ErrorKind::Network), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"precious");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["kept.bin"], "no temporary file is left behind");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_whole_body_replaces_the_destination_with_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("kept.bin");
        std::fs::write(&dest, b"old").unwrap();
        let http =
            serve_once("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", b"hello").await;
        let mut seen = 0;
        let done = Downloads::new(&http).to_file(&target(), &dest, |n| seen = n).await.unwrap();
        assert_eq!((done.bytes, done.checksum, seen), (5, Checksum::of(b"hello"), 5));
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
