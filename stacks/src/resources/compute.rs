//! Lambda, ECS, Step Functions, CloudWatch Logs and the internal load balancer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Exprs, Tags};
use crate::model::{Expr, Handle, Resource};

/// `AWS::Logs::LogGroup`. Changing `LogGroupName` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogGroup {
    /// Name (replacement).
    pub log_group_name: String,
    /// Retention in days.
    pub retention_in_days: u32,
    /// Tags.
    pub tags: Tags,
}

impl Resource for LogGroup {
    const TYPE: &'static str = "AWS::Logs::LogGroup";
}

impl Handle<LogGroup> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// `AWS::Lambda::Function` (custom runtime, code in the assets bucket). Changing
/// `FunctionName` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Function {
    /// Name (replacement).
    pub function_name: String,
    /// What it does.
    pub description: String,
    /// `provided.al2023`.
    pub runtime: String,
    /// `bootstrap`.
    pub handler: String,
    /// `arm64`.
    pub architectures: Vec<String>,
    /// Code location.
    pub code: LambdaCode,
    /// Execution role.
    pub role: Expr,
    /// Memory in MB.
    pub memory_size: u32,
    /// Timeout in seconds.
    pub timeout: u32,
    /// Environment variables.
    pub environment: LambdaEnvironment,
    /// VPC placement (`None`: outside the VPC, e.g. a function that only needs the
    /// identity provider's public key set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vpc_config: Option<LambdaVpcConfig>,
    /// Log group.
    pub logging_config: Value,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Function {
    const TYPE: &'static str = "AWS::Lambda::Function";
}

impl Handle<Function> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// Lambda code in S3.
#[derive(Debug, Clone, Serialize)]
pub struct LambdaCode {
    /// Bucket.
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Expr,
    /// Key.
    #[serde(rename = "S3Key")]
    pub s3_key: Expr,
}

/// Lambda environment.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LambdaEnvironment {
    /// Variables.
    pub variables: BTreeMap<String, Expr>,
}

/// Lambda VPC placement.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LambdaVpcConfig {
    /// Subnets.
    pub subnet_ids: Expr,
    /// Security groups.
    pub security_group_ids: Exprs,
    /// Outbound IPv6 from dual-stack subnets (`Ipv6AllowedForDualStack`,
    /// <https://docs.aws.amazon.com/lambda/latest/api/API_VpcConfig.html>).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ipv6_allowed_for_dual_stack: bool,
}

/// `AWS::Lambda::Permission`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Permission {
    /// `lambda:InvokeFunction`.
    pub action: String,
    /// Function ARN.
    pub function_name: Expr,
    /// `apigateway.amazonaws.com`.
    pub principal: String,
    /// Calling API's ARN pattern.
    pub source_arn: Expr,
}

impl Resource for Permission {
    const TYPE: &'static str = "AWS::Lambda::Permission";
}

/// `AWS::ECS::Cluster`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Cluster {
    /// Name.
    pub cluster_name: String,
    /// Container insights.
    pub cluster_settings: Vec<Value>,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Cluster {
    const TYPE: &'static str = "AWS::ECS::Cluster";
}

impl Handle<Cluster> {
    /// `Fn::GetAtt Arn`.
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// `AWS::ECS::TaskDefinition` (Fargate). Every property change creates a new revision.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskDefinition {
    /// Family.
    pub family: String,
    /// `FARGATE`.
    pub requires_compatibilities: Vec<String>,
    /// `awsvpc`.
    pub network_mode: String,
    /// CPU units, as a string.
    pub cpu: String,
    /// Memory in MB, as a string.
    pub memory: String,
    /// Role of the ECS agent (image pull, logs).
    pub execution_role_arn: Expr,
    /// Role of the application.
    pub task_role_arn: Expr,
    /// ARM64 Linux.
    pub runtime_platform: Value,
    /// Containers.
    pub container_definitions: Vec<ContainerDefinition>,
    /// Tags.
    pub tags: Tags,
}

impl Resource for TaskDefinition {
    const TYPE: &'static str = "AWS::ECS::TaskDefinition";
}

/// One container.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDefinition {
    /// Name.
    pub name: String,
    /// Image URI.
    pub image: Expr,
    /// Entry point (the runtime binary).
    pub entry_point: Vec<String>,
    /// Essential.
    pub essential: bool,
    /// Read-only root file system.
    pub readonly_root_filesystem: bool,
    /// Environment.
    pub environment: Vec<KeyValue>,
    /// Ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<Value>,
    /// Logs.
    pub log_configuration: Value,
}

/// A `{Name, Value}` pair.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: Expr,
}

/// `AWS::ECS::Service` on Fargate.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    /// Service name (replacement).
    pub service_name: String,
    /// Cluster.
    pub cluster: Expr,
    /// Task definition.
    pub task_definition: Expr,
    /// `FARGATE`.
    pub launch_type: String,
    /// Tasks.
    pub desired_count: u32,
    /// Networking.
    pub network_configuration: Value,
    /// Target groups.
    pub load_balancers: Vec<Value>,
    /// Grace period for health checks.
    pub health_check_grace_period_seconds: u32,
    /// Circuit breaker.
    pub deployment_configuration: Value,
    /// Tag propagation.
    pub propagate_tags: String,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Service {
    const TYPE: &'static str = "AWS::ECS::Service";
}

/// `AWS::StepFunctions::StateMachine`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StateMachine {
    /// Name (replacement).
    pub state_machine_name: String,
    /// `STANDARD`.
    pub state_machine_type: String,
    /// Execution role.
    pub role_arn: Expr,
    /// Amazon States Language definition with `${Name}` placeholders.
    pub definition: Value,
    /// Values for the placeholders.
    pub definition_substitutions: BTreeMap<String, Expr>,
    /// Tags.
    pub tags: Tags,
}

impl Resource for StateMachine {
    const TYPE: &'static str = "AWS::StepFunctions::StateMachine";
}

/// `AWS::ElasticLoadBalancingV2::LoadBalancer` (internal NLB in front of filter-ai).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoadBalancer {
    /// `network`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `internal`.
    pub scheme: String,
    /// Subnets.
    pub subnets: Expr,
    /// Security groups.
    pub security_groups: Exprs,
    /// `off`: API Gateway reaches the NLB over PrivateLink from addresses outside the VPC.
    pub enforce_security_group_inbound_rules_on_private_link_traffic: String,
    /// Attributes.
    pub load_balancer_attributes: Vec<Value>,
    /// Tags.
    pub tags: Tags,
}

impl Resource for LoadBalancer {
    const TYPE: &'static str = "AWS::ElasticLoadBalancingV2::LoadBalancer";
}

impl Handle<LoadBalancer> {
    /// `Fn::GetAtt DNSName`.
    pub fn dns_name(&self) -> Expr {
        self.get_att("DNSName")
    }
}

/// `AWS::ElasticLoadBalancingV2::TargetGroup`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TargetGroup {
    /// `ip` (Fargate).
    pub target_type: String,
    /// `TCP`.
    pub protocol: String,
    /// Port.
    pub port: u16,
    /// VPC.
    pub vpc_id: Expr,
    /// Health check protocol.
    pub health_check_protocol: String,
    /// Health check path.
    pub health_check_path: String,
    /// Tags.
    pub tags: Tags,
}

impl Resource for TargetGroup {
    const TYPE: &'static str = "AWS::ElasticLoadBalancingV2::TargetGroup";
}

/// `AWS::ElasticLoadBalancingV2::Listener`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Listener {
    /// Load balancer.
    pub load_balancer_arn: Expr,
    /// `TCP`.
    pub protocol: String,
    /// Port.
    pub port: u16,
    /// Forward to the target group.
    pub default_actions: Vec<Value>,
}

impl Resource for Listener {
    const TYPE: &'static str = "AWS::ElasticLoadBalancingV2::Listener";
}
