//! Which AWS API each runtime workload can reach from where it runs, read from the
//! synthesized network and compute templates. Pure: no I/O, no AWS.
//!
//! A workload's calls are its role's actions (least privilege, and
//! `tests/tests/runtime_iam_moto.rs` proves each binary's calls are exactly covered by
//! its role); the services are the actions' prefixes. Not counted: `logs:` of a Lambda
//! (the Lambda service ships its logs, not the function's network interface) and `kms:`
//! (the data key is used on the workload's behalf by S3, DynamoDB and Secrets Manager; the
//! runtime has no KMS client). A task's execution role counts too (on Fargate the image
//! pull and the `awslogs` driver use the task's network interface,
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-task-networking.html>).
//!
//! A service is reachable when one of these holds:
//! * a gateway endpoint serves it (S3, DynamoDB) on the private route tables;
//! * an interface endpoint of the VPC serves it;
//! * IPv4 to the internet: a NAT route from the private subnets, or a task with a public
//!   address in a public subnet routed to the internet gateway — and HTTPS egress to
//!   `0.0.0.0/0` in the security group;
//! * IPv6 to the internet: an egress-only gateway route from the private subnets, a Lambda
//!   with `Ipv6AllowedForDualStack`, HTTPS egress to `::/0`, and the service's endpoint the
//!   workload uses answers on IPv6 ([`dual_stack`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A workload that cannot reach a service it calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gap {
    /// Logical id of the Lambda function or ECS task definition.
    pub workload: String,
    /// The action prefix (`secretsmanager`, `states`, `bedrock`, ...).
    pub service: String,
}

/// Whether a workload with environment `env` reaches `service` on a dual-stack endpoint
/// (the SDK's default endpoint, unless a service-specific `AWS_ENDPOINT_URL_*` overrides
/// it). Facts, with their sources:
/// * Secrets Manager: `secretsmanager.<region>.amazonaws.com`, the default, is dual-stack
///   (<https://docs.aws.amazon.com/secretsmanager/latest/userguide/ip-access.html>);
/// * Step Functions: only `states.<region>.api.aws`; the default `states.<region>.amazonaws.com`
///   is IPv4 (<https://docs.aws.amazon.com/general/latest/gr/step-functions.html>), so the
///   workload needs [`crate::compute::SFN_ENDPOINT_ENV`];
/// * STS: `sts.<region>.api.aws`
///   (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_dual-stack_endpoint_support.html>),
///   not used by the runtime;
/// * Amazon Bedrock (`bedrock-runtime`), ECR, CloudWatch Logs, API Gateway's management
///   API: counted as IPv4 only (no dual-stack endpoint in
///   <https://docs.aws.amazon.com/general/latest/gr/bedrock.html>; the others are not
///   needed over IPv6 by any shape).
pub fn dual_stack(service: &str, env: &Value) -> bool {
    let var = |name: &str| env.get(name).is_some();
    match service {
        "secretsmanager" => true,
        "states" => var(crate::compute::SFN_ENDPOINT_ENV),
        _ => false,
    }
}

/// Interface endpoint names that serve an action prefix.
fn endpoint_names(service: &str) -> &'static [&'static str] {
    match service {
        "secretsmanager" => &["secretsmanager"],
        "states" => &["states"],
        "bedrock" => &["bedrock-runtime"],
        "ecr" => &["ecr.api", "ecr.dkr"],
        "logs" => &["logs"],
        "kms" => &["kms"],
        "sts" => &["sts"],
        _ => &[],
    }
}

fn resources(t: &Value) -> impl Iterator<Item = (&String, &Value)> {
    t["Resources"].as_object().into_iter().flatten()
}

fn of_type<'a>(t: &'a Value, ty: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    resources(t).filter(move |(_, r)| r["Type"] == ty)
}

/// The last segment of `com.amazonaws.${AWS::Region}.<name>`.
fn endpoint_service(e: &Value) -> String {
    let name = &e["Properties"]["ServiceName"];
    let s = name["Fn::Sub"]
        .as_str()
        .or(name.as_str())
        .unwrap_or_default();
    s.rsplit_once("}.").map_or(s, |(_, n)| n).to_owned()
}

/// What the network template offers.
struct Network {
    gateway: BTreeSet<String>,
    interface: BTreeSet<String>,
    private_nat: bool,
    private_ipv6: bool,
    public_igw: bool,
    /// (IPv4 HTTPS anywhere, IPv6 HTTPS anywhere) per security group logical id.
    https_egress: BTreeMap<String, (bool, bool)>,
}

impl Network {
    fn read(t: &Value) -> Self {
        let mut gateway = BTreeSet::new();
        let mut interface = BTreeSet::new();
        for (_, e) in of_type(t, "AWS::EC2::VPCEndpoint") {
            let set = if e["Properties"]["VpcEndpointType"] == "Gateway" {
                &mut gateway
            } else {
                &mut interface
            };
            set.insert(endpoint_service(e));
        }
        let routes: Vec<&Value> = of_type(t, "AWS::EC2::Route")
            .map(|(_, r)| &r["Properties"])
            .collect();
        let private = |p: &&&Value| {
            p["RouteTableId"]["Ref"]
                .as_str()
                .is_some_and(|rt| rt.starts_with("PrivateRouteTable"))
        };
        let private_nat = routes
            .iter()
            .filter(private)
            .any(|p| p["DestinationCidrBlock"] == "0.0.0.0/0" && p.get("NatGatewayId").is_some());
        let private_ipv6 = routes.iter().filter(private).any(|p| {
            p["DestinationIpv6CidrBlock"] == "::/0"
                && p.get("EgressOnlyInternetGatewayId").is_some()
        });
        let public_igw = routes.iter().any(|p| {
            p["RouteTableId"]["Ref"] == "PublicRouteTable"
                && p["DestinationCidrBlock"] == "0.0.0.0/0"
                && p.get("GatewayId").is_some()
        });
        let https_egress = of_type(t, "AWS::EC2::SecurityGroup")
            .map(|(id, sg)| {
                let rules = sg["Properties"]["SecurityGroupEgress"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let https = |key: &str, any: &str| {
                    rules.iter().any(|r| {
                        r[key] == any
                            && r["FromPort"].as_u64().is_some_and(|f| f <= 443)
                            && r["ToPort"].as_u64().is_some_and(|t| t >= 443)
                    })
                };
                (
                    id.clone(),
                    (https("CidrIp", "0.0.0.0/0"), https("CidrIpv6", "::/0")),
                )
            })
            .collect();
        Self {
            gateway,
            interface,
            private_nat,
            private_ipv6,
            public_igw,
            https_egress,
        }
    }
}

/// Where a workload runs.
struct Placement {
    /// In a public subnet with a public IPv4 address.
    public_ip: bool,
    /// May use IPv6 (Lambda `Ipv6AllowedForDualStack`).
    ipv6: bool,
    /// Security group logical id in the network stack.
    security_group: String,
}

/// Action prefixes of a role's inline policies, without those in `skip`.
fn services(compute: &Value, role: &str, skip: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for policy in compute["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for st in policy["PolicyDocument"]["Statement"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let actions = match &st["Action"] {
                Value::Array(a) => a.clone(),
                a => vec![a.clone()],
            };
            for a in actions {
                if let Some((svc, _)) = a.as_str().and_then(|a| a.split_once(':'))
                    && !skip.contains(&svc)
                {
                    out.insert(svc.to_owned());
                }
            }
        }
    }
    out
}

fn role_of(v: &Value) -> Option<String> {
    v["Fn::GetAtt"][0].as_str().map(str::to_owned)
}

/// The compute parameter a security group is passed in → the network's logical id.
fn group_param(v: &Value) -> String {
    let p = v["Ref"].as_str().unwrap_or_default();
    p.strip_suffix("Id").unwrap_or(p).to_owned()
}

/// The services each workload of `compute` calls and cannot reach through `network`, both
/// synthesized templates (JSON) of one config. Empty: every call has a path.
pub fn gaps(network: &Value, compute: &Value) -> Vec<Gap> {
    let net = Network::read(network);
    let mut workloads: Vec<(String, Placement, BTreeSet<String>, Value)> = Vec::new();
    for (id, f) in of_type(compute, "AWS::Lambda::Function") {
        let p = &f["Properties"];
        let Some(vpc) = p.get("VpcConfig") else {
            continue; // outside the VPC: Lambda's own internet access
        };
        let Some(role) = role_of(&p["Role"]) else {
            continue;
        };
        workloads.push((
            id.clone(),
            Placement {
                public_ip: false,
                ipv6: vpc["Ipv6AllowedForDualStack"] == true,
                security_group: group_param(&vpc["SecurityGroupIds"][0]),
            },
            services(compute, &role, &["logs", "kms"]),
            p["Environment"]["Variables"].clone(),
        ));
    }
    // Task definitions run by a service (its network configuration) or by the state machine
    // (the `ecs:runTask` states of its definition; one placement for all of them).
    let mut task_networks: BTreeMap<String, Value> = BTreeMap::new();
    for (_, svc) in of_type(compute, "AWS::ECS::Service") {
        let p = &svc["Properties"];
        if let Some(td) = p["TaskDefinition"]["Ref"].as_str() {
            task_networks.insert(td.to_owned(), p["NetworkConfiguration"].clone());
        }
    }
    for (_, sm) in of_type(compute, "AWS::StepFunctions::StateMachine") {
        let p = &sm["Properties"];
        let subs = &p["DefinitionSubstitutions"];
        let Some(td) = subs["TaskDefinitionArn"]["Ref"].as_str() else {
            continue;
        };
        let definition = p["DefinitionString"]
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .or_else(|| p.get("Definition").cloned())
            .unwrap_or_default();
        let mut net_cfg = None;
        find_network_configuration(&definition, &mut net_cfg);
        if let Some(mut n) = net_cfg {
            // the definition names its subnets and security group by substitution
            n["AwsvpcConfiguration"]["SecurityGroups"] =
                Value::Array(vec![subs["TaskSecurityGroup"].clone()]);
            n["AwsvpcConfiguration"]["Subnets"] = subs["Subnet0"].clone();
            task_networks.insert(td.to_owned(), n);
        }
    }
    for (td, n) in &task_networks {
        let p = &compute["Resources"][td]["Properties"];
        let mut calls = BTreeSet::new();
        for role in [&p["TaskRoleArn"], &p["ExecutionRoleArn"]] {
            if let Some(role) = role_of(role) {
                calls.extend(services(compute, &role, &["kms"]));
            }
        }
        let env: serde_json::Map<String, Value> = p["ContainerDefinitions"][0]["Environment"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv["Name"].as_str()?.to_owned(), kv["Value"].clone())))
            .collect();
        let vpc = &n["AwsvpcConfiguration"];
        workloads.push((
            td.clone(),
            Placement {
                public_ip: vpc["AssignPublicIp"] == "ENABLED"
                    && vpc["Subnets"].to_string().contains("PublicSubnetIds"),
                ipv6: false,
                security_group: group_param(&vpc["SecurityGroups"][0]),
            },
            calls,
            Value::Object(env),
        ));
    }

    let mut out = Vec::new();
    for (workload, place, calls, env) in workloads {
        let (https4, https6) = net
            .https_egress
            .get(&place.security_group)
            .copied()
            .unwrap_or((false, false));
        let ipv4_internet = https4
            && if place.public_ip {
                net.public_igw
            } else {
                net.private_nat
            };
        let ipv6_internet = https6 && place.ipv6 && !place.public_ip && net.private_ipv6;
        for service in calls {
            let names = endpoint_names(&service);
            let interface = !names.is_empty() && names.iter().all(|e| net.interface.contains(*e));
            let reachable = net.gateway.contains(&service)
                || interface
                || ipv4_internet
                || ipv6_internet && dual_stack(&service, &env);
            if !reachable {
                out.push(Gap {
                    workload: workload.clone(),
                    service,
                });
            }
        }
    }
    out.sort();
    out
}

/// The first `AwsvpcConfiguration` holder in a state machine definition.
fn find_network_configuration(v: &Value, out: &mut Option<Value>) {
    if out.is_some() {
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(n) = m.get("NetworkConfiguration") {
                *out = Some(n.clone());
                return;
            }
            for x in m.values() {
                find_network_configuration(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| find_network_configuration(x, out)),
        _ => {}
    }
}
