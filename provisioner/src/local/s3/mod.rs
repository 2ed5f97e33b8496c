//! The local S3 server (component `s3`, `chronoctl local serve-s3`): buckets and objects
//! on disk under `<dir>/s3/`, so uploaded evidence survives `down`/`up`, a `kill -9` of any
//! component and concurrent uploads — which moto's in-memory S3 replayed from a request
//! recording did not (issue 18).
//!
//! Layers, outside in:
//! * this module's HTTP front: the health check ([`HEALTH_PATH`]), S3's CORS answers from
//!   the bucket's own rules (a preflight that matches no rule gets 403, like S3), and an
//!   immediate `400` for an object `PUT` sent as an HTML form (`curl -d` and urllib's
//!   default content type), which would otherwise fail the signature check of an upload URL
//!   with a message that does not say what is wrong;
//! * s3s: the S3 REST protocol and SigV4 (headers and presigned URLs) with the emulator's
//!   credentials, exactly as strict as S3 about signed headers;
//! * [`api`]: the operations, verifying declared checksums before anything is stored;
//! * [`store`]: atomic, `fsync`ed files.
//!
//! DynamoDB and Step Functions stay on moto (see [`super::moto`]).

pub mod api;
pub mod store;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::LocalError;
use store::{CorsRule, Store};

/// Component name (state file, logs, `status`).
pub const S3: &str = "s3";
/// Health check path (`_` is not allowed in bucket names, so no bucket shadows it).
pub const HEALTH_PATH: &str = "/_chrono/health";

/// An S3 error document (<https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>).
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message></Error>",
        escape(code),
        escape(message)
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// The bucket and key of a path-style request path.
fn bucket_and_key(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('/');
    path.split_once('/').unwrap_or((path, ""))
}

/// Whether `value` matches `pattern`, which may hold one `*` (S3's CORS wildcards).
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(value),
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value[..head.len()].eq_ignore_ascii_case(head)
                && value[value.len() - tail.len()..].eq_ignore_ascii_case(tail)
        }
    }
}

/// The first rule allowing `origin` to send `method` with `headers` (S3 evaluates the
/// rules in order: <https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html>).
pub fn matching_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[&str],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| r.allowed_headers.iter().any(|a| wildcard(a, h)))
    })
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// The headers every answer `rule` allows carries: the origin, and what the browser may
/// read.
fn allow(headers: &mut HeaderMap, origin: &str, rule: &CorsRule) {
    set(headers, "access-control-allow-origin", origin);
    if !rule.expose_headers.is_empty() {
        set(
            headers,
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
}

fn cors_rules(store: &Store, bucket: &str) -> Vec<CorsRule> {
    store.bucket(bucket).map(|b| b.cors).unwrap_or_default()
}

/// A preflight request, answered from the bucket's CORS rules.
fn preflight(store: &Store, bucket: &str, request: &HeaderMap) -> Response {
    let get = |name: &str| request.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (get("origin"), get("access-control-request-method")) else {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let asked: Vec<String> = get("access-control-request-headers")
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let asked_refs: Vec<&str> = asked.iter().map(String::as_str).collect();
    let rules = cors_rules(store, bucket);
    let Some(rule) = matching_rule(&rules, origin, method, &asked_refs) else {
        return s3_error(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        );
    };
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    allow(h, origin, rule);
    set(
        h,
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if !asked.is_empty() {
        set(h, "access-control-allow-headers", &asked.join(", "));
    }
    if let Some(age) = rule.max_age_seconds {
        set(h, "access-control-max-age", &age.to_string());
    }
    set(
        h,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
    resp
}

/// Whether `content_type` is an HTML form encoding.
fn is_form(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/x-www-form-urlencoded" || essence == "multipart/form-data"
}

/// The HTTP front of the S3 service: health, CORS, and form uploads refused at once.
async fn front(State(store): State<Arc<Store>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let (bucket, key) = bucket_and_key(&path);
    let bucket = bucket.to_owned();
    if req.method() == Method::OPTIONS {
        return preflight(&store, &bucket, req.headers());
    }
    if req.method() == Method::PUT && !key.is_empty() {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if is_form(content_type) {
            eprintln!("s3: refused PUT {path} sent as a form ({content_type})");
            return s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!(
                    "Content-Type {content_type} is an HTML form encoding, not a file: nothing was stored. Send the file's bytes unchanged with the headers the upload URL was issued with (evidence uploads: Content-Type: application/octet-stream and x-amz-checksum-sha256), e.g. `curl -T FILE -H 'Content-Type: application/octet-stream' -H 'x-amz-checksum-sha256: ...' URL` (curl -d / --data alters the bytes and sends a form)"
                ),
            );
        }
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = req.method().as_str().to_owned();
    let mut resp = next.run(req).await;
    if let Some(origin) = origin {
        let rules = cors_rules(&store, &bucket);
        if let Some(rule) = matching_rule(&rules, &origin, &method, &[]) {
            let h = resp.headers_mut();
            allow(h, &origin, rule);
            set(h, "vary", "Origin");
        }
    }
    resp
}

/// The whole service over `store`, accepting requests signed with `access_key`/`secret`.
pub fn router(store: Arc<Store>, access_key: &str, secret: &str) -> axum::Router {
    let service = {
        let mut b = s3s::service::S3ServiceBuilder::new(api::LocalS3::new(store.clone()));
        b.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret));
        b.build()
    };
    let service = axum::error_handling::HandleError::new(service, |e: s3s::HttpError| async move {
        eprintln!("s3: request failed: {e:?}");
        s3_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )
    });
    axum::Router::new()
        .route(HEALTH_PATH, axum::routing::get(|| async { "ok" }))
        .fallback_service(service)
        .layer(axum::middleware::from_fn_with_state(store, front))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Serves the store under `root` on `addr` until killed.
pub async fn serve(addr: SocketAddr, root: &Path, log: &Path) -> Result<(), LocalError> {
    // Bound first (by `serve_component`): a second server on the same port fails there,
    // before its start-up clean of unreferenced files could race the first one's commits.
    super::serve_component(S3, addr, log, || {
        let store = Store::open(root).map_err(|e| format!("opening {}: {e}", root.display()))?;
        eprintln!("s3: http://{addr}/ storing in {}", root.display());
        Ok(router(
            Arc::new(store),
            super::moto::ACCESS_KEY_ID,
            super::moto::SECRET_ACCESS_KEY,
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> CorsRule {
        CorsRule {
            allowed_origins: vec!["http://127.0.0.1:5173".into()],
            allowed_methods: vec!["PUT".into()],
            allowed_headers: vec!["content-type".into(), "x-amz-checksum-sha256".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(3000),
        }
    }

    #[test]
    fn cors_allows_only_the_rule_s_origin_method_and_headers() {
        let rules = [rule()];
        let o = "http://127.0.0.1:5173";
        assert!(
            matching_rule(&rules, o, "PUT", &["content-type", "x-amz-checksum-sha256"]).is_some()
        );
        assert!(matching_rule(&rules, "http://evil.example", "PUT", &[]).is_none());
        assert!(matching_rule(&rules, o, "DELETE", &[]).is_none());
        assert!(matching_rule(&rules, o, "PUT", &["x-amz-acl"]).is_none());
    }

    #[test]
    fn wildcards_match_one_run_of_characters() {
        assert!(wildcard("*", "anything"));
        assert!(wildcard("http://*.example.com", "http://a.example.com"));
        assert!(!wildcard("http://*.example.com", "http://example.org"));
        assert!(wildcard("x-amz-*", "X-Amz-Date"));
    }

    #[test]
    fn form_encodings_are_recognised_with_parameters() {
        assert!(is_form("application/x-www-form-urlencoded"));
        assert!(is_form("multipart/form-data; boundary=x"));
        assert!(!is_form("application/octet-stream"));
        assert!(!is_form(""));
    }
}
