use std::collections::HashMap;

use reqwest::Method;

use crate::error::Result;
use crate::http::HttpClient;
use crate::objects::{
    GetModelsRequest, Invocation, ListOrMap, Model, ModelBase, ModelPreview, Notification, QueryConstraints,
};

/// Models, model bases and versions, invocations and notifications.
///
/// ```no_run
/// use norman::objects::{GetModelsRequest, Model};
/// # async fn demo() -> norman::Result<()> {
/// let config = norman::AppConfig::from_env()?;
/// let http = norman::http::HttpClient::new(&config)?.with_token("token");
/// let model = Model::new("account-1", "my-model", "v1").with_asset("File");
/// let created = http.persist().create_models(&[model]).await?;
/// println!("model {} has asset {:?}", created[0].id, created[0].asset_id("File"));
/// let models = http.persist().get_models(&GetModelsRequest::default()).await?;
/// println!("{} models", models.len());
/// # Ok(())
/// # }
/// ```
pub struct Persist<'a> {
    pub(super) http: &'a HttpClient,
}

impl Persist<'_> {
    /// `POST persist/models/get`: models by id.
    pub async fn get_models(&self, request: &GetModelsRequest) -> Result<HashMap<String, Model>> {
        self.http.json(Method::POST, "persist/models/get", Some(request)).await
    }

    /// `POST persist/models/bases/get`: model bases (with one preview per version) by id.
    pub async fn get_model_bases(&self, request: &GetModelsRequest) -> Result<HashMap<String, ModelBase>> {
        self.http.json(Method::POST, "persist/models/bases/get", Some(request)).await
    }

    /// `POST persist/models/`: creates models (each under a new or given model base); the models as
    /// stored, in request order. The backend answers `[Model]` (current API) or `{id: Model}`
    /// (norman-core 0.1.0's): both are read.
    pub async fn create_models(&self, models: &[Model]) -> Result<Vec<Model>> {
        self.model_writes(Method::POST, "persist/models/", models).await
    }

    /// `POST persist/models/version`: adds versions to existing model bases; as [`Self::create_models`].
    pub async fn create_model_versions(&self, models: &[Model]) -> Result<Vec<Model>> {
        self.model_writes(Method::POST, "persist/models/version", models).await
    }

    /// `PATCH persist/models/`: updates models; as [`Self::create_models`].
    pub async fn update_models(&self, models: &[Model]) -> Result<Vec<Model>> {
        self.model_writes(Method::PATCH, "persist/models/", models).await
    }

    async fn model_writes(&self, method: Method, route: &str, models: &[Model]) -> Result<Vec<Model>> {
        let answer: ListOrMap<Model> = self.http.json(method, route, Some(models)).await?;
        Ok(answer.0)
    }

    /// `PATCH persist/models/version`: sets which version of each base is active.
    pub async fn update_model_versions(&self, previews: &[ModelPreview]) -> Result<Vec<ModelPreview>> {
        self.http.json(Method::PATCH, "persist/models/version", Some(previews)).await
    }

    /// `DELETE persist/models/`: deletes the models matching `constraints`; returns how many.
    pub async fn delete_models(&self, constraints: &QueryConstraints) -> Result<i64> {
        self.http.json(Method::DELETE, "persist/models/", Some(constraints)).await
    }

    /// `POST persist/invocations/get`: invocations by id.
    pub async fn get_invocations(
        &self,
        constraints: Option<&QueryConstraints>,
    ) -> Result<HashMap<String, Invocation>> {
        self.http.json(Method::POST, "persist/invocations/get", constraints).await
    }

    /// `POST persist/invocation/history/get`.
    pub async fn get_invocation_history(
        &self,
        constraints: Option<&QueryConstraints>,
    ) -> Result<HashMap<String, Invocation>> {
        self.http.json(Method::POST, "persist/invocation/history/get", constraints).await
    }

    /// `POST persist/invocations`: creates invocations.
    pub async fn create_invocations(&self, invocations: &[Invocation]) -> Result<Vec<Invocation>> {
        self.http.json(Method::POST, "persist/invocations", Some(invocations)).await
    }

    /// `POST persist/invocations/by-name`: `count` new invocations of each named model.
    pub async fn create_invocations_by_name(&self, counts: &HashMap<String, u32>) -> Result<Vec<Invocation>> {
        self.http.json(Method::POST, "persist/invocations/by-name", Some(counts)).await
    }

    /// `POST persist/notifications/get`.
    pub async fn get_notifications(
        &self,
        constraints: Option<&QueryConstraints>,
    ) -> Result<Vec<Notification>> {
        self.http.json(Method::POST, "persist/notifications/get", constraints).await
    }
}
