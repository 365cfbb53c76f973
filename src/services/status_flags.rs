use std::collections::HashMap;

use reqwest::Method;

use crate::error::Result;
use crate::http::HttpClient;
use crate::objects::{
    BinaryRelation, FilterClause, FilterNode, FilterScalar, FilterValue, QueryConstraints, StatusFlag,
};

/// Table name the flag routes filter on.
pub const FLAGS_TABLE: &str = "Status_Flags";

/// Status flags of models, assets, invocations, inputs and outputs.
///
/// ```no_run
/// use norman::objects::{entity_state, EntityState};
/// # async fn demo() -> norman::Result<()> {
/// let config = norman::AppConfig::from_env()?;
/// let http = norman::http::HttpClient::new(&config)?.with_token("token");
/// let flags = http.status_flags().get_flags_of(&["asset-id"]).await?;
/// let state = entity_state(flags.get("asset-id").map_or(&[][..], Vec::as_slice));
/// println!("done: {}", state == EntityState::Done);
/// # Ok(())
/// # }
/// ```
pub struct StatusFlags<'a> {
    pub(super) http: &'a HttpClient,
}

impl StatusFlags<'_> {
    /// `POST persist/flags/get`: flags grouped by entity id.
    pub async fn get_status_flags(
        &self,
        constraints: Option<&QueryConstraints>,
    ) -> Result<HashMap<String, Vec<StatusFlag>>> {
        self.http.json(Method::POST, "persist/flags/get", constraints).await
    }

    /// Flags of the given entities.
    pub async fn get_flags_of(&self, entity_ids: &[&str]) -> Result<HashMap<String, Vec<StatusFlag>>> {
        let ids: Vec<FilterScalar> =
            entity_ids.iter().map(|id| FilterScalar::String(id.to_string())).collect();
        let node = FilterNode::new(FLAGS_TABLE, "Entity_ID", BinaryRelation::In, FilterValue::List(ids));
        let constraints = QueryConstraints::with_filter(FilterClause::all([node]));
        self.get_status_flags(Some(&constraints)).await
    }
}
