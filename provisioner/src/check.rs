//! `chronoctl check`: policy rules over the synthesized templates, run in-process before
//! any AWS call.
//!
//! The rules are AWS CloudFormation Guard rules kept in `provisioner/rules/`, compiled into
//! the binary and evaluated with the `cfn-guard` crate; the report's paths give the
//! logical id of each offending resource, the rule's `<< >>` message the fix hint. One rule
//! is a typed check here ([`OWN_ROLE`]), because Guard cannot count references between
//! resources; CloudFormation's limits are reported as rule [`LIMITS`]. Output: one line per violation (`stack logical-id rule: hint`) or
//! `--output json`; exit 1 on any violation.

use crate::output::Verdict;
use std::collections::BTreeMap;

use chrono_stacks::Config;
use chrono_stacks::model::{Template, needs_upload};
use chrono_stacks::synth::build_stacks;
use serde::Serialize;
use serde_json::{Value, json};

use crate::Error;
use crate::output::OutputFormat;
use crate::synth::ConfigArgs;
use crate::synth::load_configs;

/// The Guard rule files: (file name, text).
pub const RULE_FILES: [(&str, &str); 1] = [(
    "chronotracer.guard",
    include_str!("../rules/chronotracer.guard"),
)];

/// Name of the typed rule: every Lambda and task has an IAM role of its own.
pub const OWN_ROLE: &str = "own_role";

/// One violation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Violation {
    /// Stack name.
    pub stack: String,
    /// Logical id of the offending resource.
    pub logical_id: String,
    /// Rule name.
    pub rule: String,
    /// How to fix it.
    pub hint: String,
}

/// The `ChronoCheck` block the rules read: facts from the config.
pub fn context(cfg: &Config) -> Value {
    let grant = chrono_stacks::bedrock::invoke_grant(&[
        cfg.bedrock.guard_model_id.as_str(),
        cfg.bedrock.main_model_id.as_str(),
    ]);
    let arns: Vec<Value> = grant
        .direct
        .iter()
        .chain(&grant.through_profiles)
        .map(|m| m.to_json()["Fn::Sub"].clone())
        .collect();
    json!({"stage": cfg.stage.as_str(), "bedrock_model_arns": arns})
}

/// Check one template (CloudFormation JSON) of `stack`.
pub fn check_template(
    cfg: &Config,
    stack: &str,
    template: &Value,
) -> Result<Vec<Violation>, Error> {
    let mut doc = template.clone();
    if let Some(root) = doc.as_object_mut() {
        root.insert("ChronoCheck".into(), context(cfg));
    }
    let data = doc.to_string();
    let mut out = Vec::new();
    for (file, rules) in RULE_FILES {
        // The non-verbose report of cfn-guard 3.2 loses everything beyond its first 8 KiB
        // (it reads the BufWriter's buffer); the verbose event tree is complete.
        let tree = cfn_guard::run_checks(
            cfn_guard::ValidateInput {
                content: &data,
                file_name: stack,
            },
            cfn_guard::ValidateInput {
                content: rules,
                file_name: file,
            },
            true,
        )
        .map_err(|e| Error::Guard {
            stack: stack.to_owned(),
            reason: e.to_string(),
        })?;
        let tree: Value = serde_json::from_str(&tree).map_err(|e| Error::Guard {
            stack: stack.to_owned(),
            reason: format!("unreadable report: {e}"),
        })?;
        collect_failures(&tree, None, stack, &mut out);
    }
    out.extend(own_role(stack, template));
    out.sort();
    out.dedup();
    Ok(out)
}

/// Walk Guard's event tree: inside a failed rule, every failed value check that is not
/// part of a filter or a `when` condition is a violation.
fn collect_failures(node: &Value, rule: Option<&str>, stack: &str, out: &mut Vec<Violation>) {
    let container = &node["container"];
    if ["Filter", "RuleCondition", "WhenCondition", "TypeCondition"]
        .iter()
        .any(|k| container.get(k).is_some())
    {
        return;
    }
    let mut rule = rule;
    if let Some(check) = container.get("RuleCheck") {
        if check["status"] != "FAIL" {
            return;
        }
        rule = check["name"].as_str();
    }
    if let (Some(rule), Some(check)) = (rule, container.get("ClauseValueCheck"))
        && let Some(variant) = check.as_object().and_then(|m| m.values().next())
    {
        // Binary checks carry their status directly, unary ones under `value`.
        let detail = if variant.get("status").is_some() {
            variant
        } else {
            &variant["value"]
        };
        if detail["status"] != "FAIL" {
            return;
        }
        let mut paths = Vec::new();
        collect_paths(&detail["from"], &mut paths);
        let logical_id = paths
            .iter()
            .find_map(|p| p.strip_prefix("/Resources/"))
            .map_or("-", |rest| rest.split('/').next().unwrap_or("-"));
        let hint = detail["custom_message"]
            .as_str()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .or_else(|| detail["message"].as_str())
            .unwrap_or("see provisioner/rules/");
        out.push(Violation {
            stack: stack.to_owned(),
            logical_id: logical_id.to_owned(),
            rule: rule.to_owned(),
            hint: hint.to_owned(),
        });
    }
    for child in node["children"].as_array().into_iter().flatten() {
        collect_failures(child, rule, stack, out);
    }
}

fn collect_paths<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_paths(i, out)),
        Value::Object(map) => {
            for (k, inner) in map {
                match inner {
                    Value::String(s) if k == "path" => out.push(s),
                    _ => collect_paths(inner, out),
                }
            }
        }
        _ => {}
    }
}

/// The typed rule: each Lambda (`Role`) and task definition (`TaskRoleArn`) uses an
/// `AWS::IAM::Role` of this template that nothing else of those uses.
pub fn own_role(stack: &str, template: &Value) -> Vec<Violation> {
    let Some(resources) = template["Resources"].as_object() else {
        return Vec::new();
    };
    let mut users: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut out = Vec::new();
    for (id, r) in resources {
        let role = match r["Type"].as_str() {
            Some("AWS::Lambda::Function") => &r["Properties"]["Role"],
            Some("AWS::ECS::TaskDefinition") => &r["Properties"]["TaskRoleArn"],
            _ => continue,
        };
        let target = role["Fn::GetAtt"][0].as_str().filter(|t| {
            resources
                .get(*t)
                .is_some_and(|res| res["Type"] == "AWS::IAM::Role")
        });
        match target {
            Some(t) => users.entry(t.to_owned()).or_default().push(id),
            None => out.push(Violation {
                stack: stack.to_owned(),
                logical_id: id.clone(),
                rule: OWN_ROLE.into(),
                hint: "reference a role of this stack with Fn::GetAtt [<Role>, Arn]".into(),
            }),
        }
    }
    for (role, ids) in users.into_iter().filter(|(_, ids)| ids.len() > 1) {
        for id in ids {
            out.push(Violation {
                stack: stack.to_owned(),
                logical_id: id.to_owned(),
                rule: OWN_ROLE.into(),
                hint: format!("role {role} is shared; give each Lambda and task its own role"),
            });
        }
    }
    out
}

/// Name of the rule reporting CloudFormation limits (also enforced by `synth`).
pub const LIMITS: &str = "cfn_limits";

/// CloudFormation's limits on one template: resources, parameters, outputs, body size.
pub fn limits(stack: &str, template: &Template) -> Option<Violation> {
    let err = template
        .check_limits()
        .and_then(|()| needs_upload(&template.to_yaml()).map(|_| ()))
        .err()?;
    Some(Violation {
        stack: stack.to_owned(),
        logical_id: "-".into(),
        rule: LIMITS.into(),
        hint: err.to_string(),
    })
}

/// What the runtime sends Bedrock (`runtime/src/ai/bedrock.rs`: the guard forces its
/// `verdict` tool, the filter writer forces a tool, both at temperature 0); a model that
/// refuses either fails every AI request. A test reads the runtime's source to keep this
/// true.
pub const RUNTIME_SENDS: [chrono_stacks::bedrock::RequestSetting; 2] = [
    chrono_stacks::bedrock::RequestSetting::ForcedToolChoice,
    chrono_stacks::bedrock::RequestSetting::SamplingParameters,
];

/// Warnings about the config's Bedrock models (defect 5 of issue 13): Legacy, end of
/// life, unknown to `stacks/data/bedrock-models.yaml`, a geography without a profile,
/// or request settings the runtime sends that the model refuses. Warnings do not fail
/// `check`: the facts age, and an account may still have access to a Legacy model.
pub fn model_warnings(cfg: &Config) -> Vec<String> {
    let mut ids = vec![
        ("guard_model_id", &cfg.bedrock.guard_model_id),
        ("main_model_id", &cfg.bedrock.main_model_id),
    ];
    ids.dedup_by(|a, b| a.1 == b.1);
    ids.into_iter()
        .filter_map(|(field, id)| {
            chrono_stacks::bedrock::warning(id, &RUNTIME_SENDS)
                .map(|w| format!("{} bedrock.{field}: {w}", cfg.customer))
        })
        .collect()
}

/// What the account owner must do once so the configured Bedrock models answer.
pub fn model_access_steps() -> &'static [String] {
    &chrono_stacks::bedrock::catalog().access
}

/// Check every stack of a config.
pub fn check_config(cfg: &Config) -> Result<Vec<Violation>, Error> {
    let mut out = Vec::new();
    for stack in build_stacks(cfg)? {
        out.extend(limits(&stack.name, &stack.template));
        out.extend(check_template(cfg, &stack.name, &stack.template.to_json())?);
    }
    Ok(out)
}

/// `chronoctl check` with output.
pub fn run(args: &ConfigArgs, output: OutputFormat) -> Result<Verdict, Error> {
    let mut violations = Vec::new();
    let mut warnings = Vec::new();
    let configs = load_configs(args)?;
    for (_, cfg) in &configs {
        violations.extend(check_config(cfg)?);
        warnings.extend(model_warnings(cfg));
    }
    match output {
        OutputFormat::Json => {
            let doc =
                json!({"configs": configs.len(), "violations": violations, "warnings": warnings});
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        OutputFormat::Text => {
            for w in &warnings {
                println!("warning: {w}");
            }
            for v in &violations {
                println!("{} {} {}: {}", v.stack, v.logical_id, v.rule, v.hint);
            }
            if violations.is_empty() {
                println!("{} config(s) pass every rule", configs.len());
            } else {
                println!("{} violation(s)", violations.len());
            }
        }
    }
    Ok(if violations.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    })
}
