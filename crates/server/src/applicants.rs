//! `GET /v1/applicants/{id}/matches` and `DELETE /v1/applicants/{id}`: the
//! identity registry (issue 18), when it is switched on. Matches and
//! erasures are scoped to the caller's API key and written to the
//! registry's audit table.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::error::ServerError;
use crate::AppState;

/// Answer of `GET /v1/applicants/{id}/matches`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplicantMatches {
    pub applicant_id: String,
    /// Recorded matches with other applicants, newest first.
    pub matches: Vec<candor_identity::Match>,
}

/// Answer of `DELETE /v1/applicants/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplicantErased {
    pub applicant_id: String,
    /// Face and text templates deleted (their matches went with them).
    pub templates_deleted: u64,
}

fn registry(state: &AppState) -> Result<&candor_identity::Registry, ServerError> {
    state.inner.identity.as_deref().ok_or_else(|| {
        ServerError::NotFound(
            "the identity registry is off on this server (CANDOR_IDENTITY=true turns it on)".into(),
        )
    })
}

fn scope(caller: Option<Extension<Caller>>) -> String {
    caller
        .and_then(|Extension(c)| c.key)
        .map(hex::encode)
        .unwrap_or_default()
}

fn registry_error(e: candor_identity::RegistryError) -> ServerError {
    ServerError::JobStoreUnavailable(format!("identity registry: {e}"))
}

/// Other applicants whose face or resume matched this applicant's.
#[utoipa::path(
    get,
    path = "/v1/applicants/{id}/matches",
    tag = "identity",
    params(("id" = String, Path, description = "applicant id")),
    responses(
        (status = 200, description = "Matches, newest first.", body = ApplicantMatches),
        (status = 404, description = "The identity registry is off.", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_matches(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<ApplicantMatches>, ServerError> {
    let reg = registry(&state)?;
    let matches = reg
        .matches_of(&scope(caller), &id)
        .await
        .map_err(registry_error)?;
    Ok(Json(ApplicantMatches {
        applicant_id: id,
        matches,
    }))
}

/// Erase an applicant's face and text templates and their matches.
#[utoipa::path(
    delete,
    path = "/v1/applicants/{id}",
    tag = "identity",
    params(("id" = String, Path, description = "applicant id")),
    responses(
        (status = 200, description = "Erased.", body = ApplicantErased),
        (status = 404, description = "The identity registry is off.", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_applicant(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(id): Path<String>,
) -> Result<Json<ApplicantErased>, ServerError> {
    let reg = registry(&state)?;
    let n = reg
        .erase(&scope(caller), &id)
        .await
        .map_err(registry_error)?;
    tracing::info!(templates = n, "applicant erased from the identity registry");
    Ok(Json(ApplicantErased {
        applicant_id: id,
        templates_deleted: n,
    }))
}
