//! The local identity provider (`chronoctl local serve-issuer`, started by `local up` as
//! the `issuer` component): OpenID Connect with the authorization code flow and PKCE
//! (S256), so the web app logs in locally exactly as it does against Cognito, Auth0 or any
//! other OIDC provider — only the login page differs: a development page where you choose
//! who you are (user, role, cases) instead of typing a password.
//!
//! | route | what |
//! |---|---|
//! | `GET /.well-known/openid-configuration` | discovery (RFC 8414 / OIDC Discovery 1.0) |
//! | `GET /.well-known/jwks.json` | the signing key's public half (RFC 7517) |
//! | `GET /authorize` | checks the request, shows the development login page |
//! | `POST /authorize` | the page's form: issues a one-time code, redirects back |
//! | `POST /token` | code + PKCE verifier → access token and ID token |
//! | `GET /logout` | back to an allowed `post_logout_redirect_uri` (no session is kept) |
//!
//! As strict as a real provider: one registered client with exact redirect URIs (a
//! request naming another is refused on a page, never redirected); `response_type=code`
//! and `code_challenge_method=S256` only; codes are random, live 60 seconds and work once
//! (a replayed code, a wrong verifier, another redirect URI or client: `invalid_grant`).
//! The issuer identifier is the URL it listens on, as discovery requires. Browsers call
//! the token endpoint, discovery and the key set cross-origin: those answer CORS for the
//! registered redirect URIs' origins only.
//!
//! Access tokens carry `aud` (the API's audience), `client_id`, `scope` and the roles and
//! cases claims; ID tokens carry `aud` = the client id and the `nonce`. The JWKS file is
//! read on every request, so a key minted again is served without a restart.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::LocalError;
use super::keys::{CASES_CLAIM, ROLES_CLAIM, SigningKey, unix_now};

/// Component name in the state file, `status` and `logs`.
pub const ISSUER: &str = "issuer";
/// Path of the JWKS (RFC 7517), as identity providers publish it.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the OpenID Connect discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// The authorization endpoint (login page).
pub const AUTHORIZE_PATH: &str = "/authorize";
/// The token endpoint.
pub const TOKEN_PATH: &str = "/token";
/// The end-session endpoint.
pub const LOGOUT_PATH: &str = "/logout";
/// Health check path.
pub const HEALTH_PATH: &str = "/healthz";
/// How long a code may wait for its exchange.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// Lifetime of the tokens it issues.
pub const TOKEN_TTL_SECONDS: u64 = 8 * 3600;
/// Scopes it knows: those of the app client the stacks create.
pub const SCOPES: [&str; 3] = chrono_stacks::web::OAUTH_SCOPES;

/// The issuer identifier of an issuer listening on `port` (also its base URL).
pub fn issuer_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The JWKS URL of an issuer listening on `port`.
pub fn jwks_url(port: u16) -> String {
    format!("{}{JWKS_PATH}", issuer_url(port))
}

/// What the issuer serves and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSettings {
    /// The issuer identifier (`iss`), its own base URL.
    pub issuer: String,
    /// The public key set file.
    pub jwks: PathBuf,
    /// The private signing key (PKCS#8 PEM).
    pub signing_key: PathBuf,
    /// The one registered client (the web app).
    pub client_id: String,
    /// The `aud` of access tokens (the API).
    pub audience: String,
    /// Exact redirect URIs the client may use (also the allowed logout targets).
    pub redirect_uris: Vec<String>,
}

impl IssuerSettings {
    /// Origins allowed to call the issuer from a browser: those of the redirect URIs.
    fn allowed_origins(&self) -> Vec<String> {
        self.redirect_uris
            .iter()
            .filter_map(|u| origin_of(u))
            .collect()
    }
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// A code waiting to be exchanged.
#[derive(Debug, Clone)]
struct Grant {
    redirect_uri: String,
    challenge: String,
    scope: String,
    nonce: Option<String>,
    sub: String,
    roles: Vec<String>,
    cases: Vec<String>,
    issued: Instant,
}

#[derive(Debug)]
struct Issuer {
    settings: IssuerSettings,
    codes: Mutex<HashMap<String, Grant>>,
}

type Shared = Arc<Issuer>;

/// The issuer's routes.
pub fn router(settings: IssuerSettings) -> Router {
    Router::new()
        .route(JWKS_PATH, get(serve_jwks))
        .route(DISCOVERY_PATH, get(discovery))
        .route(AUTHORIZE_PATH, get(authorize_page).post(authorize_submit))
        .route(TOKEN_PATH, axum::routing::post(token).options(preflight))
        .route(LOGOUT_PATH, get(logout))
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .with_state(Arc::new(Issuer {
            settings,
            codes: Mutex::new(HashMap::new()),
        }))
}

/// Adds `Access-Control-Allow-Origin` when the request's origin is allowed.
fn cors(s: &Issuer, headers: &HeaderMap, mut resp: Response) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| s.settings.allowed_origins().iter().any(|a| a == o));
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

async fn preflight(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    cors(&s, &headers, resp)
}

async fn serve_jwks(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let resp = match tokio::fs::read(&s.settings.jwks).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            eprintln!("issuer: reading {}: {e}", s.settings.jwks.display());
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "no signing key: run `chronoctl local up`",
            )
                .into_response()
        }
    };
    cors(&s, &headers, resp)
}

/// The discovery document of `issuer`.
pub fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "end_session_endpoint": format!("{issuer}{LOGOUT_PATH}"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": SCOPES,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name",
                             ROLES_CLAIM, CASES_CLAIM],
    })
}

async fn discovery(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let resp = Json(discovery_document(&s.settings.issuer)).into_response();
    cors(&s, &headers, resp)
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
#[derive(Debug, Clone, Default, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The login form: the request's parameters plus who logs in.
#[derive(Debug, Clone, Deserialize)]
struct LoginForm {
    #[serde(flatten)]
    request: AuthorizeParams,
    user: Option<String>,
    role: Option<String>,
    cases: Option<String>,
}

/// Why an authorization request is refused: on a page (client or redirect URI unknown —
/// never redirect to an unverified URI) or by redirecting back with an error code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Page(String),
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Page(message) => (
                StatusCode::BAD_REQUEST,
                Html(page(
                    "Login request refused",
                    &format!("<p role=\"alert\">{}</p>", escape(&message)),
                )),
            )
                .into_response(),
            Refusal::Redirect {
                redirect_uri,
                error,
                description,
                state,
            } => {
                let mut query = vec![
                    ("error", error.to_owned()),
                    ("error_description", description),
                ];
                if let Some(st) = state {
                    query.push(("state", st));
                }
                Redirect::to(&with_query(&redirect_uri, &query)).into_response()
            }
        }
    }
}

/// `url` with `pairs` appended to its query.
fn with_query(url: &str, pairs: &[(&str, String)]) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    format!("{url}{sep}{}", query.join("&"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    redirect_uri: String,
    challenge: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
}

/// Checks an authorization request against the registered client.
fn check_request(s: &IssuerSettings, p: &AuthorizeParams) -> Result<Checked, Refusal> {
    if p.client_id.as_deref() != Some(s.client_id.as_str()) {
        return Err(Refusal::Page(format!(
            "unknown client_id {:?}; the registered client is {:?}",
            p.client_id.as_deref().unwrap_or(""),
            s.client_id
        )));
    }
    let redirect_uri = p.redirect_uri.clone().unwrap_or_default();
    if !s.redirect_uris.contains(&redirect_uri) {
        return Err(Refusal::Page(format!(
            "redirect_uri {redirect_uri:?} is not registered for this client (registered: {})",
            s.redirect_uris.join(", ")
        )));
    }
    let refuse = |error: &'static str, description: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: p.state.clone(),
    };
    if p.response_type.as_deref() != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "only response_type=code (the authorization code flow) is supported",
        ));
    }
    let challenge = p.code_challenge.clone().unwrap_or_default();
    if p.code_challenge_method.as_deref() != Some("S256") || !is_s256_challenge(&challenge) {
        return Err(refuse(
            "invalid_request",
            "PKCE is required: code_challenge (43 base64url characters) with code_challenge_method=S256",
        ));
    }
    let scope = p.scope.clone().unwrap_or_default();
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if !scopes.contains(&"openid") || scopes.iter().any(|sc| !SCOPES.contains(sc)) {
        return Err(refuse(
            "invalid_scope",
            "scope must include openid; known scopes: openid profile email",
        ));
    }
    Ok(Checked {
        redirect_uri,
        challenge,
        scope: scopes.join(" "),
        state: p.state.clone(),
        nonce: p.nonce.clone().filter(|n| !n.is_empty()),
    })
}

fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// BASE64URL(SHA-256(verifier)), the S256 challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn authorize_page(State(s): State<Shared>, Query(p): Query<AuthorizeParams>) -> Response {
    match check_request(&s.settings, &p) {
        Ok(_) => Html(login_page(&p, None)).into_response(),
        Err(r) => r.into_response(),
    }
}

/// Who logs in, from the form: `(sub, roles, cases)`.
fn check_login(f: &LoginForm) -> Result<(String, Vec<String>, Vec<String>), String> {
    let user = f.user.as_deref().unwrap_or("").trim().to_owned();
    if user.is_empty()
        || user.chars().count() > 128
        || user.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err("user: 1 to 128 characters without spaces".into());
    }
    let role = match f.role.as_deref() {
        Some(r @ ("admin" | "analyst")) => r.to_owned(),
        _ => return Err("role: choose admin or analyst".into()),
    };
    let text = f.cases.as_deref().unwrap_or("").trim();
    let cases: Vec<String> = if text.is_empty() || text == "*" {
        vec!["*".into()]
    } else {
        text.split([',', ' ', '\n', '\r', '\t'])
            .filter(|c| !c.is_empty())
            .map(|c| {
                uuid::Uuid::parse_str(c)
                    .map(|u| u.to_string())
                    .map_err(|_| format!("cases: {c:?} is not a case id; use * or case ids"))
            })
            .collect::<Result<_, _>>()?
    };
    Ok((user, vec![role], cases))
}

async fn authorize_submit(State(s): State<Shared>, Form(f): Form<LoginForm>) -> Response {
    let checked = match check_request(&s.settings, &f.request) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let (sub, roles, cases) = match check_login(&f) {
        Ok(who) => who,
        Err(message) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(login_page(&f.request, Some(&message))),
            )
                .into_response();
        }
    };
    let code = random_token();
    {
        let mut codes = s.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, g| g.issued.elapsed() < CODE_TTL);
        codes.insert(
            code.clone(),
            Grant {
                redirect_uri: checked.redirect_uri.clone(),
                challenge: checked.challenge,
                scope: checked.scope,
                nonce: checked.nonce,
                sub,
                roles,
                cases,
                issued: Instant::now(),
            },
        );
    }
    let mut query = vec![("code", code), ("iss", s.settings.issuer.clone())];
    if let Some(st) = checked.state {
        query.push(("state", st));
    }
    // 303: the browser follows with a GET.
    Redirect::to(&with_query(&checked.redirect_uri, &query)).into_response()
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The token request (RFC 6749 §4.1.3 with RFC 7636 §4.5).
#[derive(Debug, Clone, Default, Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

/// A refused token request (RFC 6749 §5.2): status, OAuth error code, description.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl TokenError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        TokenError {
            status,
            error,
            description: description.into(),
        }
    }

    /// A 400 with `error`.
    fn bad(error: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, description)
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        (
            self.status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response()
    }
}

/// Exchanges a code: every check of RFC 6749/7636; the code is spent whatever the outcome.
fn exchange(s: &Issuer, req: &TokenRequest) -> Result<Value, TokenError> {
    if req.grant_type.as_deref() != Some("authorization_code") {
        return Err(TokenError::bad(
            "unsupported_grant_type",
            "only grant_type=authorization_code is supported",
        ));
    }
    if req.client_id.as_deref() != Some(s.settings.client_id.as_str()) {
        return Err(TokenError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client_id",
        ));
    }
    let code = req.code.as_deref().unwrap_or("");
    let grant = s
        .codes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(code);
    let Some(grant) = grant.filter(|g| g.issued.elapsed() < CODE_TTL) else {
        return Err(TokenError::bad(
            "invalid_grant",
            "the code is unknown, expired or already used",
        ));
    };
    if req.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
        return Err(TokenError::bad(
            "invalid_grant",
            "redirect_uri differs from the authorization request's",
        ));
    }
    let verifier = req.code_verifier.as_deref().unwrap_or("");
    if !is_verifier(verifier) || s256(verifier) != grant.challenge {
        return Err(TokenError::bad(
            "invalid_grant",
            "the code_verifier does not match the code_challenge",
        ));
    }
    let unavailable = |e: LocalError| {
        TokenError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            e.to_string(),
        )
    };
    let key = SigningKey::load(&s.settings.signing_key).map_err(unavailable)?;
    let now = unix_now();
    let common = |aud: &str| {
        json!({
            "sub": grant.sub,
            "iss": s.settings.issuer,
            "aud": aud,
            "iat": now,
            "exp": now + TOKEN_TTL_SECONDS,
            ROLES_CLAIM: grant.roles,
            CASES_CLAIM: grant.cases,
        })
    };
    let mut access = common(&s.settings.audience);
    access["client_id"] = json!(s.settings.client_id);
    access["scope"] = json!(grant.scope);
    access["token_use"] = json!("access");
    let mut id = common(&s.settings.client_id);
    id["auth_time"] = json!(now);
    id["name"] = json!(grant.sub);
    id["token_use"] = json!("id");
    if let Some(n) = &grant.nonce {
        id["nonce"] = json!(n);
    }
    Ok(json!({
        "access_token": key.sign(&access).map_err(unavailable)?,
        "id_token": key.sign(&id).map_err(unavailable)?,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL_SECONDS,
        "scope": grant.scope,
    }))
}

async fn token(
    State(s): State<Shared>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let result = match form {
        Ok(Form(req)) => exchange(&s, &req),
        Err(e) => Err(TokenError::bad(
            "invalid_request",
            format!("send application/x-www-form-urlencoded parameters: {e}"),
        )),
    };
    let resp = match result {
        Ok(body) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(body),
        )
            .into_response(),
        Err(e) => e.into_response(),
    };
    cors(&s, &headers, resp)
}

#[derive(Debug, Deserialize)]
struct LogoutParams {
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

async fn logout(State(s): State<Shared>, Query(p): Query<LogoutParams>) -> Response {
    match p.post_logout_redirect_uri {
        Some(uri)
            if s.settings
                .allowed_origins()
                .iter()
                .any(|o| origin_of(&uri).as_deref() == Some(o.as_str())) =>
        {
            let query: Vec<(&str, String)> = p.state.into_iter().map(|st| ("state", st)).collect();
            if query.is_empty() {
                Redirect::to(&uri).into_response()
            } else {
                Redirect::to(&with_query(&uri, &query)).into_response()
            }
        }
        Some(uri) => Refusal::Page(format!(
            "post_logout_redirect_uri {uri:?} is not an origin of this client"
        ))
        .into_response(),
        None => Html(page("Logged out", "<p>You are logged out.</p>")).into_response(),
    }
}

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · ChronoTracer local login</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}}\
         label{{display:block;margin:.8rem 0 .2rem;font-weight:600}}input[type=text],textarea{{width:100%;padding:.4rem}}\
         fieldset{{border:1px solid #999;margin:.8rem 0}}button{{margin-top:1rem;padding:.5rem 1.2rem}}\
         .error{{color:#a00;font-weight:600}}.note{{color:#444}}</style></head>\
         <body><main><h1>{t}</h1>{body}</main></body></html>\n",
        t = escape(title)
    )
}

/// The development login page: who to be, and the request's parameters carried along.
fn login_page(p: &AuthorizeParams, error: Option<&str>) -> String {
    let hidden = [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("nonce", &p.nonce),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.as_ref().map(|v| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                escape(v)
            )
        })
    })
    .collect::<String>();
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "<p class=\"note\">Development login of <code>chronoctl local</code>: choose who you \
             are. No password; tokens are signed with the local key.</p>{error}\
             <form method=\"post\" action=\"{AUTHORIZE_PATH}\">{hidden}\
             <label for=\"user\">User</label>\
             <input type=\"text\" id=\"user\" name=\"user\" value=\"investigator\" required \
             autocomplete=\"username\">\
             <fieldset><legend>Role</legend>\
             <label><input type=\"radio\" name=\"role\" value=\"admin\" checked> admin \
             (cases, uploads, processing)</label>\
             <label><input type=\"radio\" name=\"role\" value=\"analyst\"> analyst \
             (read, search, labels, AI)</label></fieldset>\
             <label for=\"cases\">Cases</label>\
             <input type=\"text\" id=\"cases\" name=\"cases\" value=\"*\" \
             aria-describedby=\"cases-help\">\
             <p id=\"cases-help\" class=\"note\"><code>*</code> for every case, or case ids \
             separated by commas. Cases you create are yours either way.</p>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

/// Serves the issuer on `addr` until the process is stopped (`chronoctl local down`);
/// `log` is where its output goes (named in the error).
pub async fn serve(
    addr: SocketAddr,
    settings: IssuerSettings,
    log: &Path,
) -> Result<(), LocalError> {
    super::serve_component(ISSUER, addr, log, || {
        eprintln!(
            "issuer: {} on http://{addr} (client {}, redirect URIs {})",
            settings.issuer,
            settings.client_id,
            settings.redirect_uris.join(", ")
        );
        Ok(router(settings))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_rfc_7636s_example() {
        // RFC 7636 Appendix B
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!is_verifier("short"));
        assert!(!is_verifier(&"a".repeat(129)));
        assert!(!is_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn reflected_text_is_escaped() {
        let p = AuthorizeParams {
            state: Some("\"><script>alert(1)</script>".into()),
            ..Default::default()
        };
        let html = login_page(&p, Some("<b>bad</b>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>bad"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;"));
    }

    #[test]
    fn origins_and_queries() {
        assert_eq!(
            origin_of("http://127.0.0.1:5000/callback?x=1").as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(origin_of("nonsense"), None);
        assert_eq!(
            with_query(
                "http://a/cb",
                &[("code", "a b&c".into()), ("state", "x".into())]
            ),
            "http://a/cb?code=a%20b%26c&state=x"
        );
        assert_eq!(
            with_query("http://a/cb?k=v", &[("code", "1".into())]),
            "http://a/cb?k=v&code=1"
        );
    }
}
