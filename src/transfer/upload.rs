//! Uploads: allocate a socket, stream the file with its checksum, complete the transfer with that
//! checksum. One [`Upload`] is one stream, whether the library allocated its pairing (then
//! [`Upload::finish`] also completes the transfer) or the caller brought one.

use std::path::Path;

use tokio::io::AsyncRead;

use crate::config::AppConfig;
use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::objects::{ChecksumRequest, SocketAssetPairingRequest, SocketInputPairingRequest};
use crate::socket::{SocketPairingResponse, UploadStream, UploadSummary};

/// What an upload is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadTarget {
    /// A model asset.
    Asset {
        /// Id of the account.
        account_id: String,
        /// Id of the model.
        model_id: String,
        /// Id of the asset.
        asset_id: String,
    },
    /// An invocation input.
    Input {
        /// Id of the account.
        account_id: String,
        /// Id of the model.
        model_id: String,
        /// Id of the invocation.
        invocation_id: String,
        /// Id of the input.
        input_id: String,
    },
}

/// Whole-file and streaming uploads over an [`HttpClient`] (for the routes) and the upload socket.
pub struct Uploads<'a> {
    http: &'a HttpClient,
    config: AppConfig,
}

/// One open upload stream. Write with [`Upload::write`] or [`Upload::write_from`], then
/// [`Upload::finish`]. Dropping it unfinished (or [`Upload::abort`]) resets the connection, so the
/// receiver keeps nothing.
pub struct Upload {
    stream: UploadStream,
    /// Set when the library allocated the pairing: finish then completes the transfer.
    complete: Option<(HttpClient, String)>,
}

impl Upload {
    /// Opens a stream on a pairing the caller obtained (validated first; an authentication header
    /// shorter than 16 bytes is refused, PROTOCOL.md §4). Completing the transfer with the backend
    /// is then the caller's job.
    pub async fn open(pairing: &SocketPairingResponse, config: &AppConfig) -> Result<Self> {
        let stream = UploadStream::connect(&pairing.validate_for_upload()?, config).await?;
        Ok(Self { stream, complete: None })
    }

    /// Calls `progress` with the file bytes handed to the socket so far, once per chunk.
    pub fn on_progress(&mut self, progress: impl FnMut(u64) + Send + 'static) {
        self.stream.on_progress(progress);
    }

    /// Sends `data`: hashed and encrypted straight into the send buffer (the only copy).
    pub async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.stream.write(data).await
    }

    /// Sends everything `reader` yields, read straight into the send buffer; returns the count.
    pub async fn write_from<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> Result<u64> {
        self.stream.write_from(reader).await
    }

    /// File bytes accepted so far and their checksum.
    pub fn summary(&self) -> UploadSummary {
        self.stream.summary()
    }

    /// Sends what is buffered, closes the stream and, when the library allocated the pairing,
    /// completes the transfer with the backend (which checks size and checksum).
    pub async fn finish(self) -> Result<UploadSummary> {
        let summary = self.stream.finish().await?;
        if let Some((http, pairing_id)) = self.complete {
            let request = ChecksumRequest { pairing_id, checksum: summary.checksum.to_hex() };
            http.file_push().complete_file_transfer(&request).await?;
        }
        Ok(summary)
    }

    /// Abandons the upload: the connection is reset, the receiver keeps nothing.
    pub fn abort(self) {
        drop(self)
    }
}

impl<'a> Uploads<'a> {
    /// Uploads over `http`, with `config`'s socket settings.
    pub fn new(http: &'a HttpClient, config: &AppConfig) -> Self {
        Self { http, config: config.clone() }
    }

    /// Uploads the file at `path` for `target`: allocate, stream, complete. `progress` is told the
    /// bytes sent so far and the total.
    pub async fn push_file(
        &self,
        target: &UploadTarget,
        path: &Path,
        mut progress: impl FnMut(u64, u64) + Send + 'static,
    ) -> Result<UploadSummary> {
        let file = std::fs::File::open(path).map_err(Error::io("opening the file to upload"))?;
        let size = file.metadata().map_err(Error::io("reading the size of the file to upload"))?.len();
        // Read inline, on the thread that encrypts and sends (see streaming::blocking_io for why).
        let mut reader = crate::streaming::InlineFileReader(file);
        let mut upload = self.begin(target, size).await?;
        upload.on_progress(move |sent| progress(sent, size));
        Self::stream_all(upload, &mut reader, size, "reading the file to upload").await
    }

    /// Uploads `size` bytes from `reader` for `target` (a stream whose length is known up front).
    pub async fn push_reader<R: AsyncRead + Unpin>(
        &self,
        target: &UploadTarget,
        reader: &mut R,
        size: u64,
    ) -> Result<UploadSummary> {
        let upload = self.begin(target, size).await?;
        Self::stream_all(upload, reader, size, "reading the stream to upload").await
    }

    /// Allocates a socket for `target` and a file of `size` bytes and opens the stream on it;
    /// [`Upload::finish`] then completes the transfer.
    pub async fn begin(&self, target: &UploadTarget, size: u64) -> Result<Upload> {
        let pairing = self.allocate(target, size).await?;
        let mut upload = Upload::open(&pairing, &self.config).await?;
        upload.complete = Some((self.http.clone(), pairing.pairing_id));
        Ok(upload)
    }

    async fn stream_all<R: AsyncRead + Unpin>(
        mut upload: Upload,
        reader: &mut R,
        size: u64,
        during: &'static str,
    ) -> Result<UploadSummary> {
        let sent = upload.write_from(reader).await?;
        if sent != size {
            // The source changed under us; the backend would reject it anyway, so say why here.
            return Err(Error::Truncated { during, expected: size, received: sent });
        }
        upload.finish().await
    }

    /// Allocates the socket for `target` (`file-push/socket/pair/asset|input`).
    pub async fn allocate(&self, target: &UploadTarget, size: u64) -> Result<SocketPairingResponse> {
        let file_push = self.http.file_push();
        match target {
            UploadTarget::Asset { account_id, model_id, asset_id } => {
                file_push
                    .allocate_socket_for_asset(&SocketAssetPairingRequest {
                        account_id: account_id.clone(),
                        model_id: model_id.clone(),
                        file_size_in_bytes: size,
                        asset_id: asset_id.clone(),
                    })
                    .await
            }
            UploadTarget::Input { account_id, model_id, invocation_id, input_id } => {
                file_push
                    .allocate_socket_for_input(&SocketInputPairingRequest {
                        account_id: account_id.clone(),
                        model_id: model_id.clone(),
                        file_size_in_bytes: size,
                        invocation_id: invocation_id.clone(),
                        input_id: input_id.clone(),
                    })
                    .await
            }
        }
    }
}
