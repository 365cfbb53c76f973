use reqwest::Method;

use crate::error::Result;
use crate::http::HttpClient;
use crate::objects::{ChecksumRequest, SocketAssetPairingRequest, SocketInputPairingRequest};
use crate::socket::SocketPairingResponse;

/// Upload sockets: allocate one for an asset or an input, then complete the transfer.
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
