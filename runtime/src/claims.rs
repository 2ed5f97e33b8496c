//! The Cognito pre-token-generation trigger (`chrono-token-claims`): when the stacks create
//! the user pool (no external identity provider configured), user-pool groups become the
//! roles and cases claims the API reads, in access and ID tokens alike.
//!
//! | group | claim |
//! |---|---|
//! | [`ADMIN_GROUP`], [`ANALYST_GROUP`] | roles claim: `["admin"]`, `["analyst"]` |
//! | [`ALL_CASES_GROUP`] | cases claim: `["*"]` |
//! | `case-<uuid>` ([`CASE_GROUP_PREFIX`]) | cases claim: that case id |
//!
//! Custom claims reach Cognito tokens only through this trigger, and access tokens only
//! with the V2_0 event (user pools on the Essentials or Plus feature plan); V2 claims may be
//! arrays. <https://docs.aws.amazon.com/cognito/latest/developerguide/user-pool-lambda-pre-token-generation.html>
//! The group names come from `chrono_contract::groups`, as the `web` stack's do;
//! `tests/tests/web_contract.rs` checks the whole path from groups to an API principal.

use std::collections::HashMap;

use aws_lambda_events::event::cognito::{
    ClaimsAndScopeOverrideDetailsV2, CognitoAccessTokenGenerationV2,
    CognitoEventUserPoolsPreTokenGenV2, CognitoIdTokenGenerationV2,
};
use serde_json::{Value, json};

use crate::auth::ClaimNames;

/// Members may administer cases, upload and process evidence.
pub const ADMIN_GROUP: &str = chrono_contract::groups::ADMIN;
/// Members may read, search, label and ask the AI.
pub const ANALYST_GROUP: &str = chrono_contract::groups::ANALYST;
/// Members may see every case.
pub const ALL_CASES_GROUP: &str = chrono_contract::groups::ALL_CASES;
/// `case-<case id>`: members may see that case.
pub const CASE_GROUP_PREFIX: &str = chrono_contract::groups::CASE_PREFIX;

/// The roles and cases claims of a member of `groups` (unknown groups give nothing).
pub fn claims_for(names: &ClaimNames, groups: &[String]) -> HashMap<String, Value> {
    let roles: Vec<&str> = [ADMIN_GROUP, ANALYST_GROUP]
        .into_iter()
        .filter(|r| groups.iter().any(|g| g == r))
        .collect();
    let cases: Vec<String> = if groups.iter().any(|g| g == ALL_CASES_GROUP) {
        vec!["*".to_owned()]
    } else {
        let mut ids: Vec<String> = groups
            .iter()
            .filter_map(|g| g.strip_prefix(CASE_GROUP_PREFIX))
            .filter_map(|id| uuid::Uuid::parse_str(id).ok())
            .map(|id| id.to_string())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    HashMap::from([
        (names.roles.clone(), json!(roles)),
        (names.cases.clone(), json!(cases)),
    ])
}

/// The trigger's answer: `event` with the claims added to both tokens.
pub fn handle(
    names: &ClaimNames,
    mut event: CognitoEventUserPoolsPreTokenGenV2,
) -> CognitoEventUserPoolsPreTokenGenV2 {
    let groups = event.request.group_configuration.groups_to_override.clone();
    let claims = claims_for(names, &groups);
    let mut access = CognitoAccessTokenGenerationV2::default();
    access.claims_to_add_or_override = claims.clone();
    let mut id = CognitoIdTokenGenerationV2::default();
    id.claims_to_add_or_override = claims;
    let mut details = ClaimsAndScopeOverrideDetailsV2::default();
    details.access_token_generation = Some(access);
    details.id_token_generation = Some(id);
    event.response.claims_and_scope_override_details = Some(details);
    event
}

/// Runs as the trigger Lambda (claim names from `CHRONO_ROLES_CLAIM`/`CHRONO_CASES_CLAIM`).
pub async fn run_lambda() -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{LambdaEvent, run, service_fn};
    let env = |k: &str, default: &str| {
        std::env::var(k)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let names = ClaimNames {
        roles: env("CHRONO_ROLES_CLAIM", crate::auth::DEFAULT_ROLES_CLAIM),
        cases: env("CHRONO_CASES_CLAIM", crate::auth::DEFAULT_CASES_CLAIM),
    };
    run(service_fn(
        move |event: LambdaEvent<CognitoEventUserPoolsPreTokenGenV2>| {
            let answer = handle(&names, event.payload);
            async move { Ok::<_, std::convert::Infallible>(answer) }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(list: &[&str]) -> Vec<String> {
        list.iter().map(|g| (*g).to_owned()).collect()
    }

    #[test]
    fn groups_become_roles_and_cases() {
        let names = ClaimNames::default();
        let case = "0190f5c8-0000-7000-8000-000000000001";
        for (member_of, roles, cases) in [
            (vec!["admin"], json!(["admin"]), json!([])),
            (
                vec!["analyst", "all-cases"],
                json!(["analyst"]),
                json!(["*"]),
            ),
            (
                vec![
                    "analyst",
                    &format!("case-{case}") as &str,
                    "case-nonsense",
                    "other",
                ],
                json!(["analyst"]),
                json!([case]),
            ),
            (
                vec!["admin", "analyst"],
                json!(["admin", "analyst"]),
                json!([]),
            ),
            (vec![], json!([]), json!([])),
        ] {
            let c = claims_for(&names, &groups(&member_of));
            assert_eq!(c[&names.roles], roles, "{member_of:?}");
            assert_eq!(c[&names.cases], cases, "{member_of:?}");
        }
    }

    #[test]
    fn the_answer_adds_the_claims_to_both_tokens_of_a_real_v2_event() {
        // The V2_0 request as Cognito documents it (trimmed to what the trigger reads).
        let event: CognitoEventUserPoolsPreTokenGenV2 = serde_json::from_value(json!({
            "version": "2", "triggerSource": "TokenGeneration_HostedAuth",
            "region": "eu-west-1", "userPoolId": "eu-west-1_abc", "userName": "alice",
            "callerContext": {"awsSdkVersion": "x", "clientId": "client"},
            "request": {
                "userAttributes": {"sub": "s", "email": "alice@example.com"},
                "groupConfiguration": {"groupsToOverride": ["analyst", "all-cases"],
                                       "iamRolesToOverride": [], "preferredRole": null},
                "scopes": ["openid", "email"]
            },
            "response": {"claimsAndScopeOverrideDetails": null}
        }))
        .unwrap();
        let out = serde_json::to_value(handle(&ClaimNames::default(), event)).unwrap();
        let details = &out["response"]["claimsAndScopeOverrideDetails"];
        for token in ["accessTokenGeneration", "idTokenGeneration"] {
            let added = &details[token]["claimsToAddOrOverride"];
            assert_eq!(
                added["https://chronotracer.io/roles"],
                json!(["analyst"]),
                "{out}"
            );
            assert_eq!(
                added["https://chronotracer.io/cases"],
                json!(["*"]),
                "{out}"
            );
        }
    }
}
