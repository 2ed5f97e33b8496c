//! The `network` stack: a VPC over 2-3 AZs with public and private subnets, NAT gateways
//! (count from config; 0 for previews and local), S3 and DynamoDB gateway endpoints,
//! interface endpoints as configured, and one security group per tier. A preview's VPC is
//! dual-stack instead: its private subnets reach AWS over IPv6 through an egress-only
//! internet gateway ([`Config::ipv6_egress`]).
//!
//! Subnets are /20s of the VPC's /16: public subnet `i` is `x.y.(16*i).0/20`, private
//! subnet `i` is `x.y.(128+16*i).0/20`. AZs are `Fn::Select [i, Fn::GetAZs ""]`.

use serde_json::json;

use crate::config::{Config, parse_slash16};
use crate::model::{Expr, Handle, ModelError, Pseudo};
use crate::resources::network::{
    EgressOnlyInternetGateway, Eip, GatewayAttachment, InternetGateway, NatGateway, Route,
    RouteTable, SecurityGroup, Subnet, SubnetRouteTableAssociation, Vpc, VpcCidrBlock, VpcEndpoint,
};
use crate::stack::{OutputRef, Stack, StackKind, tags};

/// Port of PostgreSQL.
pub const DB_PORT: u16 = 5432;
/// Port the filter-ai service listens on.
pub const FILTER_AI_PORT: u16 = 8080;

/// Outputs later stacks import.
#[derive(Debug, Clone)]
pub struct NetworkOutputs {
    /// VPC id.
    pub vpc_id: OutputRef,
    /// Private subnet ids, comma separated.
    pub private_subnets: OutputRef,
    /// Security group of the Lambdas.
    pub lambda_sg: OutputRef,
    /// Security group of the ECS tasks.
    pub task_sg: OutputRef,
    /// Security group of the database.
    pub database_sg: OutputRef,
    /// Security group of the internal load balancer (stages with the WebSocket API only:
    /// [`crate::config::Config::websocket_api`]).
    pub load_balancer_sg: Option<OutputRef>,
    /// Public subnet ids, comma separated (filter-ai's and the pipeline's tasks' when the
    /// VPC has no NAT: [`crate::config::Config::filter_ai_public_ip`],
    /// [`crate::config::Config::pipeline_public_ip`]).
    pub public_subnets: OutputRef,
}

/// The built stack.
#[derive(Debug, Clone)]
pub struct NetworkStack {
    /// Template and wiring.
    pub stack: Stack,
    /// Outputs.
    pub outputs: NetworkOutputs,
}

fn egress(cidr: &str, port: u16, description: &str) -> serde_json::Value {
    json!({"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "CidrIp": cidr, "Description": description})
}

/// Build the network stack.
pub fn build(cfg: &Config) -> Result<NetworkStack, ModelError> {
    let mut s = Stack::new(
        cfg,
        StackKind::Network,
        "VPC, subnets, NAT, endpoints, security groups",
    );
    let t = &mut s.template;
    let prefix = cfg.prefix();
    let cidr = cfg.network.vpc_cidr.as_str();
    // Validated by `Config::parse`; the fallback only keeps this function total.
    let (a, b) = parse_slash16(cidr).unwrap_or((10, 0));
    let azs = cfg.network.az_count;

    let vpc = t.add(
        "Vpc",
        Vpc {
            cidr_block: cidr.to_owned(),
            enable_dns_support: true,
            enable_dns_hostnames: true,
            tags: tags(cfg, &prefix),
        },
    )?;
    let igw = t.add(
        "InternetGateway",
        InternetGateway {
            tags: tags(cfg, &prefix),
        },
    )?;
    let attach = t.add(
        "InternetGatewayAttachment",
        GatewayAttachment {
            vpc_id: vpc.r#ref(),
            internet_gateway_id: igw.r#ref(),
        },
    )?;

    // The preview shape's way out: an Amazon-provided IPv6 /56, a /64 per private subnet,
    // IPv6 default routes to an egress-only internet gateway ([`Config::ipv6_egress`]).
    let ipv6 = if cfg.ipv6_egress() {
        Some(t.add(
            "VpcIpv6CidrBlock",
            VpcCidrBlock {
                vpc_id: vpc.r#ref(),
                amazon_provided_ipv6_cidr_block: true,
            },
        )?)
    } else {
        None
    };
    let public_rt = t.add(
        "PublicRouteTable",
        RouteTable {
            vpc_id: vpc.r#ref(),
            tags: tags(cfg, &format!("{prefix}-public")),
        },
    )?;
    t.add_with(
        "PublicDefaultRoute",
        Route {
            route_table_id: public_rt.r#ref(),
            destination_cidr_block: Some("0.0.0.0/0".into()),
            destination_ipv6_cidr_block: None,
            gateway_id: Some(igw.r#ref()),
            nat_gateway_id: None,
            egress_only_internet_gateway_id: None,
        },
        crate::model::Attributes::default().depends_on(&attach),
    )?;

    let mut public = Vec::new();
    let mut private = Vec::new();
    let mut private_rts = Vec::new();
    for i in 0..azs {
        let az = Expr::select(i, Expr::azs());
        let n = i + 1;
        let subnet = |public: bool| {
            let (offset, kind) = if public {
                (0, "public")
            } else {
                (128, "private")
            };
            // /64 number `i` of the VPC's /56 for private subnet `i` (public ones stay IPv4).
            let ipv6_cidr_block = ipv6.as_ref().filter(|_| !public).map(|_| {
                Expr::select(
                    i,
                    Expr::cidr(Expr::select(0, vpc.ipv6_cidr_blocks()), 256, 64),
                )
            });
            Subnet {
                vpc_id: vpc.r#ref(),
                cidr_block: format!("{a}.{b}.{}.0/20", offset + 16 * i),
                ipv6_cidr_block,
                availability_zone: az.clone(),
                map_public_ip_on_launch: false,
                tags: tags(cfg, &format!("{prefix}-{kind}-{n}")),
            }
        };
        let p = t.add(&format!("PublicSubnet{n}"), subnet(true))?;
        t.add(
            &format!("PublicSubnet{n}RouteTableAssociation"),
            SubnetRouteTableAssociation {
                subnet_id: p.r#ref(),
                route_table_id: public_rt.r#ref(),
            },
        )?;
        let q = match &ipv6 {
            // A subnet's IPv6 block needs the VPC's first.
            Some(block) => t.add_with(
                &format!("PrivateSubnet{n}"),
                subnet(false),
                crate::model::Attributes::default().depends_on(block),
            )?,
            None => t.add(&format!("PrivateSubnet{n}"), subnet(false))?,
        };
        let rt = t.add(
            &format!("PrivateRouteTable{n}"),
            RouteTable {
                vpc_id: vpc.r#ref(),
                tags: tags(cfg, &format!("{prefix}-private-{n}")),
            },
        )?;
        t.add(
            &format!("PrivateSubnet{n}RouteTableAssociation"),
            SubnetRouteTableAssociation {
                subnet_id: q.r#ref(),
                route_table_id: rt.r#ref(),
            },
        )?;
        public.push(p);
        private.push(q);
        private_rts.push(rt);
    }

    let nats = cfg.nat_gateways() as usize;
    let mut nat_handles: Vec<Handle<NatGateway>> = Vec::new();
    for (i, subnet) in public.iter().take(nats).enumerate() {
        let n = i + 1;
        let eip = t.add_with(
            &format!("NatEip{n}"),
            Eip {
                domain: "vpc".into(),
                tags: tags(cfg, &format!("{prefix}-nat-{n}")),
            },
            crate::model::Attributes::default().depends_on(&attach),
        )?;
        nat_handles.push(t.add(
            &format!("NatGateway{n}"),
            NatGateway {
                allocation_id: eip.allocation_id(),
                subnet_id: subnet.r#ref(),
                tags: tags(cfg, &format!("{prefix}-nat-{n}")),
            },
        )?);
    }
    for (i, rt) in private_rts.iter().enumerate() {
        if nat_handles.is_empty() {
            break;
        }
        let nat = &nat_handles[i % nat_handles.len()];
        t.add(
            &format!("PrivateDefaultRoute{}", i + 1),
            Route {
                route_table_id: rt.r#ref(),
                destination_cidr_block: Some("0.0.0.0/0".into()),
                destination_ipv6_cidr_block: None,
                gateway_id: None,
                nat_gateway_id: Some(nat.r#ref()),
                egress_only_internet_gateway_id: None,
            },
        )?;
    }

    if ipv6.is_some() {
        let eigw = t.add(
            "EgressOnlyInternetGateway",
            EgressOnlyInternetGateway {
                vpc_id: vpc.r#ref(),
            },
        )?;
        for (i, rt) in private_rts.iter().enumerate() {
            t.add(
                &format!("PrivateIpv6DefaultRoute{}", i + 1),
                Route {
                    route_table_id: rt.r#ref(),
                    destination_cidr_block: None,
                    destination_ipv6_cidr_block: Some("::/0".into()),
                    gateway_id: None,
                    nat_gateway_id: None,
                    egress_only_internet_gateway_id: Some(eigw.r#ref()),
                },
            )?;
        }
    }

    let service = |name: &str| {
        Expr::sub(format!(
            "com.amazonaws.${{{}}}.{name}",
            Pseudo::Region.name()
        ))
    };
    for (id, svc) in [
        ("S3GatewayEndpoint", "s3"),
        ("DynamoDbGatewayEndpoint", "dynamodb"),
    ] {
        t.add(
            id,
            VpcEndpoint {
                vpc_id: vpc.r#ref(),
                service_name: service(svc),
                vpc_endpoint_type: "Gateway".into(),
                route_table_ids: private_rts.iter().map(Handle::r#ref).collect(),
                subnet_ids: Vec::new(),
                security_group_ids: Vec::new(),
                private_dns_enabled: None,
            },
        )?;
    }

    let sg = |t: &mut crate::model::Template,
              id: &str,
              what: &str,
              ingress: Vec<serde_json::Value>,
              egress: Vec<serde_json::Value>| {
        t.add(
            id,
            SecurityGroup {
                group_description: format!("{prefix} {what}"),
                vpc_id: vpc.r#ref(),
                security_group_ingress: ingress,
                security_group_egress: egress,
                tags: tags(cfg, &format!("{prefix}-{what}")),
            },
        )
    };
    let mut lambda_egress = vec![
        egress(
            "0.0.0.0/0",
            443,
            "AWS APIs and the identity provider over HTTPS",
        ),
        egress(cidr, DB_PORT, "Aurora PostgreSQL"),
    ];
    if cfg.ipv6_egress() {
        lambda_egress.push(json!({"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
            "CidrIpv6": "::/0", "Description": "AWS APIs over IPv6 (egress-only internet gateway)"}));
    }
    let lambda_sg = sg(t, "LambdaSecurityGroup", "lambdas", vec![], lambda_egress)?;
    // No inbound rule: the NLB's only client is API Gateway's VPC link, whose PrivateLink
    // traffic it admits without evaluating inbound rules (the compute stack turns
    // `EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic` off). filter-ai's WebSocket
    // gateway path does not rely on this alone: it verifies the token API Gateway maps from
    // the `$connect` authorizer (see `crate::api`), so a request from elsewhere is refused.
    // No load balancer, no group, and no inbound rule at all on the tasks, in a stage
    // without the WebSocket API.
    let lb_sg = if cfg.websocket_api() {
        Some(sg(
            t,
            "LoadBalancerSecurityGroup",
            "load-balancer",
            vec![],
            vec![egress(cidr, FILTER_AI_PORT, "filter-ai tasks")],
        )?)
    } else {
        None
    };
    let task_ingress = lb_sg.iter().map(|lb| {
        json!({"IpProtocol": "tcp", "FromPort": FILTER_AI_PORT, "ToPort": FILTER_AI_PORT,
                "SourceSecurityGroupId": lb.group_id(), "Description": "internal load balancer"})
    });
    let task_sg = sg(
        t,
        "TaskSecurityGroup",
        "tasks",
        task_ingress.collect(),
        vec![
            egress("0.0.0.0/0", 443, "AWS APIs and image pulls over HTTPS"),
            egress(cidr, DB_PORT, "Aurora PostgreSQL"),
        ],
    )?;
    let db_sg = sg(
        t,
        "DatabaseSecurityGroup",
        "database",
        vec![
            json!({"IpProtocol": "tcp", "FromPort": DB_PORT, "ToPort": DB_PORT,
                   "SourceSecurityGroupId": lambda_sg.group_id(), "Description": "Lambdas"}),
            json!({"IpProtocol": "tcp", "FromPort": DB_PORT, "ToPort": DB_PORT,
                   "SourceSecurityGroupId": task_sg.group_id(), "Description": "ECS tasks"}),
        ],
        // Replaces the default allow-all egress: the database initiates nothing.
        vec![
            json!({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "CidrIp": "127.0.0.1/32",
                    "Description": "no egress"}),
        ],
    )?;

    let endpoints = cfg.interface_endpoints();
    if !endpoints.is_empty() {
        let endpoint_sg = sg(
            t,
            "EndpointSecurityGroup",
            "endpoints",
            vec![
                json!({"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": cidr,
                        "Description": "HTTPS from the VPC"}),
            ],
            vec![
                json!({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "CidrIp": "127.0.0.1/32",
                        "Description": "no egress"}),
            ],
        )?;
        for svc in &endpoints {
            let id: String = svc
                .split(['.', '-'])
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            t.add(
                &format!("{id}Endpoint"),
                VpcEndpoint {
                    vpc_id: vpc.r#ref(),
                    service_name: service(svc),
                    vpc_endpoint_type: "Interface".into(),
                    route_table_ids: Vec::new(),
                    subnet_ids: private.iter().map(Handle::r#ref).collect(),
                    security_group_ids: vec![endpoint_sg.group_id()],
                    private_dns_enabled: Some(true),
                },
            )?;
        }
    }

    let join = |hs: &[Handle<Subnet>]| Expr::join(",", hs.iter().map(Handle::r#ref).collect());
    let outputs = NetworkOutputs {
        vpc_id: s.export("VpcId", "the VPC", vpc.r#ref())?,
        private_subnets: s.export(
            "PrivateSubnetIds",
            "private subnets, one per AZ",
            join(&private),
        )?,
        lambda_sg: s.export(
            "LambdaSecurityGroupId",
            "security group of the Lambdas",
            lambda_sg.group_id(),
        )?,
        task_sg: s.export(
            "TaskSecurityGroupId",
            "security group of the ECS tasks",
            task_sg.group_id(),
        )?,
        database_sg: s.export(
            "DatabaseSecurityGroupId",
            "security group of Aurora",
            db_sg.group_id(),
        )?,
        load_balancer_sg: match &lb_sg {
            Some(lb) => Some(s.export(
                "LoadBalancerSecurityGroupId",
                "security group of the internal load balancer",
                lb.group_id(),
            )?),
            None => None,
        },
        public_subnets: s.export(
            "PublicSubnetIds",
            "public subnets, one per AZ",
            join(&public),
        )?,
    };
    Ok(NetworkStack { stack: s, outputs })
}
