//! The Lambda REQUEST authorizer of the WebSocket API's `$connect` route
//! (`chrono-ws-authorizer`).
//!
//! API Gateway calls it with the `$connect` request (identity source
//! `route.request.querystring.token`, see [`super::gateway::TOKEN_QUERY`]); it verifies the
//! RS256 JWT against the identity provider's key set with issuer, audience and expiry
//! checked (the same [`JwtVerifier`] as the local servers) and answers an IAM policy:
//! `Allow` on the request's `methodArn` with the caller's subject and the verified token
//! in the context ([`super::gateway::context_of`]), or `Deny` (the client gets 403 and no
//! connection). API Gateway then maps the token into a header on every route of the
//! connection, and filter-ai verifies it again (see [`super::gateway`] for why).
//!
//! It never logs the token and never reaches the database.

use serde::Deserialize;
use serde_json::{Value, json};

use super::gateway::{TOKEN_QUERY, context_of};
use crate::auth::{Authenticator, JwtVerifier};

/// The part of API Gateway's WebSocket REQUEST authorizer event this handler reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent {
    /// ARN of the `$connect` route being authorized.
    pub method_arn: String,
    /// The `$connect` request's query string.
    #[serde(default)]
    pub query_string_parameters: Option<std::collections::HashMap<String, String>>,
}

fn policy(principal: &str, effect: &str, resource: &str) -> Value {
    json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": effect,
                "Resource": resource
            }]
        }
    })
}

/// The authorizer's answer to `event`: `Allow` with the caller's context for a token that
/// verifies, `Deny` for anything else.
pub fn authorize(verifier: &JwtVerifier, event: &AuthorizerEvent) -> Value {
    let token = event
        .query_string_parameters
        .as_ref()
        .and_then(|q| q.get(TOKEN_QUERY))
        .map(|t| t.trim())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        tracing::info!("websocket connect without a token: denied");
        return policy("anonymous", "Deny", &event.method_arn);
    };
    match verifier.verify(token) {
        Ok(p) => {
            let mut answer = policy(&p.sub, "Allow", &event.method_arn);
            answer["context"] = context_of(&p, token)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            tracing::info!(sub = p.sub, "websocket connect allowed");
            answer
        }
        Err(e) => {
            tracing::info!(reason = %e, "websocket connect denied");
            policy("anonymous", "Deny", &event.method_arn)
        }
    }
}

/// Why the authorizer could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// Issuer, audience or key set.
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
    /// The Lambda runtime stopped.
    #[error("lambda runtime: {0}")]
    Runtime(String),
}

/// Runs as the authorizer Lambda: `CHRONO_JWT_ISSUER`, `CHRONO_JWT_AUDIENCE`,
/// `CHRONO_JWKS_URL` (or `CHRONO_JWKS_FILE`), `CHRONO_ROLES_CLAIM`, `CHRONO_CASES_CLAIM`.
pub async fn run_lambda() -> Result<(), AuthorizerError> {
    use crate::server::{Mode, StartError, authenticator_from_env};
    use lambda_http::lambda_runtime::{LambdaEvent, run, service_fn};
    let verifier = match authenticator_from_env(Mode::Local).await? {
        Authenticator::Jwt(v) => v,
        Authenticator::ApiGateway(_) => {
            return Err(
                StartError::Config("the authorizer must verify tokens itself".into()).into(),
            );
        }
    };
    let verifier: std::sync::Arc<JwtVerifier> = std::sync::Arc::from(verifier);
    run(service_fn(move |event: LambdaEvent<AuthorizerEvent>| {
        let verifier = verifier.clone();
        async move { Ok::<_, std::convert::Infallible>(authorize(&verifier, &event.payload)) }
    }))
    .await
    .map_err(|e| AuthorizerError::Runtime(e.to_string()))
}
