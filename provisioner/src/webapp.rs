//! The web app's `config.json`: what the built app learns at start about the deployment it
//! runs in — where the API and the AI WebSocket are and how to log in (OpenID Connect
//! authorization code + PKCE). One type for both places it is written: `chronoctl local
//! up` (served by the local front door) and `chronoctl deploy` (uploaded next to the app
//! in its bucket, from the stacks' outputs). The app's login code is the same for both.
//! Also how the app's files are served (content type, caching), locally and in the bucket.

use std::collections::BTreeMap;
use std::path::Path;

use chrono_stacks::config::Config;
use serde::{Deserialize, Serialize};

pub use chrono_stacks::web::{CALLBACK_PATH, OAUTH_SCOPES as SCOPES};

/// `config.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Base URL of the REST API: the app calls `{api_url}/api/v1/...`.
    pub api_url: String,
    /// The AI chat's WebSocket; connect with `?token=<access token>`. The same questions
    /// go to `POST {api_url}/api/v1/ai/chat` as a fallback. `None` (JSON `null`): the
    /// deployment has no WebSocket API (a preview), the app asks over HTTP only.
    pub ws_url: Option<String>,
    /// How to log in.
    pub oidc: OidcConfig,
}

/// The identity provider, as an OIDC client needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Issuer identifier; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The app's client id (a public client: no secret, PKCE S256).
    pub client_id: String,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// Where the provider sends the browser back (`{app origin}/callback`).
    pub redirect_uri: String,
    /// An `audience` authorization parameter, for providers that need one to issue an
    /// access token for the API (Auth0); absent for Cognito and the local issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The API's roles claim.
    pub roles_claim: String,
    /// The API's cases claim.
    pub cases_claim: String,
}

impl AppConfig {
    /// The file's text: pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Content type by file extension (what a Vite build writes).
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// `Cache-Control` of an app file: hashed assets forever, the rest revalidated.
pub fn cache_control(rel_path: &str) -> &'static str {
    if rel_path.trim_start_matches('/').starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

/// The redirect URI of an app served at `origin`.
pub fn redirect_uri(origin: &str) -> String {
    format!("{}{CALLBACK_PATH}", origin.trim_end_matches('/'))
}

/// `config.json` of a deployment, from the web and api stacks' outputs; the name of the
/// first missing output otherwise.
pub fn for_deployment(
    cfg: &Config,
    web: &BTreeMap<String, String>,
    api: &BTreeMap<String, String>,
) -> Result<AppConfig, &'static str> {
    let get = |outputs: &BTreeMap<String, String>, name: &'static str| {
        outputs.get(name).cloned().ok_or(name)
    };
    use chrono_contract::outputs;
    let origin = get(web, outputs::APP_ORIGIN)?;
    Ok(AppConfig {
        api_url: get(api, outputs::HTTP_API_URL)?
            .trim_end_matches('/')
            .to_owned(),
        // A preview has no WebSocket API (`Config::websocket_api`): the app then asks
        // through `POST /api/v1/ai/chat`.
        ws_url: if cfg.websocket_api() {
            Some(get(api, outputs::WEBSOCKET_URL)?)
        } else {
            None
        },
        oidc: OidcConfig {
            issuer: get(web, outputs::JWT_ISSUER)?,
            client_id: get(web, outputs::APP_CLIENT_ID)?,
            scopes: SCOPES.map(String::from).to_vec(),
            redirect_uri: redirect_uri(&origin),
            audience: cfg
                .auth
                .audience_parameter
                .then(|| cfg.auth.jwt_audience.clone())
                .flatten(),
            roles_claim: cfg.auth.roles_claim.clone(),
            cases_claim: cfg.auth.cases_claim.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_out_an_absent_audience() {
        let c = AppConfig {
            api_url: "https://abc.execute-api.eu-west-1.amazonaws.com".into(),
            ws_url: Some("wss://def.execute-api.eu-west-1.amazonaws.com/live".into()),
            oidc: OidcConfig {
                issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc".into(),
                client_id: "client".into(),
                scopes: SCOPES.map(String::from).to_vec(),
                redirect_uri: redirect_uri("https://d111.cloudfront.net/"),
                audience: None,
                roles_claim: "https://chronotracer.io/roles".into(),
                cases_claim: "https://chronotracer.io/cases".into(),
            },
        };
        let text = c.to_json();
        assert!(!text.contains("audience"));
        assert!(text.contains("\"redirect_uri\": \"https://d111.cloudfront.net/callback\""));
        assert_eq!(serde_json::from_str::<AppConfig>(&text).unwrap(), c);
    }

    /// Issue 16: a preview has no WebSocket API; its `config.json` has no WebSocket URL (the
    /// app asks through `POST /api/v1/ai/chat`) and needs no such output, while a stage with
    /// the WebSocket API still requires it.
    #[test]
    fn a_preview_serves_no_websocket_url_and_needs_no_websocket_output() {
        use chrono_contract::outputs;
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../customers/acme-staging.yaml");
        let base = Config::load(&path).unwrap();
        let preview = crate::cost::preview_shape(&base, "acme-staging.yaml").unwrap();
        let web: BTreeMap<String, String> = [
            (outputs::APP_ORIGIN, "https://d111.cloudfront.net"),
            (outputs::JWT_ISSUER, "https://issuer.example"),
            (outputs::APP_CLIENT_ID, "client"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let api: BTreeMap<String, String> = [(
            outputs::HTTP_API_URL.to_owned(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/".to_owned(),
        )]
        .into();
        let c = for_deployment(&preview, &web, &api).unwrap();
        assert_eq!(c.ws_url, None);
        assert!(c.to_json().contains("\"ws_url\": null"));
        assert_eq!(c.api_url, "https://abc.execute-api.eu-west-1.amazonaws.com");
        assert_eq!(
            for_deployment(&base, &web, &api),
            Err(outputs::WEBSOCKET_URL)
        );
    }
}
