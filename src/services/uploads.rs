//! One call per upload kind that does the whole job: allocate a socket, stream the file with its
//! checksum, complete the transfer with that checksum.

use std::path::Path;

use crate::config::AppConfig;
use crate::error::{Error, Result};
use crate::http::HttpClient;
use crate::objects::{ChecksumRequest, SocketAssetPairingRequest, SocketInputPairingRequest};
use crate::socket::{SocketClient, UploadSummary};

/// What an upload is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadTarget {
    Asset { account_id: String, model_id: String, asset_id: String },
    Input { account_id: String, model_id: String, invocation_id: String, input_id: String },
}

/// Whole-file uploads over an [`HttpClient`] (for the routes) and the upload socket.
pub struct Uploads<'a> {
    http: &'a HttpClient,
    socket: SocketClient,
}

impl<'a> Uploads<'a> {
    pub fn new(http: &'a HttpClient, config: &AppConfig) -> Self {
        Self { http, socket: SocketClient::new(config.clone()) }
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
        let progress: Box<dyn FnMut(u64) + Send> = Box::new(move |sent| progress(sent, size));
        // Read inline, as UploadStream::write_file does (see streaming::blocking_io for why).
        let mut reader = crate::streaming::InlineFileReader(file);
        self.push_from(target, &mut reader, size, Some(progress), "reading the file to upload").await
    }

    /// Uploads `size` bytes from `reader` for `target` (a stream whose length is known up front).
    pub async fn push_reader<R: tokio::io::AsyncRead + Unpin>(
        &self,
        target: &UploadTarget,
        reader: &mut R,
        size: u64,
    ) -> Result<UploadSummary> {
        self.push_from(target, reader, size, None, "reading the stream to upload").await
    }

    /// Allocate, stream `size` bytes from `reader`, complete with the checksum.
    async fn push_from<R: tokio::io::AsyncRead + Unpin>(
        &self,
        target: &UploadTarget,
        reader: &mut R,
        size: u64,
        progress: Option<Box<dyn FnMut(u64) + Send>>,
        during: &'static str,
    ) -> Result<UploadSummary> {
        let pairing = self.allocate(target, size).await?;
        let mut upload = self.socket.open(&pairing).await?;
        if let Some(progress) = progress {
            upload.on_progress(progress);
        }
        let sent = upload.write_from(reader).await?;
        if sent != size {
            // The source changed under us; the backend would reject it anyway, so say why here.
            return Err(Error::Truncated { during, expected: size, received: sent });
        }
        let summary = upload.finish().await?;
        self.complete(&pairing.pairing_id, &summary).await?;
        Ok(summary)
    }

    /// Allocates the socket for `target`.
    pub async fn allocate(
        &self,
        target: &UploadTarget,
        size: u64,
    ) -> Result<crate::socket::SocketPairingResponse> {
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

    async fn complete(&self, pairing_id: &str, summary: &UploadSummary) -> Result<()> {
        let request =
            ChecksumRequest { pairing_id: pairing_id.to_owned(), checksum: summary.checksum.to_hex() };
        self.http.file_push().complete_file_transfer(&request).await
    }
}
