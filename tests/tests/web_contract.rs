//! The web app's contract across crates that cannot see each other:
//!
//! * the user-pool groups the web stack creates (`chrono_stacks::web`) are the ones the
//!   token trigger (`chrono_runtime::claims`) turns into the roles and cases claims, and
//!   the roles it writes are the ones the API recognises (`chrono_runtime::auth`);
//! * the trigger the web stack deploys is a binary the runtime builds;
//! * the API's CORS methods cover every method of the API's OpenAPI document, and its
//!   proxy routes are exactly those methods.

use std::collections::BTreeSet;

use chrono_runtime::auth::{ClaimNames, Role};
use chrono_runtime::claims::{self, claims_for};
use chrono_stacks::api::{API_ROUTES, CORS_METHODS};
use chrono_stacks::web;

#[test]
fn the_pool_groups_become_the_claims_the_api_reads() {
    assert_eq!(web::ADMIN_GROUP, claims::ADMIN_GROUP);
    assert_eq!(web::ANALYST_GROUP, claims::ANALYST_GROUP);
    assert_eq!(web::ALL_CASES_GROUP, claims::ALL_CASES_GROUP);
    assert_eq!(web::CASE_GROUP_PREFIX, claims::CASE_GROUP_PREFIX);

    // through the real claim parser of the API: groups → principal
    let names = ClaimNames::default();
    let case = uuid::Uuid::now_v7();
    let groups = vec![
        web::ADMIN_GROUP.to_owned(),
        web::ANALYST_GROUP.to_owned(),
        format!("{}{case}", web::CASE_GROUP_PREFIX),
    ];
    let mut token: serde_json::Map<String, serde_json::Value> =
        claims_for(&names, &groups).into_iter().collect();
    token.insert("sub".into(), "alice".into());
    let p = names.principal(&token).unwrap();
    assert_eq!(p.roles, vec![Role::Admin, Role::Analyst]);
    assert!(p.may_access(case, "someone else"));
    assert!(!p.may_access(uuid::Uuid::now_v7(), "someone else"));
}

#[test]
fn the_trigger_the_stack_deploys_is_a_runtime_binary() {
    let manifest = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runtime/Cargo.toml"
    ))
    .unwrap();
    assert!(
        manifest.contains(&format!("name = \"{}\"", web::TOKEN_CLAIMS_BINARY)),
        "runtime/Cargo.toml has no binary {}",
        web::TOKEN_CLAIMS_BINARY
    );
}

#[test]
fn cors_and_routes_cover_every_method_of_the_api() {
    let doc: serde_json::Value =
        serde_json::from_str(&chrono_runtime::api::openapi::document()).unwrap();
    let mut methods = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for method in ops.as_object().unwrap().keys() {
            methods.insert(method.to_uppercase());
        }
    }
    let cors: BTreeSet<String> = CORS_METHODS.iter().map(|m| (*m).to_owned()).collect();
    assert!(methods.is_subset(&cors), "{methods:?} not all in {cors:?}");
    let routed: BTreeSet<String> = API_ROUTES
        .iter()
        .map(|r| r.split_once(' ').unwrap().0.to_owned())
        .collect();
    assert_eq!(routed, cors);
}
