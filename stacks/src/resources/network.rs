//! EC2 networking resources.

use serde::Serialize;
use serde_json::Value;

use super::{Exprs, Tags};
use crate::model::{Expr, Handle, Resource};

/// `AWS::EC2::VPC`. Changing `CidrBlock` replaces the VPC.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Vpc {
    /// CIDR (replacement).
    pub cidr_block: String,
    /// DNS support (needed by interface endpoints).
    pub enable_dns_support: bool,
    /// DNS hostnames.
    pub enable_dns_hostnames: bool,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Vpc {
    const TYPE: &'static str = "AWS::EC2::VPC";
}

impl Handle<Vpc> {
    /// The VPC's IPv6 blocks (a list; empty until a [`VpcCidrBlock`] adds one).
    pub fn ipv6_cidr_blocks(&self) -> Expr {
        self.get_att("Ipv6CidrBlocks")
    }
}

/// `AWS::EC2::Subnet`. Changing `CidrBlock` or `AvailabilityZone` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Subnet {
    /// VPC.
    pub vpc_id: Expr,
    /// CIDR (replacement).
    pub cidr_block: String,
    /// A /64 of the VPC's IPv6 block (dual-stack subnets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_cidr_block: Option<Expr>,
    /// AZ (replacement).
    pub availability_zone: Expr,
    /// Public IPs on launch (public subnets only).
    pub map_public_ip_on_launch: bool,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Subnet {
    const TYPE: &'static str = "AWS::EC2::Subnet";
}

/// `AWS::EC2::InternetGateway`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InternetGateway {
    /// Tags.
    pub tags: Tags,
}

impl Resource for InternetGateway {
    const TYPE: &'static str = "AWS::EC2::InternetGateway";
}

/// `AWS::EC2::VPCGatewayAttachment`.
/// An Amazon-provided IPv6 /56 for a VPC (`AmazonProvidedIpv6CidrBlock`); no charge.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcCidrBlock {
    pub vpc_id: Expr,
    pub amazon_provided_ipv6_cidr_block: bool,
}

impl Resource for VpcCidrBlock {
    const TYPE: &'static str = "AWS::EC2::VPCCidrBlock";
}

/// Outbound-only IPv6 to the internet, free of hourly charges
/// (<https://docs.aws.amazon.com/vpc/latest/userguide/egress-only-internet-gateway.html>).
/// Changing `VpcId` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EgressOnlyInternetGateway {
    pub vpc_id: Expr,
}

impl Resource for EgressOnlyInternetGateway {
    const TYPE: &'static str = "AWS::EC2::EgressOnlyInternetGateway";
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GatewayAttachment {
    /// VPC.
    pub vpc_id: Expr,
    /// Internet gateway.
    pub internet_gateway_id: Expr,
}

impl Resource for GatewayAttachment {
    const TYPE: &'static str = "AWS::EC2::VPCGatewayAttachment";
}

/// `AWS::EC2::RouteTable`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RouteTable {
    /// VPC.
    pub vpc_id: Expr,
    /// Tags.
    pub tags: Tags,
}

impl Resource for RouteTable {
    const TYPE: &'static str = "AWS::EC2::RouteTable";
}

/// `AWS::EC2::Route` (default route through a gateway or NAT).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Route {
    /// Route table.
    pub route_table_id: Expr,
    /// IPv4 destination (this or `destination_ipv6_cidr_block`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_cidr_block: Option<String>,
    /// IPv6 destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_ipv6_cidr_block: Option<String>,
    /// Internet gateway target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<Expr>,
    /// NAT gateway target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_gateway_id: Option<Expr>,
    /// Egress-only internet gateway target (IPv6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_only_internet_gateway_id: Option<Expr>,
}

impl Resource for Route {
    const TYPE: &'static str = "AWS::EC2::Route";
}

/// `AWS::EC2::SubnetRouteTableAssociation`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubnetRouteTableAssociation {
    /// Subnet.
    pub subnet_id: Expr,
    /// Route table.
    pub route_table_id: Expr,
}

impl Resource for SubnetRouteTableAssociation {
    const TYPE: &'static str = "AWS::EC2::SubnetRouteTableAssociation";
}

/// `AWS::EC2::EIP` for a NAT gateway.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Eip {
    /// `vpc`.
    pub domain: String,
    /// Tags.
    pub tags: Tags,
}

impl Resource for Eip {
    const TYPE: &'static str = "AWS::EC2::EIP";
}

impl Handle<Eip> {
    /// `Fn::GetAtt AllocationId`.
    pub fn allocation_id(&self) -> Expr {
        self.get_att("AllocationId")
    }
}

/// `AWS::EC2::NatGateway`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NatGateway {
    /// EIP allocation.
    pub allocation_id: Expr,
    /// Public subnet.
    pub subnet_id: Expr,
    /// Tags.
    pub tags: Tags,
}

impl Resource for NatGateway {
    const TYPE: &'static str = "AWS::EC2::NatGateway";
}

/// `AWS::EC2::VPCEndpoint` (gateway or interface).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcEndpoint {
    /// VPC.
    pub vpc_id: Expr,
    /// `com.amazonaws.<region>.<service>`.
    pub service_name: Expr,
    /// `Gateway` or `Interface`.
    pub vpc_endpoint_type: String,
    /// Route tables (gateway endpoints).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub route_table_ids: Exprs,
    /// Subnets (interface endpoints).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subnet_ids: Exprs,
    /// Security groups (interface endpoints).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Exprs,
    /// Private DNS (interface endpoints).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_dns_enabled: Option<bool>,
}

impl Resource for VpcEndpoint {
    const TYPE: &'static str = "AWS::EC2::VPCEndpoint";
}

/// `AWS::EC2::SecurityGroup`. Changing `GroupDescription` replaces it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroup {
    /// Description (replacement).
    pub group_description: String,
    /// VPC.
    pub vpc_id: Expr,
    /// Ingress rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub security_group_ingress: Vec<Value>,
    /// Egress rules.
    pub security_group_egress: Vec<Value>,
    /// Tags.
    pub tags: Tags,
}

impl Resource for SecurityGroup {
    const TYPE: &'static str = "AWS::EC2::SecurityGroup";
}

impl Handle<SecurityGroup> {
    /// `Fn::GetAtt GroupId`.
    pub fn group_id(&self) -> Expr {
        self.get_att("GroupId")
    }
}

/// `AWS::EC2::SecurityGroupIngress` (separate rule, for rules between groups).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroupIngress {
    /// Target group.
    pub group_id: Expr,
    /// Description.
    pub description: String,
    /// `tcp`.
    pub ip_protocol: String,
    /// From port.
    pub from_port: u16,
    /// To port.
    pub to_port: u16,
    /// Source group.
    pub source_security_group_id: Expr,
}

impl Resource for SecurityGroupIngress {
    const TYPE: &'static str = "AWS::EC2::SecurityGroupIngress";
}
