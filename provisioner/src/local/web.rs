//! The local front door (`chronoctl local serve-web`, the `web` component of `local up`):
//! one origin for the web app and everything it calls, routed as in AWS.
//!
//! | path | goes to | in AWS |
//! |---|---|---|
//! | `POST /api/v1/ai/chat` | filter-ai | HTTP API route → AI-chat Lambda |
//! | `GET /api/v1/ai/ws` (WebSocket) | filter-ai | the WebSocket API (`wss://…/live`) |
//! | `/api/v1/*`, `/healthz` | chrono-api | HTTP API `/api/v1/{proxy+}` → API Lambda |
//! | `/config.json` | the file `up` writes ([`crate::webapp::AppConfig`]) | `config.json` in the app bucket |
//! | anything else | the built app (`app/dist`), unknown paths → `index.html` | CloudFront + app bucket, SPA routing |
//!
//! The filter-ai gateway path (`/api/v1/ai/ws/gateway`), reachable in AWS only through the
//! VPC link, is not routed. Static answers carry the same security headers as the
//! CloudFront distribution ([`chrono_stacks::web::security_headers`]); hashed assets
//! (`/assets/…`) are cached for a year, everything else is revalidated. When the app is not
//! built, every page says how to build it (status 503).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message as AxMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite;

use super::LocalError;
use crate::webapp::{cache_control, content_type};

/// Component name in the state file, `status` and `logs`.
pub const WEB: &str = "web";
/// The generated app configuration.
pub const CONFIG_PATH: &str = "/config.json";
/// Health check: the configuration is served.
pub const HEALTH_PATH: &str = CONFIG_PATH;
/// The AI chat route (filter-ai).
pub const CHAT_PATH: &str = "/api/v1/ai/chat";
/// The AI WebSocket (filter-ai).
pub const WS_PATH: &str = "/api/v1/ai/ws";
/// Largest request body passed on (the API takes JSON; evidence goes straight to S3).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// Where the front door sends what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// The built app (`index.html`, `assets/`).
    pub app_dir: PathBuf,
    /// chrono-api's base URL.
    pub api: String,
    /// filter-ai's base URL.
    pub ai: String,
    /// The app configuration file served at [`CONFIG_PATH`].
    pub config_file: PathBuf,
    /// Security headers of static answers (name, value).
    pub headers: Vec<(String, String)>,
}

struct Web {
    settings: WebSettings,
    client: reqwest::Client,
}

type Shared = Arc<Web>;

/// The front door's routes.
pub fn router(settings: WebSettings) -> Router {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    Router::new()
        .fallback(route)
        .with_state(Arc::new(Web { settings, client }))
}

/// The backend of a path: `Some(base)` to proxy, `None` for static files.
fn backend<'a>(s: &'a WebSettings, method: &Method, path: &str) -> Option<&'a str> {
    if path == CHAT_PATH && method == Method::POST || path == WS_PATH {
        Some(&s.ai)
    } else if path.starts_with("/api/v1/") || path == "/api/v1" || path == "/healthz" {
        Some(&s.api)
    } else {
        None
    }
}

async fn route(State(w): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if path == WS_PATH {
        return websocket(w, req).await;
    }
    if path == CONFIG_PATH {
        return config(&w).await;
    }
    match backend(&w.settings, req.method(), &path) {
        Some(base) => {
            let base = base.to_owned();
            proxy(&w, &base, req).await
        }
        None => static_file(&w, req.method(), &path).await,
    }
}

async fn config(w: &Web) -> Response {
    match tokio::fs::read(&w.settings.config_file).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no app configuration at {}: {e}; run `chronoctl local up`",
                w.settings.config_file.display()
            ),
        )
            .into_response(),
    }
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus `host`.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn bad_gateway(what: &str, e: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({"error": {"code": "unavailable",
        "message": format!("{what} is unavailable: {e}; see `chronoctl local status`")}});
    (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
}

async fn proxy(w: &Web, base: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let target = format!(
        "{base}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        }
    };
    let mut out = w.client.request(parts.method.clone(), &target);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    if let Some(host) = parts.headers.get(header::HOST) {
        out = out
            .header("x-forwarded-host", host)
            .header("x-forwarded-proto", "http");
    }
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => return bad_gateway(base, e),
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return bad_gateway(base, e),
    };
    let mut answer = Response::new(Body::from(bytes));
    *answer.status_mut() = status;
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            answer.headers_mut().append(name, value.clone());
        }
    }
    answer
}

/// The WebSocket: connect to filter-ai first (so a refused token is the client's HTTP
/// answer, as API Gateway's `$connect` refuses), then relay frames both ways.
async fn websocket(w: Shared, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let ws_base = w.settings.ai.replacen("http://", "ws://", 1);
    let target = format!(
        "{ws_base}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or(WS_PATH)
    );
    let mut request = match tungstenite::client::IntoClientRequest::into_client_request(&target) {
        Ok(r) => r,
        Err(e) => return bad_gateway("filter-ai", e),
    };
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, auth.clone());
    }
    let backend = match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => stream,
        Err(tungstenite::Error::Http(resp)) => {
            let status = resp.status();
            let body = resp.body().clone().unwrap_or_default();
            let mut answer = Response::new(Body::from(body));
            *answer.status_mut() = status;
            for (name, value) in resp.headers() {
                if !hop_by_hop(name) {
                    answer.headers_mut().append(name, value.clone());
                }
            }
            return answer;
        }
        Err(e) => return bad_gateway("filter-ai", e),
    };
    upgrade.on_upgrade(move |client| relay(client, backend))
}

type Backend =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn relay(client: WebSocket, backend: Backend) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut backend_tx, mut backend_rx) = backend.split();
    let up = async {
        while let Some(Ok(msg)) = client_rx.next().await {
            let msg = match msg {
                AxMessage::Text(t) => tungstenite::Message::text(t.as_str()),
                AxMessage::Binary(b) => tungstenite::Message::binary(b),
                AxMessage::Ping(b) => tungstenite::Message::Ping(b),
                AxMessage::Pong(b) => tungstenite::Message::Pong(b),
                AxMessage::Close(_) => break,
            };
            if backend_tx.send(msg).await.is_err() {
                break;
            }
        }
        let _ = backend_tx.close().await;
    };
    let down = async {
        while let Some(Ok(msg)) = backend_rx.next().await {
            let msg = match msg {
                tungstenite::Message::Text(t) => AxMessage::text(t.as_str()),
                tungstenite::Message::Binary(b) => AxMessage::Binary(b),
                tungstenite::Message::Ping(b) => AxMessage::Ping(b),
                tungstenite::Message::Pong(b) => AxMessage::Pong(b),
                tungstenite::Message::Close(_) => break,
                tungstenite::Message::Frame(_) => continue,
            };
            if client_tx.send(msg).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::join!(up, down);
}

/// The file for a request path under the app directory; `None` for a path that leaves it.
fn file_for(app_dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(app_dir.join(rel))
}

fn with_security_headers(w: &Web, mut resp: Response) -> Response {
    for (name, value) in &w.settings.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    resp
}

async fn static_file(w: &Web, method: &Method, path: &str) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "static files answer GET and HEAD",
        )
            .into_response();
    }
    let index = w.settings.app_dir.join("index.html");
    if !index.is_file() {
        return with_security_headers(w, not_built(&w.settings.app_dir));
    }
    let Some(file) = file_for(&w.settings.app_dir, path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let (file, rel) = if file.is_file() {
        (file, path.to_owned())
    } else if Path::new(path).extension().is_some() && !path.ends_with(".html") {
        // a missing asset is a 404, not the app's page
        return with_security_headers(w, (StatusCode::NOT_FOUND, "not found").into_response());
    } else {
        (index, "/index.html".to_owned())
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(Bytes::from(bytes))
            };
            let resp = (
                [
                    (header::CONTENT_TYPE, content_type(&file)),
                    (header::CACHE_CONTROL, cache_control(&rel)),
                ],
                body,
            )
                .into_response();
            with_security_headers(w, resp)
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading {}: {e}", file.display()),
        )
            .into_response(),
    }
}

fn not_built(app_dir: &Path) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>ChronoTracer: the web app is not built</title></head><body><main>\
         <h1>The web app is not built</h1>\
         <p>There is no <code>index.html</code> in <code>{}</code>.</p>\
         <p>Build it with <code>make app</code> (or <code>make demo</code>, which builds it \
         too), then reload this page. The API answers meanwhile under \
         <code>/api/v1/</code>.</p></main></body></html>\n",
        app_dir.display()
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

/// Serves the front door on `addr` until the process is stopped.
pub async fn serve(addr: SocketAddr, settings: WebSettings, log: &Path) -> Result<(), LocalError> {
    super::serve_component(WEB, addr, log, || {
        eprintln!(
            "web: http://{addr}/ serving {} (API {}, AI {})",
            settings.app_dir.display(),
            settings.api,
            settings.ai
        );
        Ok(router(settings))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WebSettings {
        WebSettings {
            app_dir: PathBuf::from("/nonexistent"),
            api: "http://api".into(),
            ai: "http://ai".into(),
            config_file: PathBuf::from("/nonexistent/config.json"),
            headers: vec![],
        }
    }

    #[test]
    fn paths_go_where_the_http_api_sends_them() {
        let s = settings();
        for (method, path, want) in [
            (Method::POST, "/api/v1/ai/chat", Some("http://ai")),
            (Method::GET, "/api/v1/ai/ws", Some("http://ai")),
            (Method::POST, "/api/v1/ai/ws/gateway", Some("http://api")),
            (Method::GET, "/api/v1/ai/chat", Some("http://api")),
            (Method::POST, "/api/v1/cases", Some("http://api")),
            (Method::GET, "/api/v1/openapi.json", Some("http://api")),
            (Method::GET, "/healthz", Some("http://api")),
            (Method::GET, "/", None),
            (Method::GET, "/cases/123", None),
            (Method::GET, "/api/v10", None),
            (Method::GET, "/assets/index-abc.js", None),
        ] {
            assert_eq!(backend(&s, &method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn files_stay_inside_the_app_directory() {
        let dir = Path::new("/srv/app");
        assert_eq!(file_for(dir, "/assets/a.js"), Some(dir.join("assets/a.js")));
        assert_eq!(file_for(dir, "/../etc/passwd"), None);
        assert_eq!(file_for(dir, "/assets/../../x"), None);
        assert_eq!(
            cache_control("/assets/index-abc.js"),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control("/index.html"), "no-cache");
        assert_eq!(
            content_type(Path::new("a/b.js")),
            "text/javascript; charset=utf-8"
        );
    }
}
