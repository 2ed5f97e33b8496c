//! The local OpenID Connect issuer over real HTTP: discovery, the authorization code flow
//! with PKCE (S256) through the development login page, tokens verified against the
//! published key set — and every refusal a real provider makes: unknown client or
//! redirect URI (a page, no redirect), a missing PKCE challenge, a wrong verifier, a
//! different redirect URI at the token endpoint, a replayed code.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono_provisioner::local::issuer::{self, IssuerSettings, s256};
use chrono_provisioner::local::keys::{CASES_CLAIM, ROLES_CLAIM, SigningKey};
use chrono_provisioner::local::layout::Layout;
use chrono_provisioner::local::process;
use reqwest::StatusCode;
use serde_json::Value;

const CLIENT: &str = "chronotracer-local";
const APP: &str = "http://127.0.0.1:4999";
const REDIRECT: &str = "http://127.0.0.1:4999/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more-entropy";

struct Issuer {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Issuer {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    layout.create().unwrap();
    SigningKey::load_or_mint(&layout).unwrap();
    let port = process::free_port().unwrap();
    let base = issuer::issuer_url(port);
    let settings = IssuerSettings {
        issuer: base.clone(),
        jwks: layout.jwks(),
        signing_key: layout.signing_key(),
        client_id: CLIENT.into(),
        audience: CLIENT.into(),
        redirect_uris: vec![REDIRECT.into()],
    };
    let log = dir.path().join("issuer.log");
    tokio::spawn(async move {
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        issuer::serve(addr, settings, &log).await.unwrap();
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Issuer {
        base,
        http,
        _dir: dir,
    }
}

/// The authorization request's parameters, `change`d.
fn authorize_params(change: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let challenge = s256(VERIFIER);
    let mut p: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in change {
        p.retain(|(pk, _)| pk != k);
        if let Some(v) = v {
            p.push((k.to_string(), v.to_string()));
        }
    }
    p
}

/// The query parameters of a redirect's `Location`.
fn location_query(resp: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    let url = reqwest::Url::parse(&loc).unwrap();
    let base = format!("{}{}", url.origin().ascii_serialization(), url.path());
    (base, url.query_pairs().into_owned().collect())
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str())
}

impl Issuer {
    /// Logs in through the form as `user`/`role`/`cases`; the code from the redirect.
    async fn code(&self, role: &str, cases: &str) -> String {
        let mut form = authorize_params(&[]);
        form.extend([
            ("user".into(), "alice".into()),
            ("role".into(), role.into()),
            ("cases".into(), cases.into()),
        ]);
        let resp = self
            .http
            .post(format!("{}/authorize", self.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let (to, q) = location_query(&resp);
        assert_eq!(to, REDIRECT);
        assert_eq!(param(&q, "state"), Some("st-123"));
        assert_eq!(param(&q, "iss"), Some(self.base.as_str()));
        param(&q, "code").unwrap().to_string()
    }

    async fn token(&self, code: &str, verifier: &str, redirect: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(format!("{}/token", self.base))
            .header("origin", APP)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
                ("client_id", CLIENT),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["access-control-allow-origin"], APP);
        (status, resp.json().await.unwrap())
    }
}

/// Verifies an RS256 JWT against the issuer's JWKS; its claims.
async fn verify(iss: &Issuer, token: &str, audience: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = iss
        .http
        .get(format!("{}/.well-known/jwks.json", iss.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("the token's kid is published");
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[&iss.base]);
    v.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn the_code_flow_with_pkce_issues_verifiable_tokens() {
    let iss = start().await;
    let doc: Value = iss
        .http
        .get(format!("{}/.well-known/openid-configuration", iss.base))
        .header("origin", APP)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["issuer"],
        iss.base.as_str(),
        "the issuer is its own URL"
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/authorize", iss.base)
    );
    assert_eq!(doc["token_endpoint"], format!("{}/token", iss.base));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // the login page, with the request carried in the form
    let page = iss
        .http
        .get(format!("{}/authorize", iss.base))
        .query(&authorize_params(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\" action=\"/authorize\">"),
        "{html}"
    );
    assert!(html.contains(&format!("value=\"{}\"", s256(VERIFIER))));

    let case = "0190f5c8-0000-7000-8000-000000000001";
    let code = iss.code("analyst", case).await;
    let (status, tokens) = iss.token(&code, VERIFIER, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = verify(&iss, tokens["access_token"].as_str().unwrap(), CLIENT).await;
    assert_eq!(access["sub"], "alice");
    assert_eq!(access[ROLES_CLAIM], serde_json::json!(["analyst"]));
    assert_eq!(access[CASES_CLAIM], serde_json::json!([case]));
    assert_eq!(access["client_id"], CLIENT);
    assert_eq!(access["scope"], "openid profile");
    let id = verify(&iss, tokens["id_token"].as_str().unwrap(), CLIENT).await;
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["sub"], "alice");

    // a replayed code is refused
    let (status, err) = iss.token(&code, VERIFIER, REDIRECT).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // every case: `*`
    let code = iss.code("admin", "*").await;
    let (_, tokens) = iss.token(&code, VERIFIER, REDIRECT).await;
    let access = verify(&iss, tokens["access_token"].as_str().unwrap(), CLIENT).await;
    assert_eq!(access[CASES_CLAIM], serde_json::json!(["*"]));
    assert_eq!(access[ROLES_CLAIM], serde_json::json!(["admin"]));
}

#[tokio::test]
async fn wrong_verifiers_redirects_and_requests_are_refused() {
    let iss = start().await;

    // a verifier that does not hash to the challenge; the code is spent by the attempt
    let code = iss.code("analyst", "*").await;
    let wrong = format!("{}x", &VERIFIER[..VERIFIER.len() - 1]);
    let (status, err) = iss.token(&code, &wrong, REDIRECT).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    let (_, err) = iss.token(&code, VERIFIER, REDIRECT).await;
    assert_eq!(err["error"], "invalid_grant", "spent by the failed attempt");

    // the token request names another redirect URI
    let code = iss.code("analyst", "*").await;
    let (status, err) = iss
        .token(&code, VERIFIER, "http://127.0.0.1:4999/other")
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uri")
    );

    // another client at the token endpoint
    let code = iss.code("analyst", "*").await;
    let resp = iss
        .http
        .post(format!("{}/token", iss.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", "someone-else"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    // an unregistered redirect URI or client: a page, never a redirect
    for change in [
        ("redirect_uri", Some("http://evil.test/callback")),
        ("client_id", Some("someone-else")),
    ] {
        let resp = iss
            .http
            .get(format!("{}/authorize", iss.base))
            .query(&authorize_params(&[change]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{change:?}");
        assert!(resp.headers().get("location").is_none(), "{change:?}");
    }

    // no PKCE, plain PKCE, another flow, no openid scope: back to the app with an error
    for (change, error) in [
        (("code_challenge", None), "invalid_request"),
        (("code_challenge_method", Some("plain")), "invalid_request"),
        (
            ("response_type", Some("token")),
            "unsupported_response_type",
        ),
        (("scope", Some("profile")), "invalid_scope"),
    ] {
        let resp = iss
            .http
            .get(format!("{}/authorize", iss.base))
            .query(&authorize_params(&[change]))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{change:?}");
        let (to, q) = location_query(&resp);
        assert_eq!(to, REDIRECT);
        assert_eq!(param(&q, "error"), Some(error), "{change:?}");
        assert_eq!(param(&q, "state"), Some("st-123"));
        assert_eq!(param(&q, "code"), None);
    }

    // the login form checks who logs in
    let mut form = authorize_params(&[]);
    form.extend([
        ("user".into(), "alice".into()),
        ("role".into(), "root".into()),
        ("cases".into(), "*".into()),
    ]);
    let resp = iss
        .http
        .post(format!("{}/authorize", iss.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("role: choose admin or analyst")
    );

    // browsers of other origins get no CORS answer
    let resp = iss
        .http
        .get(format!("{}/.well-known/jwks.json", iss.base))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let body: Value = resp.json().await.unwrap();
    assert!(
        URL_SAFE_NO_PAD
            .decode(body["keys"][0]["n"].as_str().unwrap())
            .is_ok()
    );
}
