//! A stateful fake of the CloudFormation, S3 and DynamoDB calls the deploy engine makes,
//! served to the real SDK clients through `aws-smithy-mocks` interceptors.
//!
//! It models documented CloudFormation behaviour the local emulator does not reproduce:
//! change sets with no changes end FAILED with "didn't contain changes"; executions take a
//! few polls; failed creates roll back to ROLLBACK_COMPLETE with per-resource events
//! (first the real failure, then cancellations); failed updates roll back to
//! UPDATE_ROLLBACK_COMPLETE or get stuck in UPDATE_ROLLBACK_FAILED; outputs appear when
//! an operation completes; a changed `*Name` property replaces a resource.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudformation as cf;
use aws_sdk_dynamodb as ddb;
use aws_sdk_s3 as s3;
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, Rule, RuleMode, mock};
use cf::error::ErrorMetadata;
use cf::types::{
    Change, ChangeAction, ChangeSetStatus, ChangeType, Output, Parameter, Replacement,
    RequiresRecreation, ResourceChange, ResourceChangeDetail, ResourceStatus,
    ResourceTargetDefinition, Stack, StackEvent, StackResourceSummary, StackStatus, Tag,
};
use chrono_provisioner::aws::Clients;
use serde_json::Value;

/// How the next execution of a stack's change set ends.
#[derive(Debug, Clone)]
pub enum Failure {
    /// Resource `logical_id` fails with `reason`; a create rolls back to ROLLBACK_COMPLETE,
    /// an update to UPDATE_ROLLBACK_COMPLETE.
    Resource { logical_id: String, reason: String },
    /// The update fails and its rollback fails too on `logical_id` (UPDATE_ROLLBACK_FAILED).
    RollbackFails { logical_id: String, reason: String },
}

#[derive(Debug, Clone, Default)]
pub struct FakeStack {
    pub status: String,
    pub reason: Option<String>,
    pub template: Value,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub events: Vec<StackEventRec>,
    pub resources: BTreeMap<String, (String, String, String)>,
    pub polls_left: usize,
    pub pending: Option<Pending>,
    /// Termination protection.
    pub protected: bool,
}

#[derive(Debug, Clone)]
pub struct StackEventRec {
    pub id: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Pending {
    pub kind: &'static str,
    pub template: Value,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub changes: Vec<(String, String, String, String)>,
}

#[derive(Debug, Clone)]
pub struct FakeChangeSet {
    pub stack: String,
    pub create: bool,
    pub template: Value,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// (action, logical id, type, replacement)
    pub changes: Vec<(String, String, String, String)>,
    pub polls_left: usize,
    pub executed: bool,
}

#[derive(Debug, Default)]
pub struct World {
    pub stacks: BTreeMap<String, FakeStack>,
    pub change_sets: BTreeMap<String, FakeChangeSet>,
    pub objects: BTreeMap<String, Vec<u8>>,
    pub items: HashMap<String, HashMap<String, ddb::types::AttributeValue>>,
    pub calls: BTreeMap<&'static str, usize>,
    /// Order in which change sets were executed (stack names).
    pub executions: Vec<String>,
    /// Highest number of stacks in progress at once.
    pub max_in_progress: usize,
    pub next_id: usize,
    /// Polls an execution takes before it finishes.
    pub exec_polls: usize,
    /// Lambda invocations: (function, payload).
    pub invocations: Vec<(String, String)>,
    /// Whether `Invoke` answers a function error.
    pub migrate_fails: bool,
    /// How the next execution of a stack ends (absent = success).
    pub fail_next: BTreeMap<String, Failure>,
    /// The account STS says the caller acts in.
    pub account: String,
    /// Change sets report an empty `Replacement` field (as CloudFormation sometimes does).
    pub blank_replacement: bool,
    /// `GetTemplate` answers this instead of the stack's template (an unreadable body).
    pub template_override: Option<String>,
    /// `RoleARN` of every CreateChangeSet and DeleteStack, in call order: (operation,
    /// stack, role).
    pub role_arns: Vec<(&'static str, String, Option<String>)>,
}

impl World {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{:08}", self.next_id)
    }

    fn count(&mut self, op: &'static str) {
        *self.calls.entry(op).or_default() += 1;
    }

    fn event(&mut self, stack: &str, logical: &str, ty: &str, status: &str, reason: Option<&str>) {
        let id = self.id();
        if let Some(s) = self.stacks.get_mut(stack) {
            s.events.push(StackEventRec {
                id,
                logical_id: logical.into(),
                resource_type: ty.into(),
                status: status.into(),
                reason: reason.map(str::to_owned),
            });
        }
    }

    fn in_progress(&self) -> usize {
        self.stacks
            .values()
            .filter(|s| s.status.ends_with("_IN_PROGRESS") && s.status != "REVIEW_IN_PROGRESS")
            .count()
    }

    /// Advances an executing stack by one poll; finishes it when its polls run out.
    fn tick(&mut self, name: &str) {
        let Some(s) = self.stacks.get_mut(name) else {
            return;
        };
        if s.pending.is_none() {
            return;
        }
        if s.polls_left > 0 {
            s.polls_left -= 1;
            return;
        }
        let p = s.pending.take().unwrap_or_else(|| unreachable!());
        let fail = self.fail_next.remove(name);
        let create = p.kind == "CREATE";
        match fail {
            None => {
                for (action, id, ty, _) in &p.changes {
                    let st = match action.as_str() {
                        "Add" => "CREATE_COMPLETE",
                        "Remove" => "DELETE_COMPLETE",
                        _ => "UPDATE_COMPLETE",
                    };
                    self.event(name, id, ty, &st.replace("COMPLETE", "IN_PROGRESS"), None);
                    self.event(name, id, ty, st, None);
                }
                let s = self.stacks.get_mut(name).unwrap_or_else(|| unreachable!());
                s.template = p.template.clone();
                s.params = p.params.clone();
                s.tags = p.tags.clone();
                s.status = if create {
                    "CREATE_COMPLETE"
                } else {
                    "UPDATE_COMPLETE"
                }
                .into();
                s.resources = resources_of(name, &p.template);
                s.outputs = outputs_of(&p.template, &p.params, &s.resources);
                let st = s.status.clone();
                self.event(name, name, "AWS::CloudFormation::Stack", &st, None);
            }
            Some(Failure::Resource { logical_id, reason }) => {
                let ty = type_of(&p.template, &logical_id);
                let verb = if create { "CREATE" } else { "UPDATE" };
                self.event(name, &logical_id, &ty, &format!("{verb}_IN_PROGRESS"), None);
                self.event(
                    name,
                    &logical_id,
                    &ty,
                    &format!("{verb}_FAILED"),
                    Some(&reason),
                );
                for (_, id, ty, _) in p.changes.iter().filter(|c| c.1 != logical_id) {
                    self.event(
                        name,
                        id,
                        ty,
                        &format!("{verb}_FAILED"),
                        Some("Resource creation cancelled"),
                    );
                }
                let s = self.stacks.get_mut(name).unwrap_or_else(|| unreachable!());
                s.status = if create {
                    "ROLLBACK_COMPLETE"
                } else {
                    "UPDATE_ROLLBACK_COMPLETE"
                }
                .into();
                s.reason = Some(format!(
                    "The following resource(s) failed to {}: [{logical_id}]. ",
                    verb.to_lowercase()
                ));
                let st = s.status.clone();
                self.event(name, name, "AWS::CloudFormation::Stack", &st, None);
            }
            Some(Failure::RollbackFails { logical_id, reason }) => {
                let ty = type_of(&p.template, &logical_id);
                self.event(
                    name,
                    &logical_id,
                    &ty,
                    "UPDATE_FAILED",
                    Some("Resource update cancelled"),
                );
                self.event(name, &logical_id, &ty, "UPDATE_FAILED", Some(&reason));
                let s = self.stacks.get_mut(name).unwrap_or_else(|| unreachable!());
                if let Some(r) = s.resources.get_mut(&logical_id) {
                    r.2 = "UPDATE_FAILED".into();
                }
                s.status = "UPDATE_ROLLBACK_FAILED".into();
                self.event(
                    name,
                    name,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_FAILED",
                    None,
                );
            }
        }
    }
}

fn type_of(t: &Value, id: &str) -> String {
    t["Resources"][id]["Type"]
        .as_str()
        .unwrap_or("AWS::CloudFormation::WaitConditionHandle")
        .to_owned()
}

fn resources_of(stack: &str, t: &Value) -> BTreeMap<String, (String, String, String)> {
    t["Resources"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        (
                            format!("{stack}-{}", k.to_lowercase()),
                            v["Type"].as_str().unwrap_or("").to_owned(),
                            "CREATE_COMPLETE".to_owned(),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn outputs_of(
    t: &Value,
    params: &BTreeMap<String, String>,
    res: &BTreeMap<String, (String, String, String)>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(m) = t["Outputs"].as_object() {
        for (k, o) in m {
            let v = match &o["Value"] {
                Value::String(s) => s.clone(),
                Value::Object(r) => match r.get("Ref").and_then(Value::as_str) {
                    Some(p) => params
                        .get(p)
                        .cloned()
                        .or_else(|| res.get(p).map(|r| r.0.clone()))
                        .unwrap_or_default(),
                    None => String::new(),
                },
                _ => String::new(),
            };
            out.insert(k.clone(), v);
        }
    }
    out
}

fn diff(
    old: &Value,
    new: &Value,
    old_params: &BTreeMap<String, String>,
    new_params: &BTreeMap<String, String>,
    old_tags: &BTreeMap<String, String>,
    new_tags: &BTreeMap<String, String>,
) -> Vec<(String, String, String, String)> {
    let empty = serde_json::Map::new();
    let o = old["Resources"].as_object().unwrap_or(&empty);
    let n = new["Resources"].as_object().unwrap_or(&empty);
    let mut out = Vec::new();
    let settings_changed = old_params != new_params || old_tags != new_tags;
    for (k, v) in n {
        let ty = v["Type"].as_str().unwrap_or("").to_owned();
        match o.get(k) {
            None => out.push(("Add".into(), k.clone(), ty, String::new())),
            Some(ov) if ov != v => {
                let op = ov["Properties"].as_object().cloned().unwrap_or_default();
                let np = v["Properties"].as_object().cloned().unwrap_or_default();
                let replaced = op
                    .keys()
                    .chain(np.keys())
                    .any(|p| p.ends_with("Name") && op.get(p) != np.get(p));
                out.push((
                    "Modify".into(),
                    k.clone(),
                    ty,
                    if replaced { "True" } else { "False" }.into(),
                ));
            }
            Some(_) if settings_changed => {
                out.push(("Modify".into(), k.clone(), ty, "False".into()))
            }
            Some(_) => {}
        }
    }
    for (k, v) in o {
        if !n.contains_key(k) {
            out.push((
                "Remove".into(),
                k.clone(),
                v["Type"].as_str().unwrap_or("").to_owned(),
                String::new(),
            ));
        }
    }
    out
}

fn validation(msg: String) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("ValidationError")
        .message(msg)
        .build()
}

fn missing(name: &str) -> ErrorMetadata {
    validation(format!("Stack with id {name} does not exist"))
}

/// The fake, and the SDK clients wired to it.
#[derive(Clone)]
pub struct FakeAws {
    pub world: Arc<Mutex<World>>,
    pub throttle_describe: usize,
}

impl FakeAws {
    pub fn new() -> Self {
        let w = World {
            exec_polls: 2,
            account: "111122223333".into(),
            ..World::default()
        };
        Self {
            world: Arc::new(Mutex::new(w)),
            throttle_describe: 0,
        }
    }

    pub fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn calls(&self, op: &'static str) -> usize {
        self.w().calls.get(op).copied().unwrap_or(0)
    }

    /// Puts a stack in a given state (as another operator or an earlier run left it).
    pub fn seed(&self, name: &str, status: &str, template: Value, params: &[(&str, &str)]) {
        let mut w = self.world.lock().unwrap_or_else(|e| e.into_inner());
        let params: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let resources = resources_of(name, &template);
        let outputs = outputs_of(&template, &params, &resources);
        w.stacks.insert(
            name.into(),
            FakeStack {
                status: status.into(),
                template,
                params,
                outputs,
                resources,
                ..FakeStack::default()
            },
        );
        w.event(name, name, "AWS::CloudFormation::Stack", status, None);
    }

    pub fn fail_next(&self, name: &str, f: Failure) {
        self.w().fail_next.insert(name.into(), f);
    }

    /// SDK clients (CloudFormation, S3, DynamoDB) served by this fake, with adaptive
    /// retries and millisecond backoff.
    pub fn clients(&self) -> Clients {
        let sdk = aws_types::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("eu-west-1"))
            .credentials_provider(cf::config::SharedCredentialsProvider::new(
                cf::config::Credentials::new("AKIDFAKE", "secret", None, None, "fake"),
            ))
            .retry_config(
                aws_config::retry::RetryConfig::adaptive()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .build();
        let interceptor = |rules: Vec<Rule>| {
            let mut i = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
            for r in &rules {
                i = i.with_rule(r);
            }
            i
        };
        let cfn = cf::Client::from_conf(
            cf::config::Builder::from(&sdk)
                .interceptor(interceptor(self.cfn_rules()))
                .build(),
        );
        let s3c = s3::Client::from_conf(
            s3::config::Builder::from(&sdk)
                .interceptor(interceptor(self.s3_rules()))
                .build(),
        );
        let ddbc = ddb::Client::from_conf(
            ddb::config::Builder::from(&sdk)
                .interceptor(interceptor(self.ddb_rules()))
                .build(),
        );
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk)
                .interceptor(interceptor(self.lambda_rules()))
                .build(),
        );
        let w = self.world.clone();
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(&sdk)
                .interceptor(interceptor(vec![
                    mock!(aws_sdk_sts::Client::get_caller_identity).then_compute_response(
                        move |_| {
                            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                            w.count("GetCallerIdentity");
                            let account = w.account.clone();
                            MockResponse::Output(
                                aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
                                    .account(&account)
                                    .arn(format!("arn:aws:sts::{account}:assumed-role/ops/ci"))
                                    .user_id("AROAFAKE:ci")
                                    .build(),
                            )
                        },
                    ),
                ]))
                .build(),
        );
        // Not modelled: any call fails (the engine only calls them to ship an image or
        // hot-swap, which these tests do not do).
        Clients {
            sts,
            endpoint_url: None,
            cfn,
            s3: s3c,
            ddb: ddbc,
            lambda,
            // the engine never calls CloudFront (only the web app's publish does)
            cloudfront: aws_sdk_cloudfront::Client::new(&sdk),
            ecr: aws_sdk_ecr::Client::new(&sdk),
            ecs: aws_sdk_ecs::Client::new(&sdk),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            iam: aws_sdk_iam::Client::new(&sdk),
            region: "eu-west-1".into(),
            s3_endpoint: None,
        }
    }

    fn cfn_rules(&self) -> Vec<Rule> {
        let mut rules = Vec::new();
        if self.throttle_describe > 0 {
            // Retries replay the same rule without the request, so the answer after the
            // throttles is the one the first DescribeStacks of a fresh account gets.
            let err = |code: &str, msg: &str| {
                format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{msg}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
                )
            };
            let w = self.world.clone();
            rules.push(
                mock!(cf::Client::describe_stacks)
                    .sequence()
                    .http_response(move || {
                        *w.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .calls
                            .entry("Throttled")
                            .or_default() += 1;
                        cf::config::http::HttpResponse::new(
                            400.try_into().unwrap_or_else(|_| unreachable!()),
                            err("Throttling", "Rate exceeded").into(),
                        )
                    })
                    .times(self.throttle_describe)
                    .http_status(
                        400,
                        Some(err(
                            "ValidationError",
                            "Stack with id chrono-acme-prod-bootstrap does not exist",
                        )),
                    )
                    .build(),
            );
        }
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::describe_stacks).then_compute_response(move |req| {
                use cf::operation::describe_stacks::{
                    DescribeStacksError as E, DescribeStacksOutput as O,
                };
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("DescribeStacks");
                let name = req.stack_name().unwrap_or("").to_owned();
                w.tick(&name);
                let Some(s) = w.stacks.get(&name) else {
                    return MockResponse::Error(E::generic(missing(&name)));
                };
                let stack = Stack::builder()
                    .stack_name(&name)
                    .stack_id(format!(
                        "arn:aws:cloudformation:eu-west-1:111111111111:stack/{name}/1"
                    ))
                    .creation_time(cf::primitives::DateTime::from_secs(1_700_000_000))
                    .stack_status(StackStatus::from(s.status.as_str()))
                    .enable_termination_protection(s.protected)
                    .set_stack_status_reason(s.reason.clone())
                    .set_outputs(Some(
                        s.outputs
                            .iter()
                            .map(|(k, v)| Output::builder().output_key(k).output_value(v).build())
                            .collect(),
                    ))
                    .set_parameters(Some(
                        s.params
                            .iter()
                            .map(|(k, v)| {
                                Parameter::builder()
                                    .parameter_key(k)
                                    .parameter_value(v)
                                    .build()
                            })
                            .collect(),
                    ))
                    .set_tags(Some(
                        s.tags
                            .iter()
                            .map(|(k, v)| Tag::builder().key(k).value(v).build())
                            .collect(),
                    ))
                    .build();
                MockResponse::Output(O::builder().stacks(stack).build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::create_change_set).then_compute_response(move |req| {
                use cf::operation::create_change_set::{
                    CreateChangeSetError as E, CreateChangeSetOutput as O,
                };
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("CreateChangeSet");
                let name = req.stack_name().unwrap_or("").to_owned();
                w.role_arns.push((
                    "CreateChangeSet",
                    name.clone(),
                    req.role_arn().map(str::to_owned),
                ));
                let create = req.change_set_type().map(|t| t.as_str()) == Some("CREATE");
                let body = match (req.template_body(), req.template_url()) {
                    (Some(b), _) => b.to_owned(),
                    (None, Some(url)) => {
                        // https://<bucket>.s3.<region>.amazonaws.com/<key>
                        let rest = url.trim_start_matches("https://");
                        let (host, key) = rest.split_once('/').unwrap_or((rest, ""));
                        let bucket = host.split(".s3.").next().unwrap_or("");
                        match w.objects.get(&format!("{bucket}/{key}")) {
                            Some(b) => String::from_utf8_lossy(b).into_owned(),
                            None => {
                                return MockResponse::Error(E::generic(validation(format!(
                                    "TemplateURL must be a supported URL: {url}"
                                ))));
                            }
                        }
                    }
                    (None, None) => "{}".to_owned(),
                };
                if body.len() > 51_200 && req.template_body().is_some() {
                    return MockResponse::Error(E::generic(validation(
                        "Value at 'templateBody' failed to satisfy constraint: Member must have length less than or equal to 51200".into(),
                    )));
                }
                let template: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let params: BTreeMap<String, String> = req
                    .parameters()
                    .iter()
                    .map(|p| {
                        (
                            p.parameter_key().unwrap_or("").to_owned(),
                            p.parameter_value().unwrap_or("").to_owned(),
                        )
                    })
                    .collect();
                let tags: BTreeMap<String, String> = req
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or("").to_owned(),
                            t.value().unwrap_or("").to_owned(),
                        )
                    })
                    .collect();
                let existing = w.stacks.get(&name).cloned();
                let (old_t, old_p, old_tags) = match &existing {
                    Some(s) if s.status != "REVIEW_IN_PROGRESS" => {
                        if create {
                            return MockResponse::Error(E::generic(
                                ErrorMetadata::builder()
                                    .code("AlreadyExistsException")
                                    .message(format!("Stack [{name}] already exists"))
                                    .build(),
                            ));
                        }
                        if s.status.ends_with("_IN_PROGRESS")
                            || s.status == "UPDATE_ROLLBACK_FAILED"
                            || s.status == "ROLLBACK_COMPLETE"
                        {
                            return MockResponse::Error(E::generic(validation(format!(
                                "Stack:{name} is in {} state and can not be updated.",
                                s.status
                            ))));
                        }
                        (s.template.clone(), s.params.clone(), s.tags.clone())
                    }
                    Some(_) | None => {
                        if !create {
                            return MockResponse::Error(E::generic(missing(&name)));
                        }
                        (Value::Null, BTreeMap::new(), BTreeMap::new())
                    }
                };
                if existing.is_none() {
                    w.stacks.insert(
                        name.clone(),
                        FakeStack {
                            status: "REVIEW_IN_PROGRESS".into(),
                            ..FakeStack::default()
                        },
                    );
                    w.event(
                        &name,
                        &name,
                        "AWS::CloudFormation::Stack",
                        "REVIEW_IN_PROGRESS",
                        Some("User Initiated"),
                    );
                }
                let mut changes = diff(&old_t, &template, &old_p, &params, &old_tags, &tags);
                if w.blank_replacement {
                    for c in &mut changes {
                        c.3.clear();
                    }
                }
                let id = format!(
                    "arn:aws:cloudformation:eu-west-1:111111111111:changeSet/{}/{}",
                    req.change_set_name().unwrap_or(""),
                    w.id()
                );
                w.change_sets.insert(
                    id.clone(),
                    FakeChangeSet {
                        stack: name.clone(),
                        create,
                        template,
                        params,
                        tags,
                        changes,
                        polls_left: 1,
                        executed: false,
                    },
                );
                MockResponse::Output(
                    O::builder()
                        .id(id)
                        .stack_id(format!("stack/{name}"))
                        .build(),
                )
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::list_change_sets).then_compute_response(move |req| {
                use cf::operation::list_change_sets::ListChangeSetsOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("ListChangeSets");
                let name = req.stack_name().unwrap_or("").to_owned();
                let summaries = w
                    .change_sets
                    .iter()
                    .filter(|(_, c)| c.stack == name)
                    .map(|(id, _)| {
                        cf::types::ChangeSetSummary::builder()
                            .change_set_id(id)
                            .change_set_name(id.split('/').nth(1).unwrap_or(""))
                            .stack_name(&name)
                            .execution_status(cf::types::ExecutionStatus::Available)
                            .status(ChangeSetStatus::CreateComplete)
                            .build()
                    })
                    .collect::<Vec<_>>();
                MockResponse::Output(O::builder().set_summaries(Some(summaries)).build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::get_template).then_compute_response(move |req| {
                use cf::operation::get_template::{GetTemplateError as E, GetTemplateOutput as O};
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("GetTemplate");
                let name = req.stack_name().unwrap_or("").to_owned();
                let over = w.template_override.clone();
                let Some(s) = w.stacks.get(&name) else {
                    return MockResponse::Error(E::generic(missing(&name)));
                };
                MockResponse::Output(
                    O::builder()
                        .template_body(over.unwrap_or_else(|| s.template.to_string()))
                        .build(),
                )
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::update_termination_protection).then_compute_response(move |req| {
                use cf::operation::update_termination_protection::{
                    UpdateTerminationProtectionError as E, UpdateTerminationProtectionOutput as O,
                };
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("UpdateTerminationProtection");
                let name = req.stack_name().unwrap_or("").to_owned();
                let on = req.enable_termination_protection().unwrap_or(false);
                let Some(s) = w.stacks.get_mut(&name) else {
                    return MockResponse::Error(E::generic(missing(&name)));
                };
                s.protected = on;
                MockResponse::Output(O::builder().stack_id(format!("stack/{name}")).build())
            }),
        );
        let w = self.world.clone();
        rules.push(mock!(cf::Client::describe_change_set).then_compute_response(move |req| {
            use cf::operation::describe_change_set::{DescribeChangeSetError as E, DescribeChangeSetOutput as O};
            let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
            w.count("DescribeChangeSet");
            let id = req.change_set_name().unwrap_or("").to_owned();
            let Some(cs) = w.change_sets.get_mut(&id) else {
                return MockResponse::Error(E::ChangeSetNotFoundException(
                    cf::types::error::ChangeSetNotFoundException::builder().message("ChangeSet does not exist").build(),
                ));
            };
            if cs.polls_left > 0 {
                cs.polls_left -= 1;
                return MockResponse::Output(O::builder().status(ChangeSetStatus::CreateInProgress).build());
            }
            if cs.changes.is_empty() {
                return MockResponse::Output(
                    O::builder()
                        .status(ChangeSetStatus::Failed)
                        .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
                        .build(),
                );
            }
            let changes: Vec<Change> = cs
                .changes
                .iter()
                .map(|(a, id, ty, rep)| {
                    let mut rc = ResourceChange::builder()
                        .action(ChangeAction::from(a.as_str()))
                        .logical_resource_id(id)
                        .resource_type(ty);
                    if !rep.is_empty() {
                        rc = rc.replacement(Replacement::from(rep.as_str()));
                        let prop = if rep == "True" { "BucketName" } else { "Tags" };
                        rc = rc.details(
                            ResourceChangeDetail::builder()
                                .target(
                                    ResourceTargetDefinition::builder()
                                        .attribute(cf::types::ResourceAttribute::Properties)
                                        .name(prop)
                                        .requires_recreation(if rep == "True" { RequiresRecreation::Always } else { RequiresRecreation::Never })
                                        .build(),
                                )
                                .build(),
                        );
                    }
                    Change::builder().r#type(ChangeType::Resource).resource_change(rc.build()).build()
                })
                .collect();
            MockResponse::Output(O::builder().status(ChangeSetStatus::CreateComplete).set_changes(Some(changes)).build())
        }));
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::delete_change_set).then_compute_response(move |req| {
                use cf::operation::delete_change_set::DeleteChangeSetOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("DeleteChangeSet");
                w.change_sets.remove(req.change_set_name().unwrap_or(""));
                MockResponse::Output(O::builder().build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::execute_change_set).then_compute_response(move |req| {
                use cf::operation::execute_change_set::{
                    ExecuteChangeSetError as E, ExecuteChangeSetOutput as O,
                };
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("ExecuteChangeSet");
                let id = req.change_set_name().unwrap_or("").to_owned();
                let Some(cs) = w.change_sets.remove(&id) else {
                    return MockResponse::Error(E::ChangeSetNotFoundException(
                        cf::types::error::ChangeSetNotFoundException::builder()
                            .message("ChangeSet does not exist")
                            .build(),
                    ));
                };
                let polls = w.exec_polls;
                let name = cs.stack.clone();
                w.executions.push(name.clone());
                let s = w.stacks.entry(name.clone()).or_default();
                s.status = if cs.create {
                    "CREATE_IN_PROGRESS"
                } else {
                    "UPDATE_IN_PROGRESS"
                }
                .into();
                s.reason = None;
                s.polls_left = polls;
                s.pending = Some(Pending {
                    kind: if cs.create { "CREATE" } else { "UPDATE" },
                    template: cs.template,
                    params: cs.params,
                    tags: cs.tags,
                    changes: cs.changes,
                });
                let st = s.status.clone();
                w.event(
                    &name,
                    &name,
                    "AWS::CloudFormation::Stack",
                    &st,
                    Some("User Initiated"),
                );
                let n = w.in_progress();
                w.max_in_progress = w.max_in_progress.max(n);
                MockResponse::Output(O::builder().build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::describe_stack_events).then_compute_response(move |req| {
                use cf::operation::describe_stack_events::{
                    DescribeStackEventsError as E, DescribeStackEventsOutput as O,
                };
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("DescribeStackEvents");
                let name = req.stack_name().unwrap_or("").to_owned();
                let Some(s) = w.stacks.get(&name) else {
                    return MockResponse::Error(E::generic(missing(&name)));
                };
                let evs: Vec<StackEvent> = s
                    .events
                    .iter()
                    .rev()
                    .map(|e| {
                        StackEvent::builder()
                            .stack_id(&name)
                            .stack_name(&name)
                            .event_id(&e.id)
                            .logical_resource_id(&e.logical_id)
                            .resource_type(&e.resource_type)
                            .resource_status(ResourceStatus::from(e.status.as_str()))
                            .set_resource_status_reason(e.reason.clone())
                            .timestamp(cf::primitives::DateTime::from_secs(1_700_000_000))
                            .build()
                    })
                    .collect();
                MockResponse::Output(O::builder().set_stack_events(Some(evs)).build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::list_stack_resources).then_compute_response(move |req| {
                use cf::operation::list_stack_resources::{
                    ListStackResourcesError as E, ListStackResourcesOutput as O,
                };
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("ListStackResources");
                let name = req.stack_name().unwrap_or("").to_owned();
                let Some(s) = w.stacks.get(&name) else {
                    return MockResponse::Error(E::generic(missing(&name)));
                };
                let rs: Vec<StackResourceSummary> = s
                    .resources
                    .iter()
                    .map(|(k, (p, t, st))| {
                        StackResourceSummary::builder()
                            .logical_resource_id(k)
                            .physical_resource_id(p)
                            .resource_type(t)
                            .resource_status(ResourceStatus::from(st.as_str()))
                            .last_updated_timestamp(cf::primitives::DateTime::from_secs(
                                1_700_000_000,
                            ))
                            .build()
                    })
                    .collect();
                MockResponse::Output(O::builder().set_stack_resource_summaries(Some(rs)).build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::delete_stack).then_compute_response(move |req| {
                use cf::operation::delete_stack::DeleteStackOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("DeleteStack");
                let name = req.stack_name().unwrap_or("").to_owned();
                w.role_arns.push((
                    "DeleteStack",
                    name.clone(),
                    req.role_arn().map(str::to_owned),
                ));
                if w.stacks.get(&name).is_some_and(|s| s.protected) {
                    return MockResponse::Error(cf::operation::delete_stack::DeleteStackError::generic(validation(format!(
                        "Stack [{name}] cannot be deleted while TerminationProtection is enabled"
                    ))));
                }
                w.stacks.remove(&name);
                MockResponse::Output(O::builder().build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(cf::Client::continue_update_rollback).then_compute_response(move |req| {
                use cf::operation::continue_update_rollback::{
                    ContinueUpdateRollbackError as E, ContinueUpdateRollbackOutput as O,
                };
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("ContinueUpdateRollback");
                let name = req.stack_name().unwrap_or("").to_owned();
                let skip: Vec<String> = req.resources_to_skip().to_vec();
                let Some(s) = w.stacks.get_mut(&name) else {
                    return MockResponse::Error(E::generic(missing(&name)));
                };
                if s.status != "UPDATE_ROLLBACK_FAILED" {
                    return MockResponse::Error(E::generic(validation(format!(
                        "Stack {name} is in {} state and can not continue update rollback",
                        s.status
                    ))));
                }
                let stuck: Vec<String> = s
                    .resources
                    .iter()
                    .filter(|(_, r)| r.2 == "UPDATE_FAILED")
                    .map(|(k, _)| k.clone())
                    .collect();
                if stuck.iter().any(|k| !skip.contains(k)) {
                    // The resource still cannot be rolled back.
                    return MockResponse::Output(O::builder().build());
                }
                for k in &stuck {
                    if let Some(r) = s.resources.get_mut(k) {
                        r.2 = "UPDATE_COMPLETE".into();
                    }
                }
                s.status = "UPDATE_ROLLBACK_COMPLETE".into();
                w.event(
                    &name,
                    &name,
                    "AWS::CloudFormation::Stack",
                    "UPDATE_ROLLBACK_COMPLETE",
                    None,
                );
                MockResponse::Output(O::builder().build())
            }),
        );
        rules
    }

    /// `Invoke`: records the payload; answers a function error while `migrate_fails`.
    fn lambda_rules(&self) -> Vec<Rule> {
        let w = self.world.clone();
        vec![
            mock!(aws_sdk_lambda::Client::invoke).then_compute_response(move |req| {
                use aws_sdk_lambda::operation::invoke::InvokeOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("Invoke");
                let payload = req
                    .payload()
                    .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                    .unwrap_or_default();
                w.invocations
                    .push((req.function_name().unwrap_or("").to_owned(), payload));
                let out = if w.migrate_fails {
                    O::builder()
                        .status_code(200)
                        .function_error("Unhandled")
                        .payload(aws_sdk_lambda::primitives::Blob::new(
                            r#"{"errorMessage":"connection refused"}"#,
                        ))
                } else {
                    O::builder()
                        .status_code(200)
                        .payload(aws_sdk_lambda::primitives::Blob::new(r#"{"applied":3}"#))
                };
                MockResponse::Output(out.build())
            }),
        ]
    }

    fn s3_rules(&self) -> Vec<Rule> {
        let mut rules = Vec::new();
        let w = self.world.clone();
        rules.push(
            mock!(s3::Client::head_object).then_compute_response(move |req| {
                use s3::operation::head_object::{HeadObjectError as E, HeadObjectOutput as O};
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("HeadObject");
                let k = format!("{}/{}", req.bucket().unwrap_or(""), req.key().unwrap_or(""));
                match w.objects.get(&k) {
                    Some(b) => MockResponse::Output(
                        O::builder()
                            .content_length(i64::try_from(b.len()).unwrap_or(0))
                            .build(),
                    ),
                    None => MockResponse::Error(E::NotFound(
                        s3::types::error::NotFound::builder().build(),
                    )),
                }
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(s3::Client::put_object).then_compute_response(move |req| {
                use s3::operation::put_object::PutObjectOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("PutObject");
                let k = format!("{}/{}", req.bucket().unwrap_or(""), req.key().unwrap_or(""));
                let bytes = req.body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
                w.objects.insert(k, bytes);
                MockResponse::Output(O::builder().build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(s3::Client::list_object_versions).then_compute_response(move |req| {
                use s3::operation::list_object_versions::ListObjectVersionsOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("ListObjectVersions");
                let prefix = format!("{}/", req.bucket().unwrap_or(""));
                let versions: Vec<s3::types::ObjectVersion> = w
                    .objects
                    .keys()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(|k| {
                        s3::types::ObjectVersion::builder()
                            .key(k)
                            .version_id("v1")
                            .build()
                    })
                    .collect();
                MockResponse::Output(O::builder().set_versions(Some(versions)).build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(s3::Client::delete_objects).then_compute_response(move |req| {
                use s3::operation::delete_objects::DeleteObjectsOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("DeleteObjects");
                let bucket = req.bucket().unwrap_or("").to_owned();
                if let Some(d) = req.delete() {
                    for o in d.objects() {
                        w.objects.remove(&format!("{bucket}/{}", o.key()));
                    }
                }
                MockResponse::Output(O::builder().build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(s3::Client::delete_bucket).then_compute_response(move |_req| {
                use s3::operation::delete_bucket::DeleteBucketOutput as O;
                w.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .count("DeleteBucket");
                MockResponse::Output(O::builder().build())
            }),
        );
        rules
    }

    fn ddb_rules(&self) -> Vec<Rule> {
        use ddb::types::AttributeValue as A;
        let mut rules = Vec::new();
        let w = self.world.clone();
        rules.push(
            mock!(ddb::Client::put_item).then_compute_response(move |req| {
                use ddb::operation::put_item::{PutItemError as E, PutItemOutput as O};
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("PutItem");
                let item = req.item().cloned().unwrap_or_default();
                let key = match item.get("lock_id") {
                    Some(A::S(k)) => k.clone(),
                    _ => String::new(),
                };
                let cond = req.condition_expression().unwrap_or("");
                if cond == "run_id = :old" {
                    // a takeover: only if the holder is still the one judged
                    let old = req
                        .expression_attribute_values()
                        .and_then(|v| v.get(":old"));
                    if w.items.get(&key).and_then(|i| i.get("run_id")) != old {
                        return MockResponse::Error(E::ConditionalCheckFailedException(
                            ddb::types::error::ConditionalCheckFailedException::builder()
                                .message("The conditional request failed")
                                .build(),
                        ));
                    }
                } else if !cond.is_empty() {
                    let now: i64 = match req
                        .expression_attribute_values()
                        .and_then(|v| v.get(":now"))
                    {
                        Some(A::N(n)) => n.parse().unwrap_or(0),
                        _ => 0,
                    };
                    if let Some(cur) = w.items.get(&key) {
                        let exp: i64 = match cur.get("expires_at_ms") {
                            Some(A::N(n)) => n.parse().unwrap_or(0),
                            _ => 0,
                        };
                        if exp >= now {
                            return MockResponse::Error(E::ConditionalCheckFailedException(
                                ddb::types::error::ConditionalCheckFailedException::builder()
                                    .message("The conditional request failed")
                                    .build(),
                            ));
                        }
                    }
                }
                w.items.insert(key, item);
                MockResponse::Output(O::builder().build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(ddb::Client::get_item).then_compute_response(move |req| {
                use ddb::operation::get_item::GetItemOutput as O;
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("GetItem");
                let key = match req.key().and_then(|k| k.get("lock_id")) {
                    Some(A::S(k)) => k.clone(),
                    _ => String::new(),
                };
                MockResponse::Output(O::builder().set_item(w.items.get(&key).cloned()).build())
            }),
        );
        let run_matches =
            |w: &World, key: &Option<HashMap<String, A>>, vals: Option<&HashMap<String, A>>| {
                let k = match key.as_ref().and_then(|k| k.get("lock_id")) {
                    Some(A::S(k)) => k.clone(),
                    _ => String::new(),
                };
                let ok = match (
                    w.items.get(&k).and_then(|i| i.get("run_id")),
                    vals.and_then(|v| v.get(":r")),
                ) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                };
                (k, ok)
            };
        let w = self.world.clone();
        rules.push(
            mock!(ddb::Client::delete_item).then_compute_response(move |req| {
                use ddb::operation::delete_item::{DeleteItemError as E, DeleteItemOutput as O};
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("DeleteItem");
                let (k, ok) =
                    run_matches(&w, &req.key().cloned(), req.expression_attribute_values());
                if !ok {
                    return MockResponse::Error(E::ConditionalCheckFailedException(
                        ddb::types::error::ConditionalCheckFailedException::builder()
                            .message("The conditional request failed")
                            .build(),
                    ));
                }
                w.items.remove(&k);
                MockResponse::Output(O::builder().build())
            }),
        );
        let w = self.world.clone();
        rules.push(
            mock!(ddb::Client::update_item).then_compute_response(move |req| {
                use ddb::operation::update_item::{UpdateItemError as E, UpdateItemOutput as O};
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                w.count("UpdateItem");
                let (k, ok) =
                    run_matches(&w, &req.key().cloned(), req.expression_attribute_values());
                if !ok {
                    return MockResponse::Error(E::ConditionalCheckFailedException(
                        ddb::types::error::ConditionalCheckFailedException::builder()
                            .message("The conditional request failed")
                            .build(),
                    ));
                }
                if let (Some(item), Some(e)) = (
                    w.items.get_mut(&k),
                    req.expression_attribute_values().and_then(|v| v.get(":e")),
                ) {
                    item.insert("expires_at_ms".into(), e.clone());
                }
                MockResponse::Output(O::builder().build())
            }),
        );
        rules
    }
}
