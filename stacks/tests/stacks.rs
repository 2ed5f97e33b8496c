//! The six stacks: the resources and properties that matter, per stage, and the
//! cross-stack wiring.

use std::collections::BTreeSet;

use chrono_stacks::compute::RUNTIME_ENV;
use chrono_stacks::config::Config;
use chrono_stacks::stack::{ParamSource, StackKind};
use chrono_stacks::synth::{build_stacks, synthesize};
use chrono_stacks::{api, bootstrap, compute, data, network, pipeline, web};
use serde_json::{Value, json};

fn example(name: &str) -> Config {
    let path = format!("{}/../customers/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    Config::load(std::path::Path::new(&path)).unwrap()
}

fn preview() -> Config {
    let yaml = "customer: dev-jane\naccount_id: \"999988887777\"\nregion: eu-west-1\nstage: preview\n\
                auth:\n  jwt_issuer: https://dev.eu.auth0.com/\n  jwt_audience: dev\n  app_client_id: dev-app\n\
                preview:\n  expires_at: 2026-12-01T00:00:00Z\n";
    Config::parse("preview.yaml", yaml).unwrap()
}

fn of_type<'a>(t: &'a Value, kind: &str) -> Vec<(&'a String, &'a Value)> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .collect()
}

fn props<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(!r.is_null(), "no resource {id}");
    &r["Properties"]
}

#[test]
fn network_spans_the_configured_azs_with_nat_per_config() {
    let prod = network::build(&example("acme-prod"))
        .unwrap()
        .stack
        .template
        .to_json();
    let subnets = of_type(&prod, "AWS::EC2::Subnet");
    assert_eq!(subnets.len(), 6, "3 public + 3 private");
    for i in 1..=3u32 {
        let p = props(&prod, &format!("PrivateSubnet{i}"));
        assert_eq!(
            p["AvailabilityZone"],
            json!({"Fn::Select": [i - 1, {"Fn::GetAZs": ""}]})
        );
        assert_eq!(p["CidrBlock"], format!("10.20.{}.0/20", 128 + 16 * (i - 1)));
        assert_eq!(p["MapPublicIpOnLaunch"], false);
    }
    assert_eq!(of_type(&prod, "AWS::EC2::NatGateway").len(), 3);
    assert_eq!(
        props(&prod, "PrivateDefaultRoute2")["NatGatewayId"],
        json!({"Ref": "NatGateway2"})
    );
    let s3 = props(&prod, "S3GatewayEndpoint");
    assert_eq!(s3["VpcEndpointType"], "Gateway");
    assert_eq!(s3["RouteTableIds"].as_array().unwrap().len(), 3);
    let db_sg = props(&prod, "DatabaseSecurityGroup");
    let sources: Vec<&Value> = db_sg["SecurityGroupIngress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["SourceSecurityGroupId"])
        .collect();
    assert_eq!(
        sources,
        [
            &json!({"Fn::GetAtt": ["LambdaSecurityGroup", "GroupId"]}),
            &json!({"Fn::GetAtt": ["TaskSecurityGroup", "GroupId"]})
        ]
    );

    let staging = network::build(&example("acme-staging"))
        .unwrap()
        .stack
        .template
        .to_json();
    assert_eq!(of_type(&staging, "AWS::EC2::Subnet").len(), 4);
    assert_eq!(of_type(&staging, "AWS::EC2::NatGateway").len(), 1);
    assert_eq!(
        props(&staging, "PrivateDefaultRoute2")["NatGatewayId"],
        json!({"Ref": "NatGateway1"})
    );

    for cfg in [preview(), example("demo-local")] {
        let t = network::build(&cfg).unwrap().stack.template.to_json();
        assert!(
            of_type(&t, "AWS::EC2::NatGateway").is_empty(),
            "{} has NAT",
            cfg.stage
        );
        assert!(of_type(&t, "AWS::EC2::EIP").is_empty());
    }
    // Without NAT, a preview has no interface endpoint either (issue 16: each bills per AZ
    // and hour); it reaches AWS over IPv6 (`the_preview_reaches_every_aws_api_it_calls…`).
    let t = network::build(&preview()).unwrap().stack.template.to_json();
    let interface: Vec<&String> = of_type(&t, "AWS::EC2::VPCEndpoint")
        .into_iter()
        .filter(|(_, e)| e["Properties"]["VpcEndpointType"] == "Interface")
        .map(|(id, _)| id)
        .collect();
    assert!(interface.is_empty(), "{interface:?}");
    assert_eq!(
        of_type(&t, "AWS::EC2::VPCEndpoint").len(),
        2,
        "gateway endpoints"
    );
    assert_eq!(
        of_type(&prod, "AWS::EC2::VPCEndpoint").len(),
        2,
        "prod has NAT: gateway endpoints only"
    );
}

#[test]
fn data_stores_are_encrypted_and_retained_in_prod() {
    let cfg = example("acme-prod");
    let built = data::build(&cfg).unwrap();
    let t = built.stack.template.to_json();
    for id in ["SourcesBucket", "ArtifactsBucket"] {
        let b = props(&t, id);
        let sse = &b["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"];
        assert_eq!(sse["SSEAlgorithm"], "aws:kms");
        assert_eq!(
            sse["KMSMasterKeyID"],
            json!({"Fn::GetAtt": ["DataKey", "Arn"]})
        );
        assert_eq!(b["VersioningConfiguration"]["Status"], "Enabled");
        assert_eq!(
            b["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"],
            true
        );
        assert_eq!(t["Resources"][id]["DeletionPolicy"], "Retain");
        let policy = props(&t, &format!("{id}Policy"));
        assert_eq!(policy["Bucket"], json!({"Ref": id}));
        assert_eq!(
            policy["PolicyDocument"]["Statement"][0]["Condition"],
            json!({"Bool": {"aws:SecureTransport": "false"}})
        );
    }
    assert_eq!(
        props(&t, "ArtifactsBucket")["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"],
        90
    );
    let cluster = props(&t, "Database");
    assert_eq!(cluster["StorageEncrypted"], true);
    assert_eq!(cluster["DeletionProtection"], true);
    assert_eq!(cluster["ManageMasterUserPassword"], true);
    assert_eq!(
        cluster["ServerlessV2ScalingConfiguration"],
        json!({"MinCapacity": 2.0, "MaxCapacity": 64.0})
    );
    assert_eq!(cluster["BackupRetentionPeriod"], 30);
    assert_eq!(t["Resources"]["Database"]["DeletionPolicy"], "Snapshot");
    assert_eq!(
        t["Resources"]["Database"]["UpdateReplacePolicy"],
        "Snapshot"
    );
    assert_eq!(
        of_type(&t, "AWS::RDS::DBInstance").len(),
        2,
        "writer + 1 reader"
    );
    assert_eq!(props(&t, "DatabaseReader1")["PubliclyAccessible"], false);
    assert_eq!(
        props(&t, "DatabaseSubnetGroup")["SubnetIds"],
        json!({"Ref": "PrivateSubnetIds"})
    );

    for (table, id) in
        built
            .tables()
            .into_iter()
            .zip(["SessionsTable", "IntentCacheTable", "ConversationsTable"])
    {
        let p = props(&t, id);
        assert_eq!(p["TableName"], table.table_name);
        assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(
            p["TimeToLiveSpecification"],
            json!({"AttributeName": "expires_at", "Enabled": true})
        );
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            true
        );
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
        assert_eq!(p["SSESpecification"]["SSEType"], "KMS");
        assert_eq!(table.ttl_attribute(), "expires_at");
    }
    assert_eq!(built.sessions.table_name, "chrono-acme-prod-sessions");
    assert_eq!(built.conversations.partition_key(), Some("session_id"));
    assert_eq!(built.conversations.sort_key(), Some("message_at"));
    assert_eq!(
        built.sources_bucket.bucket_name,
        "chrono-acme-prod-sources-111122223333"
    );
    assert_eq!(
        props(&t, "SourcesBucket")["BucketName"],
        built.sources_bucket.bucket_name
    );
}

/// Defect 9 of issue 13: staging deleted the KMS key with the stack while keeping the
/// database's final snapshot, which could then never be restored.
#[test]
fn the_data_key_is_retained_whenever_retained_data_or_snapshots_need_it() {
    for name in ["acme-prod", "acme-staging", "initech-staging"] {
        let cfg = example(name);
        let stack = data::build(&cfg).unwrap().stack;
        stack.template.check_key_lifetimes().unwrap();
        let t = stack.template.to_json();
        assert_ne!(
            t["Resources"]["Database"]["DeletionPolicy"], "Delete",
            "{name}"
        );
        for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
            assert_eq!(
                t["Resources"]["DataKey"][policy], "Retain",
                "{name} {policy}"
            );
        }
        // every stack of the config passes the same check at synth time
        chrono_stacks::synth::synthesize(&cfg).unwrap();
    }
}

/// Defect 10 of issue 13: a preview has no NAT, so filter-ai in a private subnet could
/// not reach the API Gateway management API to push WebSocket replies (WebSocket APIs
/// are reached over the internet only; an `execute-api` interface endpoint does not
/// serve them and with private DNS would capture every `execute-api` call).
#[test]
fn without_nat_filter_ai_reaches_the_websocket_management_api_through_a_public_address() {
    // A stage with the WebSocket API and no NAT (previews have no filter-ai since issue 16).
    let mut no_nat = example("acme-staging");
    no_nat.network.nat_gateways = Some(0);
    no_nat.network.interface_endpoints = Some(
        [
            "ecr.api",
            "ecr.dkr",
            "logs",
            "secretsmanager",
            "states",
            "bedrock-runtime",
        ]
        .map(String::from)
        .to_vec(),
    );
    let built = chrono_stacks::synth::build_stacks(&no_nat).unwrap();
    let stack = |kind: StackKind| built.iter().find(|s| s.kind == kind).unwrap();
    let net = stack(StackKind::Network).template.to_json();
    assert!(of_type(&net, "AWS::EC2::NatGateway").is_empty(), "no NAT");
    // every other call has its interface endpoint
    let compute_t = stack(StackKind::Compute).template.to_json();
    assert_eq!(chrono_stacks::reach::gaps(&net, &compute_t), vec![]);
    let endpoints: Vec<&Value> = of_type(&net, "AWS::EC2::VPCEndpoint")
        .into_iter()
        .map(|(_, e)| &e["Properties"]["ServiceName"])
        .collect();
    assert!(
        !endpoints
            .iter()
            .any(|s| s.to_string().contains("execute-api")),
        "{endpoints:?}"
    );
    // the public subnets route to the internet gateway
    assert_eq!(
        props(&net, "PublicDefaultRoute")["GatewayId"],
        json!({"Ref": "InternetGateway"})
    );
    let compute = stack(StackKind::Compute);
    let t = compute.template.to_json();
    let vpc = &props(&t, "FilterAiService")["NetworkConfiguration"]["AwsvpcConfiguration"];
    assert_eq!(vpc["AssignPublicIp"], "ENABLED");
    assert_eq!(vpc["Subnets"], json!({"Ref": "PublicSubnetIds"}));
    assert_eq!(
        compute.sources["PublicSubnetIds"],
        ParamSource::Output("network.PublicSubnetIds".into())
    );
    // inbound stays the load balancer's only; outbound HTTPS reaches the internet
    let tasks = props(&net, "TaskSecurityGroup");
    assert_eq!(tasks["SecurityGroupIngress"].as_array().unwrap().len(), 1);
    assert!(
        tasks["SecurityGroupEgress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["CidrIp"] == "0.0.0.0/0" && e["FromPort"] == 443)
    );

    // with NAT (staging, prod) nothing changes: private subnets, no public address
    let cfg = example("acme-staging");
    assert!(cfg.nat_gateways() > 0);
    let t = compute::build(&cfg).unwrap().stack.template.to_json();
    let vpc = &props(&t, "FilterAiService")["NetworkConfiguration"]["AwsvpcConfiguration"];
    assert_eq!(vpc["AssignPublicIp"], "DISABLED");
    assert_eq!(vpc["Subnets"], json!({"Ref": "PrivateSubnetIds"}));
    assert!(t["Parameters"].get("PublicSubnetIds").is_none());
}

#[test]
fn ephemeral_stages_delete_their_data_and_use_minimum_capacity() {
    for cfg in [preview(), example("demo-local")] {
        let t = data::build(&cfg).unwrap().stack.template.to_json();
        for (id, r) in t["Resources"].as_object().unwrap() {
            if let Some(policy) = r.get("DeletionPolicy") {
                assert_eq!(policy, "Delete", "{} {id}", cfg.stage);
            }
        }
        let cluster = props(&t, "Database");
        assert_eq!(cluster["DeletionProtection"], false);
        assert_eq!(
            cluster["ServerlessV2ScalingConfiguration"]["MinCapacity"],
            0.0
        );
        assert_eq!(of_type(&t, "AWS::RDS::DBInstance").len(), 1, "no readers");
        assert_eq!(
            props(&t, "SessionsTable")["DeletionProtectionEnabled"],
            false
        );
    }
}

#[test]
fn every_lambda_and_task_gets_the_runtime_environment() {
    let cfg = example("acme-prod");
    let t = compute::build(&cfg).unwrap().stack.template.to_json();
    let expected: BTreeSet<&str> = RUNTIME_ENV.into_iter().collect();
    let lambdas = of_type(&t, "AWS::Lambda::Function");
    assert_eq!(lambdas.len(), 4);
    for (id, f) in lambdas
        .into_iter()
        .filter(|(id, _)| *id != "WsAuthorizerFunction")
    {
        let vars = f["Properties"]["Environment"]["Variables"]
            .as_object()
            .unwrap();
        let names: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
        assert_eq!(names, expected, "{id}");
        assert_eq!(
            vars["CHRONO_JWT_ISSUER"],
            "https://acme-chronotracer.eu.auth0.com/"
        );
        assert_eq!(vars["CHRONO_DB_HOST"], json!({"Ref": "DatabaseHost"}));
        assert_eq!(
            vars["CHRONO_PIPELINE_STATE_MACHINE_ARN"],
            json!({"Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:chrono-acme-prod-pipeline"})
        );
        assert_eq!(
            f["Properties"]["Code"]["S3Bucket"],
            json!({"Ref": "AssetsBucketName"})
        );
        assert_eq!(
            f["Properties"]["VpcConfig"]["SubnetIds"],
            json!({"Ref": "PrivateSubnetIds"})
        );
    }
    assert_eq!(
        props(&t, "ApiFunction")["Code"]["S3Key"],
        json!({"Ref": "ApiCodeKey"})
    );
    assert_eq!(props(&t, "ApiFunction")["MemorySize"], 1024);
    // The $connect authorizer: outside the VPC, only what verifying a token needs.
    let authorizer = props(&t, "WsAuthorizerFunction");
    assert!(authorizer.get("VpcConfig").is_none());
    let vars = authorizer["Environment"]["Variables"].as_object().unwrap();
    let names: BTreeSet<&str> = vars.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "CHRONO_CASES_CLAIM",
            "CHRONO_JWKS_URL",
            "CHRONO_JWT_AUDIENCE",
            "CHRONO_JWT_ISSUER",
            "CHRONO_LOG_FORMAT",
            "CHRONO_ROLES_CLAIM"
        ])
    );
    assert_eq!(
        vars["CHRONO_JWKS_URL"],
        "https://acme-chronotracer.eu.auth0.com/.well-known/jwks.json"
    );
    assert_eq!(
        props(&t, "WsAuthorizerRole")["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "logs only"
    );
    let tasks = of_type(&t, "AWS::ECS::TaskDefinition");
    assert_eq!(tasks.len(), 2);
    for (id, task) in tasks {
        let c = &task["Properties"]["ContainerDefinitions"][0];
        let names: BTreeSet<&str> = c["Environment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| kv["Name"].as_str().unwrap())
            .collect();
        // filter-ai also verifies the token API Gateway passes on the gateway path
        let mut want = expected.clone();
        if id == "FilterAiTaskDefinition" {
            want.extend(["CHRONO_JWKS_URL", "CHRONO_WS_GATEWAY"]);
            let value = |name: &str| {
                c["Environment"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|kv| kv["Name"] == name)
                    .map(|kv| kv["Value"].clone())
            };
            assert_eq!(value("CHRONO_WS_GATEWAY"), Some(json!("on")));
            assert_eq!(
                value("CHRONO_JWKS_URL"),
                Some(json!(
                    "https://acme-chronotracer.eu.auth0.com/.well-known/jwks.json"
                ))
            );
        }
        assert_eq!(names, want, "{id}");
        // By digest, never by a mutable tag.
        assert_eq!(
            c["Image"],
            json!({"Fn::Sub": "${RuntimeRepositoryUri}@${ImageDigest}"})
        );
    }
    assert_eq!(props(&t, "PipelineTaskDefinition")["Cpu"], "2048");
    for (id, lg) in of_type(&t, "AWS::Logs::LogGroup") {
        assert_eq!(lg["Properties"]["RetentionInDays"], 365, "{id}");
    }
}

/// Migrations used to run in the API function: 5 s statement timeout, API Gateway's 29 s
/// function timeout. They have a function of their own now (issue 13, defect 8).
#[test]
fn migrations_have_a_function_of_their_own_with_lambdas_longest_timeout() {
    let cfg = example("acme-prod");
    let built = compute::build(&cfg).unwrap();
    let t = built.stack.template.to_json();
    let migrate = props(&t, "MigrateFunction");
    assert_eq!(migrate["Timeout"], compute::MIGRATE_TIMEOUT_S);
    assert_eq!(compute::MIGRATE_TIMEOUT_S, 900, "Lambda's maximum");
    assert!(props(&t, "ApiFunction")["Timeout"].as_u64().unwrap() < 30);
    // the chrono-api code, in the VPC, with its own role
    assert_eq!(migrate["Code"]["S3Key"], json!({"Ref": "ApiCodeKey"}));
    assert_eq!(
        migrate["VpcConfig"]["SubnetIds"],
        json!({"Ref": "PrivateSubnetIds"})
    );
    assert_eq!(
        migrate["Role"],
        json!({"Fn::GetAtt": ["MigrateRole", "Arn"]})
    );
    // its role: its logs and the database secret, nothing of the API's
    let policy = props(&t, "MigrateRole")["Policies"].to_string();
    assert!(policy.contains("secretsmanager:GetSecretValue"), "{policy}");
    for not_needed in ["s3:", "states:", "dynamodb:", "bedrock:"] {
        assert!(!policy.contains(not_needed), "{not_needed} in {policy}");
    }
    // onboard finds it through this output
    assert_eq!(
        t["Outputs"][chrono_contract::outputs::MIGRATE_FUNCTION_ARN]["Value"],
        json!({"Fn::GetAtt": ["MigrateFunction", "Arn"]})
    );
}

#[test]
fn every_function_and_task_runs_on_the_configs_architecture() {
    for (arch, lambda, ecs) in [("x86_64", "x86_64", "X86_64"), ("arm64", "arm64", "ARM64")] {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../customers/acme-staging.yaml"
        ))
        .unwrap()
            + &format!("architecture: {arch}\n");
        let cfg = chrono_stacks::Config::parse("acme-staging.yaml", &text).unwrap();
        let t = compute::build(&cfg).unwrap().stack.template.to_json();
        let functions = of_type(&t, "AWS::Lambda::Function");
        assert_eq!(functions.len(), 4);
        for (id, f) in functions {
            assert_eq!(f["Properties"]["Architectures"], json!([lambda]), "{id}");
        }
        let tasks = of_type(&t, "AWS::ECS::TaskDefinition");
        assert_eq!(tasks.len(), 2);
        for (id, task) in tasks {
            assert_eq!(
                task["Properties"]["RuntimePlatform"]["CpuArchitecture"], ecs,
                "{id}"
            );
        }
    }
    // The image carries the binaries the task definitions start.
    let entry = props(
        &compute::build(&example("acme-prod"))
            .unwrap()
            .stack
            .template
            .to_json(),
        "PipelineTaskDefinition",
    )["ContainerDefinitions"][0]["EntryPoint"]
        .clone();
    assert_eq!(entry, json!([compute::PIPELINE_BINARY]));
    assert!(compute::IMAGE_BINARIES.contains(&compute::PIPELINE_BINARY));
    assert!(compute::IMAGE_BINARIES.contains(&compute::FILTER_AI_BINARY));
}

/// Defect 5 of issue 13: the defaults were Legacy models new accounts cannot use.
#[test]
fn default_models_are_active_and_go_through_the_regions_inference_profile() {
    // a stage that calls Bedrock (a preview uses the deterministic translator)
    let mut cfg = preview();
    cfg.stage = chrono_stacks::Stage::Staging;
    cfg.preview = None;
    let model = "eu.anthropic.claude-haiku-4-5-20251001-v1:0";
    assert_eq!(cfg.bedrock.guard_model_id, model);
    assert_eq!(cfg.bedrock.main_model_id, model);
    let facts = chrono_stacks::bedrock::catalog()
        .model("anthropic.claude-haiku-4-5-20251001-v1:0")
        .unwrap();
    assert_eq!(facts.state, chrono_stacks::bedrock::State::Active);
    let t = compute::build(&cfg).unwrap().stack.template.to_json();
    let env = &props(&t, "AiChatFunction")["Environment"]["Variables"];
    assert_eq!(env[chrono_contract::env::GUARD_MODEL_ID], model);
    assert_eq!(env[chrono_contract::env::MAIN_MODEL_ID], model);
}

#[test]
fn roles_are_scoped_and_bedrock_is_limited_to_the_configured_models() {
    let cfg = example("acme-prod");
    let t = compute::build(&cfg).unwrap().stack.template.to_json();
    let roles = of_type(&t, "AWS::IAM::Role");
    assert_eq!(
        roles.len(),
        8,
        "one per function and task, the migration function included"
    );
    let chat = props(&t, "AiChatRole")["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let bedrock = chat
        .iter()
        .find(|s| s["Sid"] == "InvokeConfiguredModels")
        .unwrap();
    // defect 5 of issue 13: an Active model through the EU inference profile: the
    // profile, and the foundation model in every Region only through that profile
    let profile = json!({"Fn::Sub": "arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:inference-profile/eu.anthropic.claude-haiku-4-5-20251001-v1:0"});
    assert_eq!(bedrock["Resource"], json!([profile]));
    let routed = chat
        .iter()
        .find(|s| s["Sid"] == "InvokeModelsThroughConfiguredProfiles")
        .unwrap();
    assert_eq!(
        routed["Resource"],
        json!([{"Fn::Sub": "arn:${AWS::Partition}:bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0"}])
    );
    assert_eq!(
        routed["Condition"],
        json!({"StringEquals": {"bedrock:InferenceProfileArn": [profile]}})
    );
    assert_eq!(routed["Action"], bedrock["Action"]);
    // Only the pipeline state machine may pass the pipeline's task role.
    let sm = props(&t, "PipelineStateMachineRole")["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let pass = sm.iter().find(|s| s["Sid"] == "PassTaskRoles").unwrap();
    assert_eq!(
        pass["Resource"],
        json!([{"Fn::GetAtt": ["PipelineTaskRole", "Arn"]}, {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]}])
    );
}

#[test]
fn state_machine_runs_the_pipeline_definition_with_every_placeholder_filled() {
    let cfg = example("acme-prod");
    let t = compute::build(&cfg).unwrap().stack.template.to_json();
    let sm = props(&t, "PipelineStateMachine");
    assert_eq!(
        sm["Definition"],
        pipeline::definition(&pipeline::Shape::of(&cfg))
    );
    assert_eq!(
        sm["Definition"]["States"]["ProcessParts"]["MaxConcurrency"],
        cfg.sizing.pipeline_max_concurrency
    );
    let subs: BTreeSet<String> = sm["DefinitionSubstitutions"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let wanted: BTreeSet<String> = pipeline::placeholders(3).into_iter().collect();
    assert_eq!(subs, wanted);
    assert_eq!(
        sm["DefinitionSubstitutions"]["Subnet2"],
        json!({"Fn::Select": [2, {"Ref": "PrivateSubnetIds"}]})
    );
    assert_eq!(
        sm["DefinitionSubstitutions"]["TaskDefinitionArn"],
        json!({"Ref": "PipelineTaskDefinition"})
    );
    // The failure path runs on the API function, not on ECS.
    assert_eq!(
        sm["DefinitionSubstitutions"]["FailFunctionArn"],
        json!({"Fn::GetAtt": ["ApiFunction", "Arn"]})
    );
}

#[test]
fn http_api_has_the_jwt_authorizer_of_the_config() {
    let cfg = example("acme-prod");
    let t = api::build(&cfg).unwrap().stack.template.to_json();
    let auth = props(&t, "JwtAuthorizer");
    assert_eq!(auth["AuthorizerType"], "JWT");
    assert_eq!(
        auth["JwtConfiguration"],
        json!({"Audience": ["https://api.acme.chronotracer.io"], "Issuer": "https://acme-chronotracer.eu.auth0.com/"})
    );
    let chat = props(&t, "AiChatRoute");
    assert_eq!(chat["RouteKey"], "POST /api/v1/ai/chat");
    assert_eq!(chat["AuthorizationType"], "JWT");
    assert_eq!(
        chat["Target"],
        json!({"Fn::Sub": "integrations/${AiChatIntegration}"})
    );
    // one route per method, each behind the JWT authorizer: no ANY route, so API Gateway
    // answers CORS preflights itself
    for (id, key) in [
        ("ApiGetRoute", "GET /api/v1/{proxy+}"),
        ("ApiPostRoute", "POST /api/v1/{proxy+}"),
        ("ApiPutRoute", "PUT /api/v1/{proxy+}"),
        ("ApiDeleteRoute", "DELETE /api/v1/{proxy+}"),
    ] {
        assert_eq!(props(&t, id)["RouteKey"], key);
        assert_eq!(
            props(&t, id)["AuthorizerId"],
            json!({"Ref": "JwtAuthorizer"})
        );
    }
    assert!(
        !t.to_string().contains("\"ANY ") && !t.to_string().contains("OPTIONS "),
        "no route takes the preflights"
    );
    assert_eq!(
        props(&t, "HttpApi")["CorsConfiguration"],
        json!({"AllowOrigins": [{"Ref": "AppOrigin"}],
               "AllowMethods": ["GET", "POST", "PUT", "DELETE"],
               "AllowHeaders": ["authorization", "content-type"], "MaxAge": 600})
    );
    // only the health check is open (onboard's smoke test), and only for GET /healthz
    let health = props(&t, "HealthRoute");
    assert_eq!(health["RouteKey"], "GET /healthz");
    assert_eq!(health["AuthorizationType"], "NONE");
    assert_eq!(
        health["Target"],
        json!({"Fn::Sub": "integrations/${ApiIntegration}"})
    );
    let open: Vec<&str> = t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| {
            r["Type"] == "AWS::ApiGatewayV2::Route"
                && r["Properties"]["ApiId"] == json!({"Ref": "HttpApi"})
                && r["Properties"]["AuthorizationType"] != "JWT"
        })
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(open, ["HealthRoute"]);
    assert_eq!(
        props(&t, "AiChatIntegration")["IntegrationUri"],
        json!({"Ref": "AiChatFunctionArn"})
    );
    assert_eq!(props(&t, "WebSocketApi")["ProtocolType"], "WEBSOCKET");
    let ws = props(&t, "WebSocketIntegration");
    assert_eq!(ws["ConnectionType"], "VPC_LINK");
    assert_eq!(
        ws["IntegrationUri"],
        json!({"Fn::Sub": "http://${FilterAiLoadBalancerDns}:8080/api/v1/ai/ws/gateway"})
    );
    assert_eq!(
        ws["RequestParameters"]["integration.request.header.x-chrono-connection-id"],
        "context.connectionId"
    );
    // the verified token, never caller headers filter-ai would have to trust
    assert_eq!(
        ws["RequestParameters"]["integration.request.header.x-chrono-token"],
        "context.authorizer.token"
    );
    assert!(ws["RequestParameters"]["integration.request.header.x-chrono-sub"].is_null());
    let authorizer = props(&t, "WebSocketAuthorizer");
    assert_eq!(authorizer["AuthorizerType"], "REQUEST");
    assert_eq!(
        authorizer["IdentitySource"],
        json!(["route.request.querystring.token"])
    );
    for (route, auth) in [
        ("WebSocketConnectRoute", "CUSTOM"),
        ("WebSocketDefaultRoute", "NONE"),
        ("WebSocketDisconnectRoute", "NONE"),
    ] {
        let r = props(&t, route);
        assert_eq!(r["AuthorizationType"], auth, "{route}");
        assert_eq!(
            r["Target"],
            json!({"Fn::Sub": "integrations/${WebSocketIntegration}"})
        );
    }
    assert_eq!(
        props(&t, "WebSocketConnectRoute")["AuthorizerId"],
        json!({"Ref": "WebSocketAuthorizer"})
    );
    assert_eq!(
        props(&t, "WebSocketAuthorizerPermission")["FunctionName"],
        json!({"Ref": "WsAuthorizerFunctionArn"})
    );
    assert_eq!(
        props(&t, "FilterAiVpcLink")["TargetArns"],
        json!([{"Ref": "FilterAiLoadBalancerArn"}])
    );
    let stage = props(&t, "HttpApiStage");
    assert_eq!(
        stage["AccessLogSettings"]["DestinationArn"],
        json!({"Fn::GetAtt": ["HttpApiAccessLogs", "Arn"]})
    );
}

#[test]
fn bootstrap_holds_assets_repository_and_lock_table() {
    let b = bootstrap::build(&example("acme-prod")).unwrap();
    let t = b.stack.template.to_json();
    assert_eq!(
        props(&t, "AssetsBucket")["BucketName"],
        "chrono-acme-prod-assets-111122223333"
    );
    assert_eq!(
        props(&t, "RuntimeRepository")["ImageTagMutability"],
        "IMMUTABLE"
    );
    assert_eq!(
        props(&t, "DeployLockTable")["KeySchema"][0]["AttributeName"],
        "lock_id"
    );
    assert_eq!(
        props(&t, "ApiGatewayAccount")["CloudWatchRoleArn"],
        json!({"Fn::GetAtt": ["ApiGatewayLoggingRole", "Arn"]})
    );
    assert!(b.stack.template.parameters().is_empty());
}

#[test]
fn parameters_are_wired_to_outputs_of_earlier_stacks() {
    for cfg in [example("acme-prod"), example("demo-local"), preview()] {
        let stacks = build_stacks(&cfg).unwrap();
        let kinds: Vec<StackKind> = stacks.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, StackKind::ALL);
        for (i, s) in stacks.iter().enumerate() {
            // a preview shares the account's bootstrap stack
            if cfg.stage == chrono_stacks::Stage::Preview && s.kind == StackKind::Bootstrap {
                assert_eq!(s.name, chrono_stacks::bootstrap::ACCOUNT_STACK);
            } else {
                assert_eq!(s.name, format!("{}-{}", cfg.prefix(), s.kind));
            }
            let params: BTreeSet<&String> = s.template.parameters().keys().collect();
            let sourced: BTreeSet<&String> = s.sources.keys().collect();
            assert_eq!(params, sourced, "{}: every parameter has a source", s.name);
            for (param, source) in &s.sources {
                if let ParamSource::Output(o) = source {
                    let (stack, output) = o.split_once('.').unwrap();
                    let producer = stacks[..i].iter().find(|p| p.kind.as_str() == stack);
                    let producer = producer
                        .unwrap_or_else(|| panic!("{param} reads {o}, not an earlier stack"));
                    assert!(
                        producer.template.outputs().contains_key(output),
                        "{o} does not exist"
                    );
                }
            }
            assert!(!s.template.to_yaml().contains("Fn::ImportValue"));
            assert!(!s.template.to_yaml().contains("Export:"));
        }
        let compute = &stacks[4];
        assert_eq!(
            compute.depends_on(),
            [StackKind::Bootstrap, StackKind::Network, StackKind::Data]
        );
        assert_eq!(stacks[5].depends_on(), [StackKind::Web, StackKind::Compute]);
        assert_eq!(stacks[3].depends_on(), [StackKind::Network, StackKind::Web]);
        assert_eq!(
            stacks[3].sources["PrivateSubnetIds"],
            ParamSource::Output("network.PrivateSubnetIds".into())
        );
        assert_eq!(
            stacks[3].sources["AppOrigin"],
            ParamSource::Output("web.AppOrigin".into())
        );
    }
}

#[test]
fn every_taggable_resource_carries_the_chrono_tags() {
    let cfg = preview();
    for s in build_stacks(&cfg).unwrap() {
        let t = s.template.to_json();
        if s.kind == StackKind::Bootstrap {
            // the account bootstrap previews share: account tags, never a preview's
            for (id, r) in t["Resources"].as_object().unwrap() {
                let Some(Value::Array(tags)) = r["Properties"].get("Tags") else {
                    continue;
                };
                let get = |k: &str| {
                    tags.iter()
                        .find(|t| t["Key"] == k)
                        .map(|t| t["Value"].clone())
                };
                assert_eq!(get("chrono:scope"), Some(json!("account")), "{id}");
                assert_eq!(get("chrono:managed-by"), Some(json!("chronoctl")), "{id}");
                assert_eq!(get("chrono:preview"), None, "{id}");
                assert_eq!(get("chrono:customer"), None, "{id}");
            }
            assert_eq!(s.tags.get("chrono:preview"), None);
            continue;
        }
        for (id, r) in t["Resources"].as_object().unwrap() {
            let Some(tags) = r["Properties"].get("Tags") else {
                continue;
            };
            let get = |k: &str| match tags {
                Value::Array(list) => list
                    .iter()
                    .find(|t| t["Key"] == k)
                    .map(|t| t["Value"].clone()),
                Value::Object(map) => map.get(k).cloned(),
                _ => None,
            };
            assert_eq!(get("chrono:customer"), Some(json!("dev-jane")), "{id}");
            assert_eq!(get("chrono:stage"), Some(json!("preview")), "{id}");
            assert_eq!(get("chrono:managed-by"), Some(json!("chronoctl")), "{id}");
            assert_eq!(get("chrono:preview"), Some(json!("true")), "{id}");
            assert_eq!(
                get("chrono:expires-at"),
                Some(json!("2026-12-01T00:00:00Z")),
                "{id}"
            );
        }
        assert_eq!(s.tags["chrono:expires-at"], "2026-12-01T00:00:00Z");
    }
}

#[test]
fn synthesis_is_deterministic_and_within_limits() {
    for name in ["acme-prod", "acme-staging", "demo-local", "initech-staging"] {
        let cfg = example(name);
        let a = synthesize(&cfg).unwrap();
        let b = synthesize(&cfg).unwrap();
        assert_eq!(a, b);
        // six stacks, the manifest, and the deploy-access template of a cross-account config
        assert_eq!(
            a.len(),
            7 + usize::from(cfg.deploy_role_arn.is_some()),
            "{name}"
        );
        assert_eq!(
            a.get(7).map(|f| f.path.as_str()),
            cfg.deploy_role_arn
                .as_ref()
                .map(|_| "initech-staging/deploy-access.yaml")
        );
        let manifest: Value = serde_json::from_str(&a[6].contents).unwrap();
        assert_eq!(manifest["format"], 1);
        for (file, entry) in a.iter().zip(manifest["stacks"].as_array().unwrap()) {
            assert!(file.path.ends_with(entry["template"].as_str().unwrap()));
            assert_eq!(entry["bytes"], file.contents.len());
            assert_eq!(entry["upload"], file.contents.len() > 51_200);
            assert!(file.contents.ends_with('\n'));
        }
        assert_eq!(
            manifest["stacks"][4]["parameters"]["ApiCodeKey"],
            json!({"asset": {"lambda_zip": "chrono-api"}})
        );
        assert_eq!(
            manifest["stacks"][4]["parameters"]["ImageDigest"],
            json!({"asset": "image_digest"})
        );
    }
}

#[test]
fn only_the_vpc_link_reaches_the_filter_ai_load_balancer() {
    let cfg = example("acme-prod");
    let n = network::build(&cfg).unwrap().stack.template.to_json();
    let ingress = &props(&n, "LoadBalancerSecurityGroup")["SecurityGroupIngress"];
    assert!(
        ingress.as_array().is_none_or(|rules| rules.is_empty()),
        "{ingress}"
    );
    let c = compute::build(&cfg).unwrap().stack.template.to_json();
    assert_eq!(
        props(&c, "FilterAiLoadBalancer")["EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"],
        "off",
        "PrivateLink (VPC link) traffic is admitted without inbound rules"
    );
}

#[test]
fn the_app_is_served_privately_by_cloudfront_with_security_headers() {
    let cfg = example("acme-prod");
    let t = web::build(&cfg).unwrap().stack.template.to_json();
    let bucket = props(&t, "AppBucket");
    assert_eq!(bucket["BucketName"], "chrono-acme-prod-app-111122223333");
    assert_eq!(
        bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"],
        true
    );
    // only this distribution reads the bucket (origin access control), over TLS
    let statements = &props(&t, "AppBucketPolicy")["PolicyDocument"]["Statement"];
    let read = &statements[1];
    assert_eq!(
        read["Principal"],
        json!({"Service": "cloudfront.amazonaws.com"})
    );
    assert_eq!(read["Action"], json!(["s3:GetObject"]));
    assert_eq!(
        read["Condition"]["StringEquals"]["AWS:SourceArn"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${AppDistribution}"})
    );
    assert_eq!(statements[0]["Effect"], "Deny");
    let oac = &props(&t, "AppOriginAccessControl")["OriginAccessControlConfig"];
    assert_eq!(
        (
            oac["SigningBehavior"].as_str(),
            oac["SigningProtocol"].as_str()
        ),
        (Some("always"), Some("sigv4"))
    );
    let dist = &props(&t, "AppDistribution")["DistributionConfig"];
    assert_eq!(
        dist["Origins"][0]["OriginAccessControlId"],
        json!({"Fn::GetAtt": ["AppOriginAccessControl", "Id"]})
    );
    assert_eq!(
        dist["Origins"][0]["S3OriginConfig"],
        json!({"OriginAccessIdentity": ""})
    );
    let behavior = &dist["DefaultCacheBehavior"];
    assert_eq!(behavior["ViewerProtocolPolicy"], "redirect-to-https");
    assert_eq!(
        behavior["ResponseHeadersPolicyId"],
        json!({"Ref": "AppSecurityHeaders"})
    );
    assert_eq!(
        behavior["FunctionAssociations"][0]["EventType"],
        "viewer-request"
    );
    assert_eq!(
        dist["ViewerCertificate"],
        json!({"CloudFrontDefaultCertificate": true})
    );
    // the security headers: CSP naming exactly the evidence bucket and the identity provider
    let headers =
        &props(&t, "AppSecurityHeaders")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"];
    let csp = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]
        .as_str()
        .unwrap();
    for part in [
        "script-src 'self';",
        "frame-ancestors 'none'",
        "https://chrono-acme-prod-sources-111122223333.s3.eu-west-1.amazonaws.com",
        "https://acme-chronotracer.eu.auth0.com",
        "wss://*.execute-api.eu-west-1.amazonaws.com",
    ] {
        assert!(csp.contains(part), "{part} missing in {csp}");
    }
    assert_eq!(
        headers["FrameOptions"],
        json!({"FrameOption": "DENY", "Override": true})
    );
    assert_eq!(
        headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"],
        63_072_000
    );
    // SPA routing: routes (no extension) become index.html, files stay files
    let js = props(&t, "AppSpaRouting")["FunctionCode"].as_str().unwrap();
    assert!(js.contains("request.uri = '/index.html'"), "{js}");
    // an external provider: no user pool, its values passed through
    assert!(of_type(&t, "AWS::Cognito::UserPool").is_empty());
    assert_eq!(
        t["Outputs"]["JwtIssuer"]["Value"],
        "https://acme-chronotracer.eu.auth0.com/"
    );
    assert_eq!(
        t["Outputs"]["AppClientId"]["Value"],
        "Xq7vM3bP9kT2rL5sW8yZ1cN4hJ6gF0aD"
    );
    assert_eq!(
        t["Outputs"]["AppOrigin"]["Value"],
        json!({"Fn::Sub": "https://${AppDistribution.DomainName}"})
    );
}

#[test]
fn without_an_issuer_the_web_stack_creates_the_user_pool_the_api_trusts() {
    let cfg = example("initech-staging");
    let stacks = build_stacks(&cfg).unwrap();
    let web_t = stacks[2].template.to_json();
    let pool = props(&web_t, "UserPool");
    assert_eq!(
        pool["UserPoolTier"], "ESSENTIALS",
        "access-token claims need the V2 trigger"
    );
    assert_eq!(
        pool["LambdaConfig"]["PreTokenGenerationConfig"],
        json!({"LambdaArn": {"Fn::GetAtt": ["TokenClaimsFunction", "Arn"]}, "LambdaVersion": "V2_0"})
    );
    assert_eq!(
        pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"],
        true
    );
    assert_eq!(pool["MfaConfiguration"], "ON");
    let client = props(&web_t, "AppClient");
    assert_eq!(client["GenerateSecret"], false);
    assert_eq!(client["AllowedOAuthFlows"], json!(["code"]));
    assert_eq!(
        client["CallbackURLs"],
        json!([{"Fn::Sub": "https://${AppDistribution.DomainName}/callback"}])
    );
    assert_eq!(
        props(&web_t, "UserPoolDomain")["Domain"],
        "initech-chronotracer-staging"
    );
    let groups: BTreeSet<&str> = of_type(&web_t, "AWS::Cognito::UserPoolGroup")
        .iter()
        .map(|(_, g)| g["Properties"]["GroupName"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        BTreeSet::from([web::ADMIN_GROUP, web::ANALYST_GROUP, web::ALL_CASES_GROUP])
    );
    let permission = props(&web_t, "TokenClaimsPermission");
    assert_eq!(permission["Principal"], "cognito-idp.amazonaws.com");
    assert_eq!(
        permission["SourceArn"],
        json!({"Fn::GetAtt": ["UserPool", "Arn"]})
    );
    assert_eq!(
        stacks[2].sources["TokenClaimsCodeKey"],
        ParamSource::Asset(chrono_stacks::stack::Asset::LambdaZip(
            web::TOKEN_CLAIMS_BINARY.into()
        ))
    );
    assert_eq!(
        web_t["Outputs"]["JwtIssuer"]["Value"],
        json!({"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"})
    );
    assert_eq!(
        web_t["Outputs"]["JwtAudience"]["Value"],
        json!({"Ref": "AppClient"})
    );
    let csp =
        props(&web_t, "AppSecurityHeaders")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
            ["ContentSecurityPolicy"]["ContentSecurityPolicy"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(
        csp.contains("https://initech-chronotracer-staging.auth.us-east-1.amazoncognito.com"),
        "{csp}"
    );
    assert!(
        csp.contains("https://cognito-idp.us-east-1.amazonaws.com"),
        "{csp}"
    );

    // the API's authorizer and the WebSocket authorizer trust the pool's tokens
    let api_t = stacks[5].template.to_json();
    assert_eq!(
        props(&api_t, "JwtAuthorizer")["JwtConfiguration"],
        json!({"Audience": [{"Ref": "JwtAudience"}], "Issuer": {"Ref": "JwtIssuer"}})
    );
    assert_eq!(
        stacks[5].sources["JwtIssuer"],
        ParamSource::Output("web.JwtIssuer".into())
    );
    let compute_t = stacks[4].template.to_json();
    let vars = &props(&compute_t, "WsAuthorizerFunction")["Environment"]["Variables"];
    assert_eq!(vars["CHRONO_JWT_AUDIENCE"], json!({"Ref": "JwtAudience"}));
    assert_eq!(
        vars["CHRONO_JWKS_URL"],
        json!({"Fn::Sub": "${JwtIssuer}/.well-known/jwks.json"})
    );
    assert_eq!(
        stacks[4].depends_on(),
        [
            StackKind::Bootstrap,
            StackKind::Network,
            StackKind::Web,
            StackKind::Data
        ]
    );
    // evidence uploads: exactly the app's origin, PUT, ETag readable
    let data_t = stacks[3].template.to_json();
    assert_eq!(
        props(&data_t, "SourcesBucket")["CorsConfiguration"],
        json!({"CorsRules": [{"AllowedHeaders": ["content-type", "x-amz-checksum-sha256"], "AllowedMethods": ["PUT"],
                              "AllowedOrigins": [{"Ref": "AppOrigin"}], "ExposedHeaders": ["ETag"],
                              "MaxAge": 3000}]})
    );
}

fn preview_templates(cfg: &Config) -> std::collections::BTreeMap<StackKind, Value> {
    build_stacks(cfg)
        .unwrap()
        .into_iter()
        .map(|s| (s.kind, s.template.to_json()))
        .collect()
}

/// Issue 16: the preview shape has no NAT gateway and no interface endpoint, yet every
/// runtime workload reaches every AWS API it calls: S3 and DynamoDB through the gateway
/// endpoints, Secrets Manager and Step Functions over IPv6 (egress-only internet gateway,
/// dual-stack endpoints), the pipeline's on-demand tasks through a public address.
#[test]
fn the_preview_reaches_every_aws_api_it_calls_without_nat_or_interface_endpoints() {
    let t = preview_templates(&preview());
    let (net, compute) = (&t[&StackKind::Network], &t[&StackKind::Compute]);
    assert_eq!(chrono_stacks::reach::gaps(net, compute), vec![]);
    assert!(of_type(net, "AWS::EC2::NatGateway").is_empty());
    assert!(of_type(net, "AWS::EC2::EIP").is_empty());
    assert_eq!(of_type(net, "AWS::EC2::EgressOnlyInternetGateway").len(), 1);
    for n in 1..=2 {
        let route = props(net, &format!("PrivateIpv6DefaultRoute{n}"));
        assert_eq!(route["DestinationIpv6CidrBlock"], "::/0");
        assert_eq!(
            route["EgressOnlyInternetGatewayId"],
            json!({"Ref": "EgressOnlyInternetGateway"})
        );
        let subnet = &net["Resources"][format!("PrivateSubnet{n}")];
        assert_eq!(subnet["DependsOn"], json!(["VpcIpv6CidrBlock"]));
        assert_eq!(
            subnet["Properties"]["Ipv6CidrBlock"],
            json!({"Fn::Select": [n - 1, {"Fn::Cidr": [
                {"Fn::Select": [0, {"Fn::GetAtt": ["Vpc", "Ipv6CidrBlocks"]}]}, 256, 64]}]})
        );
    }
    // every Lambda in the VPC may use IPv6; the API function reaches Step Functions on its
    // dual-stack endpoint
    for (id, f) in of_type(compute, "AWS::Lambda::Function") {
        assert_eq!(
            f["Properties"]["VpcConfig"]["Ipv6AllowedForDualStack"], true,
            "{id}"
        );
    }
    let env = &props(compute, "ApiFunction")["Environment"]["Variables"];
    assert_eq!(
        env[compute::SFN_ENDPOINT_ENV],
        json!({"Fn::Sub": "https://states.${AWS::Region}.api.aws"})
    );
    // the AI chat uses the deterministic translator: no Bedrock call, no Bedrock grant
    assert_eq!(
        props(compute, "AiChatFunction")["Environment"]["Variables"]
            [chrono_contract::env::AI_PROVIDER],
        "local"
    );
    assert!(!compute.to_string().contains("bedrock:"));
    // the pipeline's tasks run in the public subnets with a public address
    let sm = props(compute, "PipelineStateMachine");
    assert_eq!(
        sm["DefinitionSubstitutions"]["Subnet0"],
        json!({"Fn::Select": [0, {"Ref": "PublicSubnetIds"}]})
    );
    assert!(
        sm["Definition"]
            .to_string()
            .contains(r#""AssignPublicIp":"ENABLED""#)
    );

    // Stages with NAT reach everything through it, and stay as they were.
    for name in ["acme-prod", "acme-staging", "initech-staging"] {
        let cfg = example(name);
        let t = preview_templates(&cfg);
        let (net, compute) = (&t[&StackKind::Network], &t[&StackKind::Compute]);
        assert_eq!(chrono_stacks::reach::gaps(net, compute), vec![], "{name}");
        assert!(of_type(net, "AWS::EC2::EgressOnlyInternetGateway").is_empty());
        assert!(!compute.to_string().contains(compute::SFN_ENDPOINT_ENV));
    }
}

/// The reachability check fails for a preview workload that calls a service it has no
/// route to: each change below is one way the preview shape could regress.
#[test]
fn a_preview_workload_calling_a_service_without_a_route_is_caught() {
    let t = preview_templates(&preview());
    let (net, compute) = (&t[&StackKind::Network], &t[&StackKind::Compute]);
    let gaps = |net: &Value, compute: &Value| -> Vec<(String, String)> {
        chrono_stacks::reach::gaps(net, compute)
            .into_iter()
            .map(|g| (g.workload, g.service))
            .collect()
    };
    let pair = |w: &str, s: &str| (w.to_owned(), s.to_owned());

    // Step Functions on its IPv4-only default endpoint
    let mut c = compute.clone();
    c["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
        .as_object_mut()
        .unwrap()
        .remove(compute::SFN_ENDPOINT_ENV);
    assert_eq!(gaps(net, &c), vec![pair("ApiFunction", "states")]);

    // Bedrock (no dual-stack endpoint) called by the AI chat
    let mut c = compute.clone();
    let statements =
        c["Resources"]["AiChatRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array_mut()
            .unwrap();
    statements.push(json!({"Effect": "Allow", "Action": ["bedrock:InvokeModel"], "Resource": "*"}));
    assert_eq!(gaps(net, &c), vec![pair("AiChatFunction", "bedrock")]);

    // a Lambda not allowed to use IPv6
    let mut c = compute.clone();
    c["Resources"]["MigrateFunction"]["Properties"]["VpcConfig"]
        .as_object_mut()
        .unwrap()
        .remove("Ipv6AllowedForDualStack");
    assert_eq!(
        gaps(net, &c),
        vec![pair("MigrateFunction", "secretsmanager")]
    );

    // no IPv6 route: every Lambda loses Secrets Manager (and the API Step Functions)
    let mut n = net.clone();
    let resources = n["Resources"].as_object_mut().unwrap();
    resources.retain(|id, _| !id.starts_with("PrivateIpv6DefaultRoute"));
    let lost = gaps(&n, compute);
    assert!(lost.contains(&pair("ApiFunction", "states")), "{lost:?}");
    for f in ["ApiFunction", "AiChatFunction", "MigrateFunction"] {
        assert!(lost.contains(&pair(f, "secretsmanager")), "{lost:?}");
    }
    // S3 and DynamoDB keep their gateway endpoints
    assert!(
        !lost.iter().any(|(_, s)| s == "s3" || s == "dynamodb"),
        "{lost:?}"
    );

    // the pipeline's tasks without a public address: no image, no logs, no secret
    let mut c = compute.clone();
    let def = &mut c["Resources"]["PipelineStateMachine"]["Properties"]["Definition"];
    *def = serde_json::from_str(&def.to_string().replace(
        r#""AssignPublicIp":"ENABLED""#,
        r#""AssignPublicIp":"DISABLED""#,
    ))
    .unwrap();
    assert_eq!(
        gaps(net, &c),
        ["ecr", "logs", "secretsmanager"]
            .map(|s| pair("PipelineTaskDefinition", s))
            .to_vec()
    );
}

/// Issue 16: a preview has no WebSocket API, nor what only served it (filter-ai's
/// service, its NLB, target group, log group, role, the VPC link, the `$connect`
/// authorizer): nothing in its templates names them.
#[test]
fn a_preview_has_no_websocket_api_and_nothing_refers_to_one() {
    let t = preview_templates(&preview());
    for (kind, template) in &t {
        let text = template.to_string();
        for word in [
            "WebSocket",
            "FilterAi",
            "LoadBalancer",
            "WsAuthorizer",
            "VpcLink",
            "execute-api:ManageConnections",
        ] {
            assert!(!text.contains(word), "{kind}: {word}");
        }
        assert!(of_type(template, "AWS::ECS::Service").is_empty(), "{kind}");
    }
    assert!(
        t[&StackKind::Api]["Outputs"]
            .get(chrono_contract::outputs::WEBSOCKET_URL)
            .is_none()
    );
    // the HTTP API still routes the AI chat to its Lambda
    assert_eq!(
        props(&t[&StackKind::Api], "AiChatRoute")["RouteKey"],
        api::AI_CHAT_ROUTE
    );
    // the tasks' group admits nothing
    assert!(
        props(&t[&StackKind::Network], "TaskSecurityGroup")
            .get("SecurityGroupIngress")
            .is_none()
    );
    // staging keeps all of it
    let staging = preview_templates(&example("acme-staging"));
    assert!(
        staging[&StackKind::Api]["Outputs"]
            .get(chrono_contract::outputs::WEBSOCKET_URL)
            .is_some()
    );
    assert_eq!(
        of_type(&staging[&StackKind::Compute], "AWS::ECS::Service").len(),
        1
    );
}
