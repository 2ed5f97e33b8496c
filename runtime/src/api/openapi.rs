//! The OpenAPI document, generated from the handlers' annotations (utoipa) and served at
//! `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::{cases, comments, error, events, evidence, filters, histogram};
use crate::model;

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "ChronoTracer API", description = "Cases, evidence, the event timeline and its filter language, saved filters, labels and comments."),
    paths(
        super::healthz, super::filter_schema,
        cases::create, cases::list, cases::get_one,
        evidence::create, evidence::list, evidence::get_one, evidence::process,
        evidence::part_urls, evidence::complete_upload, evidence::abort_upload,
        events::search, histogram::histogram, events::get_one, events::put_label,
        events::delete_label, comments::list, comments::create, events::labels,
        events::devices, events::identities,
        filters::list, filters::create, filters::get_one, filters::update, filters::delete,
    ),
    components(schemas(
        error::ErrorBody, error::ErrorDetail,
        model::Case, model::Evidence, model::Device, model::Identity, model::Event,
        model::DeviceRef, model::IdentityRef, model::Provenance, model::Label, model::Comment,
        cases::NewCase, cases::CaseList,
        evidence::NewEvidence, evidence::Upload, evidence::EvidenceUpload, evidence::EvidenceList,
        evidence::PartsRequest, evidence::PartUrl, evidence::PartUrls,
        evidence::CompleteUpload, evidence::CompletedPart,
        events::SearchPage, events::Range, events::EventDetail, events::EvidenceRef,
        events::LabelBody, events::LabelCount, events::LabelList,
        events::DeviceList, events::IdentityList,
        histogram::Histogram, histogram::HistogramBucket,
        comments::NewComment, comments::CommentList,
        filters::SavedFilter, filters::SavedFilterBody, filters::SavedFilterList,
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
