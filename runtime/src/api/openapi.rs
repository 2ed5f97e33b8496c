//! The OpenAPI document, generated from the handlers' annotations (utoipa) and served at
//! `/api/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

use super::{cases, comments, error, events, evidence, filters, histogram};
use crate::{ai, model};

/// The API description.
#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "ChronoTracer API", description = "Cases, evidence, the event timeline and its filter language, saved filters, labels and comments, and the AI chat (served by the AI chat service on the same origin)."),
    paths(
        super::healthz, super::filter_schema,
        cases::create, cases::list, cases::get_one,
        evidence::create, evidence::list, evidence::get_one, evidence::process,
        evidence::part_urls, evidence::complete_upload, evidence::abort_upload,
        events::search, histogram::histogram, events::get_one, events::put_label,
        events::delete_label, comments::list, comments::create, events::labels,
        events::devices, events::identities,
        filters::list, filters::create, filters::get_one, filters::update, filters::delete,
        crate::ai::http::chat,
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
        ai::engine::ChatRequest, ai::engine::ChatReply, ai::engine::ReplyKind,
        ai::catalog::Resolution,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&super::document()).unwrap()
    }

    #[test]
    fn every_operation_has_a_unique_operation_id() {
        let doc = doc();
        let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                uses.entry(id.to_owned())
                    .or_default()
                    .push(format!("{method} {path}"));
            }
        }
        let repeated: Vec<_> = uses.iter().filter(|(_, u)| u.len() > 1).collect();
        assert!(
            repeated.is_empty(),
            "operationIds used more than once: {repeated:?}"
        );
        assert!(operations >= 28, "{operations}");
    }

    #[test]
    fn the_ai_chat_request_and_reply_are_described() {
        let doc = doc();
        let op = &doc["paths"]["/api/v1/ai/chat"]["post"];
        assert_eq!(op["operationId"], "ai_chat");
        assert_eq!(
            op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ChatRequest"
        );
        assert_eq!(
            op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ChatReply"
        );
        let schemas = &doc["components"]["schemas"];
        let keys = |name: &str| -> Vec<String> {
            let mut k: Vec<String> = schemas[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} missing"))
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        // the serde field names of the types the chat handler reads and writes
        assert_eq!(
            keys("ChatRequest"),
            ["case_id", "question", "session_id", "tz"]
        );
        assert_eq!(
            keys("ChatReply"),
            [
                "count",
                "filter",
                "kind",
                "message",
                "resolved",
                "session_id",
                "summary"
            ]
        );
        assert_eq!(keys("Resolution"), ["field", "ids", "matched", "name"]);
        assert_eq!(
            schemas["ReplyKind"]["enum"],
            serde_json::json!(["filter", "clarification", "refusal", "no_filter"])
        );
    }
}
