//! Who is calling, and what they may do.
//!
//! * In Lambda, API Gateway's JWT authorizer has already verified the token; the claims
//!   come from the request context (`requestContext.authorizer.jwt.claims`), which a
//!   client cannot forge.
//! * Locally, the server verifies RS256 JWTs itself against a JWKS (URL or file), with
//!   issuer, audience and expiry checked.
//!
//! Roles come from the claim named by `CHRONO_ROLES_CLAIM` (`admin`, `analyst`), case
//! access from `CHRONO_CASES_CLAIM` (case ids or `"*"`). Whether a user may see a given
//! case is decided by [`Principal::may_access`]; routes turn "may not" into 404.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Default claim holding the roles array.
pub const DEFAULT_ROLES_CLAIM: &str = chrono_contract::claims::ROLES;
/// Default claim holding the accessible case ids.
pub const DEFAULT_CASES_CLAIM: &str = chrono_contract::claims::CASES;

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header (or no authorizer claims in Lambda).
    #[error("missing bearer token; send `Authorization: Bearer <jwt>`")]
    Missing,
    /// The token does not verify.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The key set cannot be used.
    #[error("cannot load the JWT key set: {0}")]
    Keys(String),
}

/// A role from the roles claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Cases, evidence upload, processing (and everything an analyst does).
    Admin,
    /// Read, search, labels.
    Analyst,
}

/// Which cases the user was granted by the cases claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseGrant {
    /// `"*"`: every case.
    All,
    /// These case ids.
    Some(Vec<Uuid>),
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject (`sub` claim).
    pub sub: String,
    /// Roles recognised in the roles claim.
    pub roles: Vec<Role>,
    /// Cases granted by the cases claim (cases they created are theirs as well).
    pub cases: CaseGrant,
}

impl Principal {
    /// Has the admin role.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// May read, search and label (analyst or admin).
    pub fn can_read(&self) -> bool {
        self.is_admin() || self.roles.contains(&Role::Analyst)
    }

    /// May see case `case_id`, created by `created_by`.
    pub fn may_access(&self, case_id: Uuid, created_by: &str) -> bool {
        created_by == self.sub
            || match &self.cases {
                CaseGrant::All => true,
                CaseGrant::Some(ids) => ids.contains(&case_id),
            }
    }
}

/// Names of the claims that carry roles and cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// Roles claim.
    pub roles: String,
    /// Cases claim.
    pub cases: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        ClaimNames {
            roles: DEFAULT_ROLES_CLAIM.into(),
            cases: DEFAULT_CASES_CLAIM.into(),
        }
    }
}

impl ClaimNames {
    /// The principal described by verified claims.
    pub fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(AuthError::Invalid("the token has no `sub`".into())),
        };
        let roles = list(claims.get(&self.roles))
            .iter()
            .filter_map(|r| match r.as_str() {
                "admin" => Some(Role::Admin),
                "analyst" => Some(Role::Analyst),
                _ => None,
            })
            .collect();
        let case_list = list(claims.get(&self.cases));
        let cases = if case_list.iter().any(|c| c == "*") {
            CaseGrant::All
        } else {
            CaseGrant::Some(
                case_list
                    .iter()
                    .filter_map(|c| Uuid::parse_str(c).ok())
                    .collect(),
            )
        };
        Ok(Principal { sub, roles, cases })
    }

    /// The principal from API Gateway authorizer claims, where every claim is a string and
    /// arrays arrive flattened (`"[admin analyst]"`) or as JSON text.
    pub fn principal_from_gateway(
        &self,
        claims: &HashMap<String, String>,
    ) -> Result<Principal, AuthError> {
        let map: Map<String, Value> = claims
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        self.principal(&map)
    }
}

/// The strings of a list-valued claim: a JSON array, or one string holding a JSON array,
/// API Gateway's `[a b]` form, or values separated by spaces or commas.
fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => {
            let t = s.trim();
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(t) {
                return list(Some(&Value::Array(items)));
            }
            t.trim_start_matches('[')
                .trim_end_matches(']')
                .split([' ', ','])
                .map(|p| p.trim().trim_matches('"'))
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Verifies RS256 JWTs against a key set (local mode).
#[derive(Clone)]
pub struct JwtVerifier {
    keys: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
    audience: String,
    claims: ClaimNames,
    verified: Arc<Mutex<HashMap<[u8; 32], Verified>>>,
}

/// A token that passed verification: its principal, until its `exp`.
#[derive(Debug, Clone)]
struct Verified {
    principal: Principal,
    exp: i64,
}

/// Tokens remembered as verified (RS256 verification is the largest fixed cost of a
/// request; a client sends the same token for its whole lifetime, and API Gateway's
/// authorizer caches the same way). Past this many, expired entries are dropped first,
/// then everything.
const VERIFIED_CAPACITY: usize = 10_000;

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("claims", &self.claims)
            .finish()
    }
}

impl JwtVerifier {
    /// From JWKS JSON text; only RSA keys are kept.
    pub fn from_jwks(
        jwks: &str,
        issuer: &str,
        audience: &str,
        claims: ClaimNames,
    ) -> Result<Self, AuthError> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| AuthError::Keys(e.to_string()))?;
        let keys: Vec<_> = set
            .keys
            .iter()
            .filter(|k| matches!(k.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)))
            .map(|k| {
                DecodingKey::from_jwk(k)
                    .map(|d| (k.common.key_id.clone(), d))
                    .map_err(|e| AuthError::Keys(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if keys.is_empty() {
            return Err(AuthError::Keys("the key set has no RSA key".into()));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        // The audience is checked as API Gateway's JWT authorizer checks it (see
        // `audience_matches`), which jsonwebtoken's own `aud` check cannot express.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // `nbf` and `iat`, when present, are checked like `exp` and with the same leeway,
        // as API Gateway's JWT authorizer checks them in AWS ("nbf – Must be before the
        // current time", "iat – Must be before the current time",
        // https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html);
        // jsonwebtoken checks `nbf`, `iat` is ours (`issued_in_the_future`).
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(JwtVerifier {
            keys,
            validation,
            audience: audience.to_owned(),
            claims,
            verified: Arc::default(),
        })
    }

    /// From a JWKS file.
    pub fn from_jwks_file(
        path: &std::path::Path,
        issuer: &str,
        audience: &str,
        claims: ClaimNames,
    ) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AuthError::Keys(format!("{}: {e}", path.display())))?;
        Self::from_jwks(&text, issuer, audience, claims)
    }

    /// From a JWKS URL (fetched once).
    pub async fn from_jwks_url(
        url: &str,
        issuer: &str,
        audience: &str,
        claims: ClaimNames,
    ) -> Result<Self, AuthError> {
        let fetch = async {
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        };
        let text = fetch
            .await
            .map_err(|e| AuthError::Keys(format!("{url}: {e}")))?;
        Self::from_jwks(&text, issuer, audience, claims)
    }

    /// Verifies `token` and returns its principal. A token verified before is recognised
    /// by its SHA-256 and accepted without a signature check until its `exp` (never past
    /// it: the remembered answer is no more lenient than a fresh check).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Some(v) = self.remembered().get(&key)
            && now < v.exp
        {
            return Ok(v.principal.clone());
        }
        let (principal, exp) = self.verify_signed(token)?;
        let mut cache = self.remembered();
        if cache.len() >= VERIFIED_CAPACITY {
            cache.retain(|_, v| now < v.exp);
            if cache.len() >= VERIFIED_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Verified {
                principal: principal.clone(),
                exp,
            },
        );
        Ok(principal)
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Verified>> {
        // a panic while holding the lock leaves a map that is still consistent
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signature and claims check proper; the principal and the token's `exp`.
    fn verify_signed(&self, token: &str) -> Result<(Principal, i64), AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Invalid("only RS256 tokens are accepted".into()));
        }
        let candidates = self
            .keys
            .iter()
            .filter(|(kid, _)| header.kid.is_none() || kid.is_none() || *kid == header.kid);
        let mut last = AuthError::Invalid("no key matches the token's `kid`".into());
        for (_, key) in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &self.validation) {
                Ok(data) => {
                    if !audience_matches(&data.claims, &self.audience) {
                        return Err(AuthError::Invalid(
                            "the token is not for this API (aud, or client_id without aud)".into(),
                        ));
                    }
                    if issued_in_the_future(&data.claims, chrono::Utc::now().timestamp()) {
                        return Err(AuthError::Invalid(
                            "the token's `iat` is in the future (or not a number)".into(),
                        ));
                    }
                    // `exp` is required and validated: a number here
                    let exp = data.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
                    return Ok((self.claims.principal(&data.claims)?, exp));
                }
                Err(e) => last = AuthError::Invalid(e.to_string()),
            }
        }
        Err(last)
    }
}

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Whether a token's `iat` is later than `now` (plus the leeway), or not a number. A token
/// without `iat` passes (the claim is optional, RFC 7519 section 4.1.6).
pub fn issued_in_the_future(claims: &Map<String, Value>, now: i64) -> bool {
    match claims.get("iat") {
        None => false,
        Some(iat) => iat
            .as_f64()
            .is_none_or(|iat| iat > (now + LEEWAY_SECS as i64) as f64),
    }
}

/// Whether verified `claims` are for `audience`, as API Gateway's JWT authorizer decides:
/// `aud` (a string or an array) must name it; only a token without `aud` is judged by its
/// `client_id` (Cognito access tokens carry no `aud`). "API Gateway validates client_id
/// only if aud is not present. When both aud and client_id are present, API Gateway
/// evaluates aud." —
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-jwt.html>
pub fn audience_matches(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        Some(_) => false,
        None => claims.get("client_id").and_then(Value::as_str) == Some(audience),
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum Authenticator {
    /// Behind API Gateway's JWT authorizer (Lambda): trust the request context's claims.
    ApiGateway(ClaimNames),
    /// Verify bearer tokens here (local server).
    Jwt(Box<JwtVerifier>),
}

impl Authenticator {
    /// The principal of a request, from its headers and extensions.
    pub fn authenticate(&self, parts: &http::request::Parts) -> Result<Principal, AuthError> {
        match self {
            Authenticator::ApiGateway(names) => {
                use lambda_http::request::RequestContext;
                let claims = match parts.extensions.get::<RequestContext>() {
                    Some(RequestContext::ApiGatewayV2(ctx)) => ctx
                        .authorizer
                        .as_ref()
                        .and_then(|a| a.jwt.as_ref())
                        .map(|j| &j.claims),
                    _ => None,
                };
                match claims {
                    Some(c) if !c.is_empty() => names.principal_from_gateway(c),
                    _ => Err(AuthError::Missing),
                }
            }
            Authenticator::Jwt(verifier) => {
                let header = parts
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|h| h.to_str().ok())
                    .ok_or(AuthError::Missing)?;
                let token = header
                    .strip_prefix("Bearer ")
                    .or_else(|| header.strip_prefix("bearer "))
                    .ok_or(AuthError::Missing)?;
                verifier.verify(token.trim())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn roles_and_cases_come_from_the_configured_claims() {
        let id = Uuid::now_v7();
        let names = ClaimNames::default();
        let p = names
            .principal(&claims(json!({
                "sub": "u1",
                DEFAULT_ROLES_CLAIM: ["analyst", "superuser"],
                DEFAULT_CASES_CLAIM: [id.to_string(), "not-a-uuid"],
            })))
            .unwrap();
        assert_eq!(p.roles, vec![Role::Analyst]);
        assert!(p.can_read() && !p.is_admin());
        assert!(p.may_access(id, "someone"));
        assert!(!p.may_access(Uuid::now_v7(), "someone"));
        assert!(p.may_access(Uuid::now_v7(), "u1"));
        let star = names
            .principal(&claims(json!({"sub": "u2", DEFAULT_CASES_CLAIM: "*"})))
            .unwrap();
        assert_eq!(star.cases, CaseGrant::All);
        assert!(!star.can_read());
        assert!(names.principal(&claims(json!({"sub": ""}))).is_err());
    }

    #[test]
    fn gateway_claims_accept_flattened_arrays() {
        let names = ClaimNames::default();
        let id = Uuid::now_v7();
        for roles in [
            "[admin analyst]",
            "[\"admin\",\"analyst\"]",
            "admin,analyst",
        ] {
            let map = HashMap::from([
                ("sub".to_string(), "u".to_string()),
                (DEFAULT_ROLES_CLAIM.to_string(), roles.to_string()),
                (DEFAULT_CASES_CLAIM.to_string(), format!("[{id}]")),
            ]);
            let p = names.principal_from_gateway(&map).unwrap();
            assert_eq!(p.roles, vec![Role::Admin, Role::Analyst], "{roles}");
            assert_eq!(p.cases, CaseGrant::Some(vec![id]));
        }
    }

    fn token(exp: i64, sub: &str) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("test-key-1".into());
        let key = include_bytes!("../tests/fixtures/test-jwt-key.pem");
        jsonwebtoken::encode(
            &header,
            &json!({"sub": sub, "iss": "https://issuer.test/", "aud": "chrono-api", "exp": exp,
                    DEFAULT_ROLES_CLAIM: ["analyst"]}),
            &jsonwebtoken::EncodingKey::from_rsa_pem(key).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_audience_is_aud_or_else_client_id_as_api_gateway_checks_it() {
        for (claims, ok) in [
            (json!({"aud": "api"}), true),
            (json!({"aud": ["other", "api"]}), true),
            (json!({"aud": "other"}), false),
            // a Cognito access token: no aud, the app client's id
            (json!({"client_id": "api"}), true),
            (json!({"client_id": "other"}), false),
            // aud wins over client_id when both are present
            (json!({"aud": "other", "client_id": "api"}), false),
            (json!({"aud": 7}), false),
            (json!({}), false),
        ] {
            assert_eq!(
                audience_matches(claims.as_object().unwrap(), "api"),
                ok,
                "{claims}"
            );
        }
        let v = JwtVerifier::from_jwks(
            include_str!("../tests/fixtures/test-jwks.json"),
            "https://issuer.test/",
            "chrono-api",
            ClaimNames::default(),
        )
        .unwrap();
        let sign = |claims: Value| {
            let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
            header.kid = Some("test-key-1".into());
            let key = include_bytes!("../tests/fixtures/test-jwt-key.pem");
            jsonwebtoken::encode(
                &header,
                &claims,
                &jsonwebtoken::EncodingKey::from_rsa_pem(key).unwrap(),
            )
            .unwrap()
        };
        let exp = chrono::Utc::now().timestamp() + 600;
        let cognito = sign(
            json!({"sub": "u", "iss": "https://issuer.test/", "exp": exp,
                                  "client_id": "chrono-api", "token_use": "access"}),
        );
        assert_eq!(v.verify(&cognito).unwrap().sub, "u");
        let elsewhere = sign(
            json!({"sub": "u", "iss": "https://issuer.test/", "exp": exp,
                                    "client_id": "another-app"}),
        );
        assert!(v.verify(&elsewhere).is_err());
    }

    #[test]
    fn verified_tokens_are_remembered_only_until_they_expire() {
        let v = JwtVerifier::from_jwks(
            include_str!("../tests/fixtures/test-jwks.json"),
            "https://issuer.test/",
            "chrono-api",
            ClaimNames::default(),
        )
        .unwrap();
        let now = chrono::Utc::now().timestamp();
        let good = token(now + 600, "alice");
        assert_eq!(v.verify(&good).unwrap().sub, "alice");
        assert_eq!(v.remembered().len(), 1);
        assert_eq!(
            v.verify(&good).unwrap().sub,
            "alice",
            "a hit answers the same"
        );
        assert_eq!(v.remembered().len(), 1);

        // a token that differs in one byte of its signature is checked, and refused
        let mut forged = good.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert!(v.verify(std::str::from_utf8(&forged).unwrap()).is_err());

        // a remembered entry past its exp is not honoured: the token is checked again
        // (here: a forged token planted in the cache with an expired entry is refused)
        let planted = "not.a.jwt";
        let key: [u8; 32] = Sha256::digest(planted.as_bytes()).into();
        let principal = v.verify(&good).unwrap();
        v.remembered().insert(
            key,
            Verified {
                principal,
                exp: now - 1,
            },
        );
        assert!(v.verify(planted).is_err());

        // a token long expired is refused and not remembered
        assert!(v.verify(&token(now - 3600, "bob")).is_err());
        assert!(v.remembered().values().all(|e| e.principal.sub == "alice"));
    }
}
