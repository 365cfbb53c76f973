use reqwest::Method;

use crate::error::Result;
use crate::http::HttpClient;
use crate::objects::{ChecksumRequest, SocketAssetPairingRequest, SocketInputPairingRequest};
use crate::socket::SocketPairingResponse;

/// Upload sockets: allocate one for an asset or an input, then complete the transfer.
///
/// The low-level steps; [`Uploads::push_file`](crate::transfer::Uploads::push_file) does all three.
///
/// ```no_run
/// use norman::objects::{ChecksumRequest, SocketAssetPairingRequest};
/// use norman::transfer::Upload;
/// # async fn demo() -> norman::Result<()> {
/// let config = norman::AppConfig::from_env()?;
/// let http = norman::http::HttpClient::new(&config)?.with_token("token");
/// let bytes = b"the file";
/// let request = SocketAssetPairingRequest {
///     account_id: "account-1".into(),
///     model_id: "model-id".into(),
///     asset_id: "asset-id".into(),
///     file_size_in_bytes: bytes.len() as u64,
/// };
/// let pairing = http.file_push().allocate_socket_for_asset(&request).await?;
/// let mut upload = Upload::open(&pairing, &config).await?;
/// upload.write(bytes).await?;
/// let summary = upload.finish().await?;
/// let done = ChecksumRequest { pairing_id: pairing.pairing_id.clone(), checksum: summary.checksum.to_hex() };
/// http.file_push().complete_file_transfer(&done).await?;
/// # Ok(())
/// # }
/// ```
pub struct FilePush<'a> {
    pub(super) http: &'a HttpClient,
}

impl FilePush<'_> {
    /// `POST file-push/socket/pair/asset`.
    pub async fn allocate_socket_for_asset(
        &self,
        request: &SocketAssetPairingRequest,
    ) -> Result<SocketPairingResponse> {
        self.http.json(Method::POST, "file-push/socket/pair/asset", Some(request)).await
    }

    /// `POST file-push/socket/pair/input`.
    pub async fn allocate_socket_for_input(
        &self,
        request: &SocketInputPairingRequest,
    ) -> Result<SocketPairingResponse> {
        self.http.json(Method::POST, "file-push/socket/pair/input", Some(request)).await
    }

    /// `POST file-push/socket/complete`: the backend compares the checksum with what it received.
    pub async fn complete_file_transfer(&self, request: &ChecksumRequest) -> Result<()> {
        self.http.bytes(Method::POST, "file-push/socket/complete", Some(request)).await.map(drop)
    }
}
