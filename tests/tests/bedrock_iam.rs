//! The roles that call Bedrock (the chat function, the filter-ai task) may invoke the
//! configured models through their cross-region inference profile, and nothing else
//! (defect 5 of issue 13). Checked with the documented IAM needs because no emulator
//! serves Bedrock's authorization: a call through a system-defined profile is authorized
//! on the profile's ARN in the source Region and on the foundation model in the Region the
//! profile routes to, with `bedrock:InferenceProfileArn` naming the profile
//! (<https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-prereq.html>);
//! `Converse` is authorized as `bedrock:InvokeModel`
//! (<https://docs.aws.amazon.com/bedrock/latest/userguide/inference-prereq.html>).

use chrono_stacks::StackKind;
use chrono_stacks::config::Config;
use chrono_stacks::synth::build_stacks;
use chrono_tests::iam::{Request, Values, allows, role_statements};
use serde_json::Value;

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "111122223333";

fn config(name: &str) -> Config {
    let path = format!("{}/../customers/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    Config::load(std::path::Path::new(&path)).unwrap()
}

/// The statements of `role` in the compute stack of `cfg`, with every parameter and
/// resource given a placeholder value (only the pseudo parameters matter for Bedrock).
fn statements(cfg: &Config, role: &str) -> Vec<Value> {
    let stack = build_stacks(cfg)
        .unwrap()
        .into_iter()
        .find(|s| s.kind == StackKind::Compute)
        .unwrap();
    let t = stack.template.to_json();
    let mut values = Values::new(REGION, ACCOUNT);
    for name in t["Parameters"].as_object().unwrap().keys() {
        values.set(name, format!("value-of-{name}"));
    }
    for id in t["Resources"].as_object().unwrap().keys() {
        values.set(id, format!("{id}-physical"));
        values.set(
            &format!("{id}.Arn"),
            format!("arn:aws:x:{REGION}:{ACCOUNT}:{id}"),
        );
    }
    role_statements(&t, role, &values).unwrap()
}

#[test]
fn bedrock_roles_invoke_the_configured_model_through_its_profile_and_nothing_else() {
    let cfg = config("acme-prod");
    let id = &cfg.bedrock.main_model_id;
    let model = id.split_once('.').unwrap().1;
    let profile = format!("arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{id}");
    for role in ["AiChatRole", "FilterAiTaskRole"] {
        let s = statements(&cfg, role);
        let can = |req: Request| allows(&s, &req).unwrap();
        for action in [
            "bedrock:InvokeModel",
            "bedrock:InvokeModelWithResponseStream",
        ] {
            assert!(
                can(Request::new(action, &profile)),
                "{role} {action} profile"
            );
            // every Region of the geography the profile may route to
            for routed in ["eu-west-1", "eu-central-1", "eu-north-1", "eu-west-3"] {
                let fm = format!("arn:aws:bedrock:{routed}::foundation-model/{model}");
                assert!(
                    can(Request::new(action, &fm).with("bedrock:InferenceProfileArn", &profile)),
                    "{role} {action} {fm} through the profile"
                );
                // the model called directly, or through another profile: denied
                assert!(!can(Request::new(action, &fm)), "{role} {fm} directly");
                let other = profile.replace("inference-profile/eu.", "inference-profile/global.");
                assert!(
                    !can(Request::new(action, &fm).with("bedrock:InferenceProfileArn", &other)),
                    "{role} {fm} through {other}"
                );
            }
        }
        // another model, through a profile or not
        let other_model = "anthropic.claude-opus-4-8";
        let other =
            format!("arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/eu.{other_model}");
        assert!(!can(Request::new("bedrock:InvokeModel", &other)), "{role}");
        let fm = format!("arn:aws:bedrock:{REGION}::foundation-model/{other_model}");
        assert!(
            !can(Request::new("bedrock:InvokeModel", &fm)
                .with("bedrock:InferenceProfileArn", &other)),
            "{role}"
        );
    }
    // the API and pipeline roles never call Bedrock
    for role in ["ApiRole", "PipelineTaskRole"] {
        let s = statements(&cfg, role);
        let req = Request::new("bedrock:InvokeModel", &profile);
        assert!(!allows(&s, &req).unwrap(), "{role}");
    }
}
