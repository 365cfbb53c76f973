use reqwest::Method;

use super::segment;
use crate::error::Result;
use crate::http::{ByteStream, HttpClient};

/// Raw byte streams of model assets and invocation inputs and outputs.
///
/// [`Downloads`](crate::transfer::Downloads) adds the length and checksum check.
///
/// ```no_run
/// # async fn demo() -> norman::Result<()> {
/// let config = norman::AppConfig::from_env()?;
/// let http = norman::http::HttpClient::new(&config)?.with_token("token");
/// let mut stream = http.retrieve().get_model_asset("account-1", "model-id", "asset-id", None).await?;
/// let mut received = 0;
/// while let Some(chunk) = stream.next_chunk().await {
///     received += chunk?.len();
/// }
/// println!("{received} bytes (announced: {:?})", stream.content_length);
/// # Ok(())
/// # }
/// ```
pub struct Retrieve<'a> {
    pub(super) http: &'a HttpClient,
}

/// Bytes `start..=end` (`end` `None`: to the end of the file).
pub type Range = Option<(u64, Option<u64>)>;

impl Retrieve<'_> {
    /// `GET retrieve/asset/{account_id}/{model_id}/{asset_id}`.
    pub async fn get_model_asset(
        &self,
        account_id: &str,
        model_id: &str,
        asset_id: &str,
        range: Range,
    ) -> Result<ByteStream> {
        self.get(&["asset", account_id, model_id, asset_id], range).await
    }

    /// `GET retrieve/input/{account_id}/{model_id}/{invocation_id}/{input_id}`.
    pub async fn get_invocation_input(
        &self,
        account_id: &str,
        model_id: &str,
        invocation_id: &str,
        input_id: &str,
        range: Range,
    ) -> Result<ByteStream> {
        self.get(&["input", account_id, model_id, invocation_id, input_id], range).await
    }

    /// `GET retrieve/output/{account_id}/{model_id}/{invocation_id}/{output_id}`.
    pub async fn get_invocation_output(
        &self,
        account_id: &str,
        model_id: &str,
        invocation_id: &str,
        output_id: &str,
        range: Range,
    ) -> Result<ByteStream> {
        self.get(&["output", account_id, model_id, invocation_id, output_id], range).await
    }

    async fn get(&self, parts: &[&str], range: Range) -> Result<ByteStream> {
        let route = std::iter::once("retrieve".to_owned())
            .chain(std::iter::once(parts[0].to_owned()))
            .chain(parts[1..].iter().map(|p| segment(p)))
            .collect::<Vec<_>>()
            .join("/");
        self.http.stream(Method::GET, &route, None::<&()>, range).await
    }
}
