//! The OpenAPI document, generated from the handlers' annotations (utoipa) and served at
//! `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::{cases, error, events, evidence};
use crate::model;

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "ChronoTracer API", description = "Cases, evidence, the event timeline and its filter language."),
    paths(
        super::healthz, super::filter_schema,
        cases::create, cases::list, cases::get_one,
        evidence::create, evidence::list, evidence::get_one, evidence::process,
        events::search, events::get_one, events::put_label, events::delete_label,
        events::devices, events::identities,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail,
        model::Case, model::Evidence, model::Device, model::Identity, model::Event,
        model::DeviceRef, model::IdentityRef, model::Provenance, model::Label,
        cases::NewCase, cases::CaseList,
        evidence::NewEvidence, evidence::Upload, evidence::EvidenceUpload, evidence::EvidenceList,
        events::SearchPage, events::Range, events::EventDetail, events::LabelBody,
        events::DeviceList, events::IdentityList,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

/// Adds the bearer (JWT) security scheme.
#[derive(Debug)]
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as pretty-printed JSON (what `chrono-api openapi` prints).
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// `GET /api/v1/openapi.json`.
pub(super) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
