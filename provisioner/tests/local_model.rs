//! `chronoctl local` without processes: the emulator plan comes from the stack model,
//! the runtime environment covers the whole contract, and tokens verify against the
//! minted JWKS.

use std::path::Path;

use chrono_provisioner::local::keys::{CASES_CLAIM, ROLES_CLAIM, SigningKey, TokenClaims};
use chrono_provisioner::local::layout::Layout;
use chrono_provisioner::local::provision::{Provisioned, plan};
use chrono_provisioner::local::runtime::{self, NOT_SET_LOCALLY, Wiring};
use chrono_stacks::config::Config;
use chrono_stacks::{compute, data};

fn demo_config() -> Config {
    Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../customers/demo-local.yaml"))
        .expect("customers/demo-local.yaml loads")
}

#[test]
fn plan_takes_names_keys_and_ttl_from_the_data_stack() {
    let cfg = demo_config();
    let p = plan(&cfg).unwrap();
    let stack = data::build(&cfg).unwrap();
    let buckets: Vec<_> = p.buckets.iter().map(|b| b.bucket_name.as_str()).collect();
    assert_eq!(
        buckets,
        [
            stack.sources_bucket.bucket_name.as_str(),
            stack.artifacts_bucket.bucket_name.as_str()
        ]
    );
    let tables: Vec<_> = p.tables.iter().map(|t| t.table_name.clone()).collect();
    let expected: Vec<_> = stack
        .tables()
        .iter()
        .map(|t| t.table_name.clone())
        .collect();
    assert_eq!(tables, expected);
    for (t, s) in p.tables.iter().zip(stack.tables()) {
        assert_eq!(t.key_schema, s.key_schema);
        assert_eq!(t.time_to_live_specification, s.time_to_live_specification);
    }
    assert_eq!(p.state_machine, compute::state_machine_name(&cfg));
}

#[test]
fn state_machine_definition_has_every_placeholder_filled() {
    let cfg = demo_config();
    let p = plan(&cfg).unwrap();
    assert!(!p.definition.contains("${"), "{}", p.definition);
    let def: serde_json::Value = serde_json::from_str(&p.definition).unwrap();
    assert_eq!(def["StartAt"], "Init");
    let artifacts = data::build(&cfg).unwrap().artifacts_bucket.bucket_name;
    assert_eq!(
        def["States"]["ProcessParts"]["ItemReader"]["Parameters"]["Bucket"],
        artifacts.as_str()
    );
    assert!(
        def["States"]["FailEvidence"]["Parameters"]["FunctionName"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:lambda:")
    );
}

#[test]
fn runtime_env_covers_every_contract_variable() {
    let cfg = demo_config();
    let provisioned = Provisioned {
        sources_bucket: "s".into(),
        artifacts_bucket: "a".into(),
        sessions_table: "t1".into(),
        intent_cache_table: "t2".into(),
        conversations_table: "t3".into(),
        state_machine_arn: "arn".into(),
    };
    let wiring = Wiring {
        cfg: &cfg,
        provisioned: &provisioned,
        aws_endpoint: "http://127.0.0.1:1",
        s3_endpoint: "http://127.0.0.1:4",
        issuer: "http://127.0.0.1:3",
        jwks_url: "http://127.0.0.1:3/.well-known/jwks.json",
    };
    let env = runtime::env(&wiring, "postgres://chrono_admin@127.0.0.1:2/chronotracer");
    assert_eq!(runtime::uncovered(&env), Vec::<&str>::new());
    for (name, _) in NOT_SET_LOCALLY {
        assert!(
            !env.contains_key(name),
            "{name} is set although listed as unset"
        );
    }
    assert_eq!(env["AWS_ENDPOINT_URL"], "http://127.0.0.1:1");
    // S3 clients go to the local S3 server on disk, everything else to moto
    assert_eq!(env["AWS_ENDPOINT_URL_S3"], "http://127.0.0.1:4");
    // locally the issuer is always the local one (the config's is for AWS)
    assert_eq!(env["CHRONO_JWT_ISSUER"], "http://127.0.0.1:3");
    assert_eq!(
        Some(&env["CHRONO_JWT_AUDIENCE"]),
        cfg.auth.jwt_audience.as_ref()
    );
    assert_eq!(env["CHRONO_AI_PROVIDER"], "local");
    assert_eq!(env["CHRONO_SESSIONS_TABLE"], "t1");
}

#[test]
fn tokens_verify_against_the_minted_jwks_and_carry_the_contract_claims() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    layout.create().unwrap();
    let (key, minted) = SigningKey::load_or_mint(&layout).unwrap();
    assert!(minted);
    let (again, minted_again) = SigningKey::load_or_mint(&layout).unwrap();
    assert!(!minted_again, "a second call must reuse the key");
    assert_eq!(key.kid(), again.kid());

    let case = uuid::Uuid::now_v7();
    let token = key
        .token(&TokenClaims {
            sub: "alice",
            issuer: "http://issuer/",
            audience: "aud",
            roles: vec!["analyst"],
            cases: vec![case],
            ttl_seconds: 600,
        })
        .unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&std::fs::read_to_string(layout.jwks()).unwrap()).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&["http://issuer/"]);
    validation.set_audience(&["aud"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
    assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims[ROLES_CLAIM], serde_json::json!(["analyst"]));
    assert_eq!(
        data.claims[CASES_CLAIM],
        serde_json::json!([case.to_string()])
    );

    validation.set_audience(&["someone-else"]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).is_err());
}
