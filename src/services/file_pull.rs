use reqwest::Method;

use super::segment;
use crate::error::Result;
use crate::http::HttpClient;
use crate::objects::{AssetDownloadRequest, InputDownloadRequest, OutputDownloadRequest, TrackedDownload};

/// The backend fetches files from links; this submits the links and reads the progress.
///
/// ```no_run
/// use norman::objects::AssetDownloadRequest;
/// # async fn demo() -> norman::Result<()> {
/// let config = norman::AppConfig::from_env()?;
/// let http = norman::http::HttpClient::new(&config)?.with_token("token");
/// let request = AssetDownloadRequest {
///     account_id: "account-1".into(),
///     model_id: "model-id".into(),
///     links: vec!["https://example.invalid/weights.bin".into()],
///     asset_id: "asset-id".into(),
///     asset_name: "File".into(),
/// };
/// http.file_pull().submit_asset_links(&request).await?;
/// let (done, total) = http.file_pull().get_download_metadata("asset-id").await?.progress();
/// println!("{done} of {total} bytes fetched");
/// # Ok(())
/// # }
/// ```
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
