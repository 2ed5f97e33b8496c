//! `chronoctl cost CONFIG`: an offline estimate of what a config's stacks cost per month
//! while idle, read from the synthesized templates and the price table in
//! `provisioner/data/prices.yaml` (versioned, per region, with its sources and date).
//!
//! Only resources that bill by the hour or the month whatever the traffic are counted: NAT
//! gateways and their addresses, public IPv4 addresses of always-on tasks, interface
//! endpoints (per AZ), load balancers, always-on Fargate tasks, Aurora Serverless v2's
//! minimum ACUs per instance and its idle storage, KMS keys, secrets, and the log
//! ingestion of always-on tasks. Everything else (Lambda, API Gateway, DynamoDB on demand,
//! S3, CloudFront, Step Functions) costs nothing at idle and is listed as such.

use crate::output::Verdict;
use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono_stacks::Config;
use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::output::OutputFormat;

/// The price table, compiled in.
pub const PRICES: &str = include_str!("../data/prices.yaml");

/// Errors of the estimate.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The price file is broken (a bug in the repository).
    #[error("provisioner/data/prices.yaml is invalid: {0}")]
    Prices(String),
    /// No prices for the config's region.
    #[error(
        "no prices for region {region} in provisioner/data/prices.yaml (known: {known}); add the region's prices from the AWS pricing pages"
    )]
    Region {
        /// The region.
        region: String,
        /// Regions in the file.
        known: String,
    },
    /// The config could not be synthesized.
    #[error(transparent)]
    Synth(#[from] chrono_stacks::synth::SynthError),
    /// A template could not be read.
    #[error("template {0} is not valid YAML: {1}")]
    Template(String, String),
}

/// Prices of one region.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPrices {
    /// Per NAT gateway-hour.
    pub nat_gateway_hour: f64,
    /// Per public IPv4 address-hour.
    pub public_ipv4_hour: f64,
    /// Per interface endpoint, per AZ, per hour.
    pub interface_endpoint_az_hour: f64,
    /// Per load balancer-hour (idle: no capacity units).
    pub load_balancer_hour: f64,
    /// Fargate per vCPU-hour, by architecture (`x86_64`, `arm64`).
    pub fargate_vcpu_hour: BTreeMap<String, f64>,
    /// Fargate per GB-hour, by architecture.
    pub fargate_gb_hour: BTreeMap<String, f64>,
    /// Aurora Serverless v2 per ACU-hour.
    pub aurora_serverless_v2_acu_hour: f64,
    /// Aurora storage per GB-month.
    pub aurora_storage_gb_month: f64,
    /// Per KMS key-month.
    pub kms_key_month: f64,
    /// Per Secrets Manager secret-month.
    pub secret_month: f64,
    /// CloudWatch Logs ingestion per GB.
    pub logs_ingest_gb: f64,
}

/// Assumptions of the idle estimate.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Assumptions {
    /// GB an idle Aurora cluster stores.
    pub aurora_idle_storage_gb: f64,
    /// GB/month of logs one always-on task writes at idle.
    pub idle_log_gb_per_task: f64,
}

/// The price file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// Layout/contents version.
    pub version: u32,
    /// When the prices were read.
    pub read: String,
    /// AWS pricing pages.
    pub sources: BTreeMap<String, String>,
    /// Pages the numbers were checked against on `read`.
    pub verified: Vec<String>,
    /// Hours in a month.
    pub hours_per_month: f64,
    /// Assumptions.
    pub assumptions: Assumptions,
    /// Prices by region.
    pub regions: BTreeMap<String, RegionPrices>,
}

/// The compiled-in price table.
pub fn prices() -> Result<PriceTable, CostError> {
    serde_yaml::from_str(PRICES).map_err(|e| CostError::Prices(e.to_string()))
}

/// One costed resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    /// Short stack name.
    pub stack: String,
    /// Logical id.
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// How the figure comes about (`1 × 730 h × $0.045`).
    pub basis: String,
    /// USD per month.
    pub monthly: f64,
}

/// The estimate of one config.
#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    /// `<customer>-<stage>`.
    pub target: String,
    /// Region.
    pub region: String,
    /// USD per month, idle.
    pub total_monthly: f64,
    /// Costed resources, most expensive first.
    pub lines: Vec<CostLine>,
    /// Resource types present that cost nothing at idle, with their counts.
    pub free_at_idle: BTreeMap<String, usize>,
    /// The region's prices used.
    pub prices: RegionPrices,
    /// Assumptions used.
    pub assumptions: Assumptions,
    /// Price file version and date.
    pub price_version: u32,
    /// When the prices were read.
    pub prices_read: String,
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Estimates the idle monthly cost of `templates` (short stack name → body) in `region`.
pub fn estimate(
    target: &str,
    region: &str,
    templates: &BTreeMap<String, String>,
    table: &PriceTable,
) -> Result<CostReport, CostError> {
    let p = table
        .regions
        .get(region)
        .ok_or_else(|| CostError::Region {
            region: region.to_owned(),
            known: table.regions.keys().cloned().collect::<Vec<_>>().join(", "),
        })?
        .clone();
    let h = table.hours_per_month;
    let a = &table.assumptions;
    let mut lines = Vec::new();
    let mut free: BTreeMap<String, usize> = BTreeMap::new();
    for (stack, body) in templates {
        let t: Value = serde_yaml::from_str(body)
            .map_err(|e| CostError::Template(stack.clone(), e.to_string()))?;
        let Some(resources) = t.get("Resources").and_then(Value::as_mapping) else {
            continue;
        };
        let by_id = |id: &str| resources.get(Value::String(id.to_owned()));
        for (id, r) in resources {
            let id = id.as_str().unwrap_or_default().to_owned();
            let ty = r["Type"].as_str().unwrap_or_default().to_owned();
            let props = &r["Properties"];
            let mut line = |basis: String, monthly: f64| {
                lines.push(CostLine {
                    stack: stack.clone(),
                    logical_id: id.clone(),
                    resource_type: ty.clone(),
                    basis,
                    monthly,
                });
            };
            match ty.as_str() {
                "AWS::EC2::NatGateway" => line(
                    format!("{h} h × ${}", p.nat_gateway_hour),
                    h * p.nat_gateway_hour,
                ),
                "AWS::EC2::EIP" => line(
                    format!("{h} h × ${} (public IPv4)", p.public_ipv4_hour),
                    h * p.public_ipv4_hour,
                ),
                "AWS::EC2::VPCEndpoint"
                    if props["VpcEndpointType"].as_str() == Some("Interface") =>
                {
                    let azs = props["SubnetIds"].as_sequence().map_or(1, Vec::len);
                    line(
                        format!("{azs} AZ × {h} h × ${}", p.interface_endpoint_az_hour),
                        azs as f64 * h * p.interface_endpoint_az_hour,
                    );
                }
                "AWS::ElasticLoadBalancingV2::LoadBalancer" => line(
                    format!(
                        "{h} h × ${} (no capacity units at idle)",
                        p.load_balancer_hour
                    ),
                    h * p.load_balancer_hour,
                ),
                "AWS::ECS::Service" => {
                    let tasks = num(&props["DesiredCount"]).unwrap_or(0.0);
                    let td = props["TaskDefinition"]["Ref"]
                        .as_str()
                        .and_then(by_id)
                        .map(|t| &t["Properties"]);
                    let (cpu, mem, arch) = td.map_or((0.0, 0.0, "x86_64"), |td| {
                        (
                            num(&td["Cpu"]).unwrap_or(0.0) / 1024.0,
                            num(&td["Memory"]).unwrap_or(0.0) / 1024.0,
                            if td["RuntimePlatform"]["CpuArchitecture"].as_str() == Some("ARM64") {
                                "arm64"
                            } else {
                                "x86_64"
                            },
                        )
                    });
                    let vcpu_h = p.fargate_vcpu_hour.get(arch).copied().unwrap_or(0.0);
                    let gb_h = p.fargate_gb_hour.get(arch).copied().unwrap_or(0.0);
                    let public =
                        props["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"]
                            .as_str()
                            == Some("ENABLED");
                    let ip = if public { p.public_ipv4_hour } else { 0.0 };
                    let logs = a.idle_log_gb_per_task * p.logs_ingest_gb;
                    line(
                        format!(
                            "{tasks} task × {h} h × ({cpu} vCPU × ${vcpu_h} + {mem} GB × ${gb_h}{}) + {} GB logs × ${}",
                            if public {
                                format!(" + public IPv4 ${}", p.public_ipv4_hour)
                            } else {
                                String::new()
                            },
                            a.idle_log_gb_per_task,
                            p.logs_ingest_gb
                        ),
                        tasks * (h * (cpu * vcpu_h + mem * gb_h + ip) + logs),
                    );
                }
                "AWS::RDS::DBCluster" => {
                    let min = num(&props["ServerlessV2ScalingConfiguration"]["MinCapacity"])
                        .unwrap_or(0.0);
                    let instances = resources
                        .values()
                        .filter(|r| {
                            r["Type"].as_str() == Some("AWS::RDS::DBInstance")
                                && r["Properties"]["DBInstanceClass"].as_str()
                                    == Some("db.serverless")
                        })
                        .count() as f64;
                    let secret = if props["ManageMasterUserPassword"].as_bool() == Some(true) {
                        p.secret_month
                    } else {
                        0.0
                    };
                    line(
                        format!(
                            "{instances} instance × {min} ACU min × {h} h × ${} + {} GB × ${}{}",
                            p.aurora_serverless_v2_acu_hour,
                            a.aurora_idle_storage_gb,
                            p.aurora_storage_gb_month,
                            if secret > 0.0 {
                                format!(" + master secret ${secret}")
                            } else {
                                String::new()
                            }
                        ),
                        instances * min * h * p.aurora_serverless_v2_acu_hour
                            + a.aurora_idle_storage_gb * p.aurora_storage_gb_month
                            + secret,
                    );
                }
                "AWS::KMS::Key" => line(format!("1 key × ${}", p.kms_key_month), p.kms_key_month),
                "AWS::SecretsManager::Secret" => {
                    line(format!("1 secret × ${}", p.secret_month), p.secret_month);
                }
                _ => *free.entry(ty.clone()).or_default() += 1,
            }
        }
    }
    lines.sort_by(|a, b| {
        b.monthly
            .total_cmp(&a.monthly)
            .then_with(|| (&a.stack, &a.logical_id).cmp(&(&b.stack, &b.logical_id)))
    });
    Ok(CostReport {
        target: target.to_owned(),
        region: region.to_owned(),
        total_monthly: lines.iter().map(|l| l.monthly).sum(),
        lines,
        free_at_idle: free,
        prices: p,
        assumptions: a.clone(),
        price_version: table.version,
        prices_read: table.read.clone(),
    })
}

/// Synthesizes a config in memory and estimates it.
pub fn estimate_config(cfg: &Config) -> Result<CostReport, CostError> {
    let dir = chrono_stacks::synth::dir_name(cfg);
    let templates: BTreeMap<String, String> = chrono_stacks::synth::synthesize(cfg)?
        .into_iter()
        .filter_map(|f| {
            let stack = f
                .path
                .strip_prefix(&format!("{dir}/"))?
                .strip_suffix(".yaml")?
                .to_owned();
            Some((stack, f.contents))
        })
        .collect();
    estimate(&dir, &cfg.region, &templates, &prices()?)
}

/// Renders the estimate: breakdown, total, resources free at idle, the prices used.
pub fn render(r: &CostReport) -> String {
    let mut s = format!(
        "idle cost estimate of {} in {} (prices v{} read {}; provisioner/data/prices.yaml)\n",
        r.target, r.region, r.price_version, r.prices_read
    );
    for l in &r.lines {
        s.push_str(&format!(
            "  {:>9} /month  {:<8} {:<28} {:<42} {}\n",
            format!("${:.2}", l.monthly),
            l.stack,
            l.logical_id,
            l.resource_type,
            l.basis
        ));
    }
    s.push_str(&format!(
        "  {:>9} /month  total, idle\n",
        format!("${:.2}", r.total_monthly)
    ));
    let free: Vec<String> = r
        .free_at_idle
        .iter()
        .map(|(t, n)| format!("{t} ×{n}"))
        .collect();
    s.push_str(&format!("  no idle charge: {}\n", free.join(", ")));
    s
}

/// `chronoctl cost`.
#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    /// The customer config.
    pub config: PathBuf,
    /// Estimate the preview `chronoctl preview up --from CONFIG` would deploy instead.
    #[arg(long)]
    pub preview: bool,
}

/// Runs `chronoctl cost`.
pub fn run(args: &CostArgs, output: OutputFormat) -> Result<Verdict, crate::Error> {
    let mut cfg = Config::load(&args.config)?;
    if args.preview {
        cfg = preview_shape(&cfg, &args.config.display().to_string())
            .map_err(|e| crate::Error::Usage(e.to_string()))?;
    }
    let r = estimate_config(&cfg).map_err(|e| crate::Error::Usage(e.to_string()))?;
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        print!("{}", render(&r));
    }
    Ok(Verdict::Pass)
}

/// The preview shape of a config, for estimates (a fixed name, the config's account, an
/// expiry in the far future: none of them changes what bills at idle).
pub fn preview_shape(
    base: &Config,
    file: &str,
) -> Result<Config, chrono_stacks::config::ConfigError> {
    chrono_stacks::preview::derive(
        base,
        file,
        "cost-estimate",
        &base.account_id,
        "2099-01-01T00:00:00Z",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(file: &str) -> Config {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../customers")
            .join(file);
        Config::load(&p).unwrap()
    }

    fn cents(x: f64) -> i64 {
        (x * 100.0).round() as i64
    }

    /// The prod shape of the example config, recomputed by hand from the price file: the
    /// estimate follows the file, and a change of either shows here.
    #[test]
    fn the_prod_figure_of_the_example_config_is_pinned_from_the_price_file() {
        let table = prices().unwrap();
        let p = &table.regions["eu-west-1"];
        let h = table.hours_per_month;
        let a = &table.assumptions;
        let r = estimate_config(&example("acme-prod.yaml")).unwrap();
        // 3 NAT gateways + their addresses; 2 filter-ai tasks (0.5 vCPU, 1 GB, x86);
        // 1 NLB; Aurora writer + reader at 2 ACU minimum; one KMS key; the master secret
        let want = 3.0 * h * (p.nat_gateway_hour + p.public_ipv4_hour)
            + 2.0
                * (h * (0.5 * p.fargate_vcpu_hour["x86_64"] + p.fargate_gb_hour["x86_64"])
                    + a.idle_log_gb_per_task * p.logs_ingest_gb)
            + h * p.load_balancer_hour
            + 2.0 * 2.0 * h * p.aurora_serverless_v2_acu_hour
            + a.aurora_idle_storage_gb * p.aurora_storage_gb_month
            + p.secret_month
            + p.kms_key_month;
        assert_eq!(cents(r.total_monthly), cents(want), "{}", render(&r));
        assert_eq!(cents(r.total_monthly), 55173, "{}", render(&r));
        assert_eq!(r.lines[0].logical_id, "Database");
    }

    /// Resource types that bill by the hour whatever the traffic and that the preview
    /// shape must not hold (issue 16: at most $5/month idle).
    const NOT_IN_A_PREVIEW: [&str; 4] = [
        "AWS::EC2::NatGateway",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::ECS::Service",
        "AWS::EC2::EIP",
    ];

    /// The preview shape of the same config, recomputed by hand from the price file:
    /// within issue 16's $5/month idle, and nothing that bills by the hour but Aurora's
    /// storage, its master secret and the data key (Aurora paused at 0 ACU).
    #[test]
    fn the_preview_figure_of_the_example_config_is_pinned_and_within_five_dollars() {
        let table = prices().unwrap();
        let p = &table.regions["eu-west-1"];
        let a = &table.assumptions;
        let cfg = preview_shape(&example("acme-staging.yaml"), "acme-staging.yaml").unwrap();
        let r = estimate_config(&cfg).unwrap();
        let want =
            a.aurora_idle_storage_gb * p.aurora_storage_gb_month + p.secret_month + p.kms_key_month;
        assert_eq!(cents(r.total_monthly), cents(want), "{}", render(&r));
        assert_eq!(cents(r.total_monthly), 151, "{}", render(&r));
        assert!(r.total_monthly <= 5.0, "{}", render(&r));
        let costed: Vec<&str> = r.lines.iter().map(|l| l.logical_id.as_str()).collect();
        assert_eq!(costed, ["DataKey", "Database"], "{}", render(&r));
        for ty in NOT_IN_A_PREVIEW {
            assert!(
                !r.lines.iter().any(|l| l.resource_type == ty) && !r.free_at_idle.contains_key(ty),
                "{ty} in the preview shape:\n{}",
                render(&r)
            );
        }
        assert!(
            !r.lines
                .iter()
                .any(|l| l.resource_type == "AWS::EC2::VPCEndpoint"),
            "an interface endpoint in the preview shape:\n{}",
            render(&r)
        );
        // the egress-only internet gateway has no idle charge
        assert_eq!(r.free_at_idle["AWS::EC2::EgressOnlyInternetGateway"], 1);
    }

    /// Bedrock in a preview is opt-in through the base's `bedrock-runtime` endpoint, and
    /// the estimate shows its price.
    #[test]
    fn opting_a_preview_into_bedrock_costs_one_interface_endpoint() {
        let table = prices().unwrap();
        let p = &table.regions["eu-west-1"];
        let mut base = example("acme-staging.yaml");
        base.network.interface_endpoints = Some(vec!["bedrock-runtime".into()]);
        let cfg = preview_shape(&base, "acme-staging.yaml").unwrap();
        assert_eq!(cfg.ai_provider(), "bedrock");
        let r = estimate_config(&cfg).unwrap();
        let endpoint = r
            .lines
            .iter()
            .find(|l| l.resource_type == "AWS::EC2::VPCEndpoint")
            .unwrap();
        assert_eq!(
            cents(endpoint.monthly),
            cents(2.0 * table.hours_per_month * p.interface_endpoint_az_hour)
        );
    }

    #[test]
    fn a_region_without_prices_is_a_clear_error() {
        let mut cfg = example("acme-staging.yaml");
        cfg.region = "ap-south-2".into();
        let e = estimate_config(&cfg).unwrap_err();
        assert!(
            e.to_string().contains("no prices for region ap-south-2"),
            "{e}"
        );
        assert!(e.to_string().contains("eu-west-1"), "{e}");
    }
}
