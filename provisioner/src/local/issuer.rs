//! The local token issuer's public side: an HTTP server (a `chronoctl` child process,
//! started by `local up` as the `issuer` component) that serves the signing key's JWKS
//! and an OpenID discovery document, the two documents an identity provider publishes
//! and API Gateway's JWT authorizer reads. The API and filter-ai fetch their keys from
//! it (`CHRONO_JWKS_URL`), so they verify tokens exactly as they would against a real
//! provider.
//!
//! The JWKS file is read on every request: a key minted again (after `down --wipe`) is
//! served without restarting the issuer. The private key never leaves `keys/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::LocalError;

/// Component name in the state file, `status` and `logs`.
pub const ISSUER: &str = "issuer";
/// Path of the JWKS (RFC 7517), as identity providers publish it.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the OpenID Connect discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// Health check path.
pub const HEALTH_PATH: &str = "/healthz";

/// The JWKS URL of an issuer listening on `port`.
pub fn jwks_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}{JWKS_PATH}")
}

#[derive(Debug, Clone)]
struct Issuer {
    jwks: PathBuf,
    issuer: String,
    base: String,
}

/// The issuer's routes: JWKS, discovery, health.
pub fn router(jwks: &Path, issuer: &str, base_url: &str) -> Router {
    Router::new()
        .route(JWKS_PATH, get(serve_jwks))
        .route(DISCOVERY_PATH, get(discovery))
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .with_state(Issuer {
            jwks: jwks.to_path_buf(),
            issuer: issuer.to_owned(),
            base: base_url.trim_end_matches('/').to_owned(),
        })
}

async fn serve_jwks(State(s): State<Issuer>) -> Response {
    match tokio::fs::read(&s.jwks).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            eprintln!("issuer: reading {}: {e}", s.jwks.display());
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "no signing key: run `chronoctl local up`",
            )
                .into_response()
        }
    }
}

async fn discovery(State(s): State<Issuer>) -> Response {
    axum::Json(json!({
        "issuer": s.issuer,
        "jwks_uri": format!("{}{JWKS_PATH}", s.base),
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

/// Serves the issuer on `addr` until the process is stopped (`chronoctl local down`);
/// `log` is where its output goes (named in the error).
pub async fn serve(
    addr: SocketAddr,
    jwks: &Path,
    issuer: &str,
    log: &Path,
) -> Result<(), LocalError> {
    let failed = |reason: String| LocalError::Start {
        component: ISSUER.into(),
        reason,
        log: log.to_path_buf(),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| failed(format!("binding {addr}: {e}")))?;
    eprintln!(
        "issuer: serving {} on http://{addr}{JWKS_PATH}",
        jwks.display()
    );
    axum::serve(listener, router(jwks, issuer, &format!("http://{addr}")))
        .await
        .map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn get_body(app: Router, path: &str) -> (StatusCode, String) {
        let resp = app
            .oneshot(
                axum::http::Request::get(path)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn serves_the_current_jwks_file_and_discovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("jwks.json");
        let app = router(&file, "http://127.0.0.1:8000/", "http://127.0.0.1:4321/");
        let (status, _) = get_body(app.clone(), JWKS_PATH).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no key yet");

        std::fs::write(&file, r#"{"keys":[{"kid":"a"}]}"#).expect("write");
        let (status, body) = get_body(app.clone(), JWKS_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"keys":[{"kid":"a"}]}"#);
        // a key minted again is served without a restart
        std::fs::write(&file, r#"{"keys":[{"kid":"b"}]}"#).expect("write");
        assert!(get_body(app.clone(), JWKS_PATH).await.1.contains(r#""b""#));

        let (status, body) = get_body(app, DISCOVERY_PATH).await;
        assert_eq!(status, StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(doc["issuer"], "http://127.0.0.1:8000/");
        assert_eq!(
            doc["jwks_uri"],
            "http://127.0.0.1:4321/.well-known/jwks.json"
        );
    }
}
