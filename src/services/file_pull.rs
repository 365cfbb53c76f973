use reqwest::Method;

use super::segment;
use crate::error::Result;
use crate::http::HttpClient;
use crate::objects::{AssetDownloadRequest, InputDownloadRequest, OutputDownloadRequest, TrackedDownload};

/// The backend fetches files from links; this submits the links and reads the progress.
pub struct FilePull<'a> {
    pub(super) http: &'a HttpClient,
}

impl FilePull<'_> {
    /// `GET file-pull/metadata/{entity_id}`.
    pub async fn get_download_metadata(&self, entity_id: &str) -> Result<TrackedDownload> {
        let route = format!("file-pull/metadata/{}", segment(entity_id));
        self.http.json(Method::GET, &route, None::<&()>).await
    }

    /// `POST file-pull/upload/assets`.
    pub async fn submit_asset_links(&self, request: &AssetDownloadRequest) -> Result<Vec<String>> {
        self.http.json(Method::POST, "file-pull/upload/assets", Some(request)).await
    }

    /// `POST file-pull/upload/inputs`.
    pub async fn submit_input_links(&self, request: &InputDownloadRequest) -> Result<Vec<String>> {
        self.http.json(Method::POST, "file-pull/upload/inputs", Some(request)).await
    }

    /// `POST file-pull/upload/outputs`.
    pub async fn submit_output_links(&self, request: &OutputDownloadRequest) -> Result<Vec<String>> {
        self.http.json(Method::POST, "file-pull/upload/outputs", Some(request)).await
    }
}
