//! Network actions: VPC, internet gateway, the main route table's default route, subnets and
//! security groups (original-tool.md §4.2's infra, tagged at creation).
//!
//! Every create takes the [`Tags`] and sends them in the call itself (`TagSpecification`), so a
//! resource never exists untagged. Describe calls take ids and/or [`Filter`]s and follow
//! `NextToken`. Deletes return `Err` with class `NotFound` when the resource is already gone;
//! the reconciler treats that as done.

use serde::Deserialize;

use super::client::{Ec2, Page, Params};
use super::error::AwsError;
use super::types::{
    Acknowledged, Filter, InternetGatewayId, RouteTableId, SecurityGroupId, SubnetId, TagTarget,
    Tags, VpcId, items, tag_set,
};
use crate::spec::{Cidr, ZoneId};

#[derive(Debug, Clone, Deserialize)]
pub struct Vpc {
    #[serde(rename = "vpcId")]
    pub id: VpcId,
    #[serde(rename = "cidrBlock", default)]
    pub cidr_block: String,
    /// `pending` or `available`.
    #[serde(default)]
    pub state: String,
    #[serde(rename = "isDefault", default)]
    pub is_default: bool,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    pub tags: Tags,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InternetGateway {
    #[serde(rename = "internetGatewayId")]
    pub id: InternetGatewayId,
    #[serde(rename = "attachmentSet", default, deserialize_with = "items")]
    pub attachments: Vec<GatewayAttachment>,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    pub tags: Tags,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GatewayAttachment {
    #[serde(rename = "vpcId")]
    pub vpc_id: VpcId,
    /// `attaching`, `available` (attached), `detaching`, `detached`.
    #[serde(default)]
    pub state: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RouteTable {
    #[serde(rename = "routeTableId")]
    pub id: RouteTableId,
    #[serde(rename = "vpcId")]
    pub vpc_id: VpcId,
    #[serde(rename = "routeSet", default, deserialize_with = "items")]
    pub routes: Vec<Route>,
    #[serde(rename = "associationSet", default, deserialize_with = "items")]
    pub associations: Vec<RouteTableAssociation>,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    pub tags: Tags,
}

impl RouteTable {
    /// Whether this is its VPC's main route table (the one subnets use unless told otherwise).
    pub fn is_main(&self) -> bool {
        self.associations.iter().any(|a| a.main)
    }

    /// The route for `destination`, if any.
    pub fn route_to(&self, destination: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.destination_cidr_block.as_deref() == Some(destination))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    #[serde(rename = "destinationCidrBlock")]
    pub destination_cidr_block: Option<String>,
    #[serde(rename = "gatewayId")]
    pub gateway_id: Option<String>,
    /// `active` or `blackhole`.
    #[serde(default)]
    pub state: String,
    /// `CreateRouteTable` (the VPC's local route), `CreateRoute`, …
    #[serde(default)]
    pub origin: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RouteTableAssociation {
    #[serde(default)]
    pub main: bool,
    #[serde(rename = "subnetId")]
    pub subnet_id: Option<SubnetId>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subnet {
    #[serde(rename = "subnetId")]
    pub id: SubnetId,
    #[serde(rename = "vpcId")]
    pub vpc_id: VpcId,
    #[serde(rename = "cidrBlock", default)]
    pub cidr_block: String,
    #[serde(rename = "availabilityZone")]
    pub zone: ZoneId,
    #[serde(default)]
    pub state: String,
    #[serde(rename = "availableIpAddressCount", default)]
    pub available_ip_address_count: u32,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    pub tags: Tags,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecurityGroup {
    #[serde(rename = "groupId")]
    pub id: SecurityGroupId,
    #[serde(rename = "groupName", default)]
    pub name: String,
    #[serde(rename = "groupDescription", default)]
    pub description: String,
    #[serde(rename = "vpcId")]
    pub vpc_id: Option<VpcId>,
    #[serde(rename = "ipPermissions", default, deserialize_with = "items")]
    pub ingress: Vec<IpPermission>,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    pub tags: Tags,
}

/// One ingress rule as EC2 reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct IpPermission {
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    #[serde(rename = "ipProtocol")]
    pub protocol: String,
    #[serde(rename = "fromPort")]
    pub from_port: Option<i32>,
    #[serde(rename = "toPort")]
    pub to_port: Option<i32>,
    #[serde(rename = "ipRanges", default, deserialize_with = "items")]
    pub ip_ranges: Vec<IpRange>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpRange {
    #[serde(rename = "cidrIp")]
    pub cidr: String,
    pub description: Option<String>,
}

/// An ingress rule to add: `protocol` ports `from..=to` from each of `sources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressRule {
    /// `tcp`, `udp`, `icmp` or `-1`.
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub sources: Vec<Cidr>,
    /// Shown in the console beside each range (e.g. "ssh from the operator").
    pub description: Option<String>,
}

impl IngressRule {
    pub fn tcp(from_port: i32, to_port: i32, sources: Vec<Cidr>) -> Self {
        IngressRule {
            protocol: "tcp".into(),
            from_port,
            to_port,
            sources,
            description: None,
        }
    }
}

impl Params {
    /// `IpPermissions.N.*`: one permission per rule, one range per source; descriptions only
    /// where they are wanted (revokes match rules without them).
    fn ip_permissions(&mut self, rules: &[IngressRule], descriptions: bool) -> &mut Self {
        for (i, rule) in rules.iter().enumerate() {
            let n = i + 1;
            self.set(format!("IpPermissions.{n}.IpProtocol"), &rule.protocol)
                .set(format!("IpPermissions.{n}.FromPort"), rule.from_port)
                .set(format!("IpPermissions.{n}.ToPort"), rule.to_port);
            for (j, source) in rule.sources.iter().enumerate() {
                let m = j + 1;
                self.set(format!("IpPermissions.{n}.IpRanges.{m}.CidrIp"), source);
                if let Some(d) = rule.description.as_ref().filter(|_| descriptions) {
                    self.set(format!("IpPermissions.{n}.IpRanges.{m}.Description"), d);
                }
            }
        }
        self
    }
}

// --- responses -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct CreateVpcResponse {
    vpc: Vpc,
}

#[derive(Deserialize)]
struct DescribeVpcsResponse {
    #[serde(rename = "vpcSet", default, deserialize_with = "items")]
    vpcs: Vec<Vpc>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeVpcsResponse {
    type Item = Vpc;
    fn into_parts(self) -> (Vec<Vpc>, Option<String>) {
        (self.vpcs, self.next_token)
    }
}

#[derive(Deserialize)]
struct CreateInternetGatewayResponse {
    #[serde(rename = "internetGateway")]
    gateway: InternetGateway,
}

#[derive(Deserialize)]
struct DescribeInternetGatewaysResponse {
    #[serde(rename = "internetGatewaySet", default, deserialize_with = "items")]
    gateways: Vec<InternetGateway>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeInternetGatewaysResponse {
    type Item = InternetGateway;
    fn into_parts(self) -> (Vec<InternetGateway>, Option<String>) {
        (self.gateways, self.next_token)
    }
}

#[derive(Deserialize)]
struct DescribeRouteTablesResponse {
    #[serde(rename = "routeTableSet", default, deserialize_with = "items")]
    tables: Vec<RouteTable>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeRouteTablesResponse {
    type Item = RouteTable;
    fn into_parts(self) -> (Vec<RouteTable>, Option<String>) {
        (self.tables, self.next_token)
    }
}

#[derive(Deserialize)]
struct CreateSubnetResponse {
    subnet: Subnet,
}

#[derive(Deserialize)]
struct DescribeSubnetsResponse {
    #[serde(rename = "subnetSet", default, deserialize_with = "items")]
    subnets: Vec<Subnet>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeSubnetsResponse {
    type Item = Subnet;
    fn into_parts(self) -> (Vec<Subnet>, Option<String>) {
        (self.subnets, self.next_token)
    }
}

#[derive(Deserialize)]
struct CreateSecurityGroupResponse {
    #[serde(rename = "groupId")]
    id: SecurityGroupId,
}

#[derive(Deserialize)]
struct DescribeSecurityGroupsResponse {
    #[serde(rename = "securityGroupInfo", default, deserialize_with = "items")]
    groups: Vec<SecurityGroup>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeSecurityGroupsResponse {
    type Item = SecurityGroup;
    fn into_parts(self) -> (Vec<SecurityGroup>, Option<String>) {
        (self.groups, self.next_token)
    }
}

/// Fails an action whose `<return>` said `false` (EC2 does this instead of an error body for a
/// few actions).
fn acknowledged(ec2: &Ec2, action: &'static str, ack: Acknowledged) -> Result<(), AwsError> {
    match ack.ok {
        Some(false) => Err(AwsError::malformed(
            action,
            ec2.region().clone(),
            None,
            "EC2 answered `return=false`".into(),
        )),
        _ => Ok(()),
    }
}

impl Ec2 {
    /// Creates a VPC with `cidr`, tagged with `tags` at creation.
    pub async fn create_vpc(&self, cidr: &Cidr, tags: &Tags) -> Result<Vpc, AwsError> {
        let mut p = Params::new("CreateVpc");
        p.set("CidrBlock", cidr);
        p.tag_specs(&[TagTarget::Vpc], tags);
        Ok(self.call::<CreateVpcResponse>(&p).await?.vpc)
    }

    pub async fn describe_vpcs(
        &self,
        ids: &[VpcId],
        filters: &[Filter],
    ) -> Result<Vec<Vpc>, AwsError> {
        let mut p = Params::new("DescribeVpcs");
        p.list("VpcId", ids).filters(filters);
        let max = (!Ec2::names_ids(&p, "VpcId")).then_some(1000);
        self.call_paged::<DescribeVpcsResponse>(p, max).await
    }

    pub async fn delete_vpc(&self, id: &VpcId) -> Result<(), AwsError> {
        let mut p = Params::new("DeleteVpc");
        p.set("VpcId", id);
        let ack = self.call(&p).await?;
        acknowledged(self, "DeleteVpc", ack)
    }

    pub async fn create_internet_gateway(&self, tags: &Tags) -> Result<InternetGateway, AwsError> {
        let mut p = Params::new("CreateInternetGateway");
        p.tag_specs(&[TagTarget::InternetGateway], tags);
        Ok(self
            .call::<CreateInternetGatewayResponse>(&p)
            .await?
            .gateway)
    }

    pub async fn describe_internet_gateways(
        &self,
        ids: &[InternetGatewayId],
        filters: &[Filter],
    ) -> Result<Vec<InternetGateway>, AwsError> {
        let mut p = Params::new("DescribeInternetGateways");
        p.list("InternetGatewayId", ids).filters(filters);
        let max = (!Ec2::names_ids(&p, "InternetGatewayId")).then_some(1000);
        self.call_paged::<DescribeInternetGatewaysResponse>(p, max)
            .await
    }

    pub async fn attach_internet_gateway(
        &self,
        gateway: &InternetGatewayId,
        vpc: &VpcId,
    ) -> Result<(), AwsError> {
        let mut p = Params::new("AttachInternetGateway");
        p.set("InternetGatewayId", gateway).set("VpcId", vpc);
        let ack = self.call(&p).await?;
        acknowledged(self, "AttachInternetGateway", ack)
    }

    /// Detaches `gateway` from `vpc`; `NotFound` (`Gateway.NotAttached`) when it is not attached.
    pub async fn detach_internet_gateway(
        &self,
        gateway: &InternetGatewayId,
        vpc: &VpcId,
    ) -> Result<(), AwsError> {
        let mut p = Params::new("DetachInternetGateway");
        p.set("InternetGatewayId", gateway).set("VpcId", vpc);
        let ack = self.call(&p).await?;
        acknowledged(self, "DetachInternetGateway", ack)
    }

    pub async fn delete_internet_gateway(&self, id: &InternetGatewayId) -> Result<(), AwsError> {
        let mut p = Params::new("DeleteInternetGateway");
        p.set("InternetGatewayId", id);
        let ack = self.call(&p).await?;
        acknowledged(self, "DeleteInternetGateway", ack)
    }

    pub async fn describe_route_tables(
        &self,
        ids: &[RouteTableId],
        filters: &[Filter],
    ) -> Result<Vec<RouteTable>, AwsError> {
        let mut p = Params::new("DescribeRouteTables");
        p.list("RouteTableId", ids).filters(filters);
        let max = (!Ec2::names_ids(&p, "RouteTableId")).then_some(100);
        self.call_paged::<DescribeRouteTablesResponse>(p, max).await
    }

    /// The main route table of `vpc` (created with the VPC; it carries no tags of ours, and is
    /// deleted with the VPC).
    pub async fn main_route_table(&self, vpc: &VpcId) -> Result<Option<RouteTable>, AwsError> {
        let tables = self
            .describe_route_tables(
                &[],
                &[
                    Filter::new("vpc-id", [vpc.as_str()]),
                    Filter::new("association.main", ["true"]),
                ],
            )
            .await?;
        // Filter again: a server that ignores `association.main` must not hand back another table.
        Ok(tables.into_iter().find(|t| t.is_main() && t.vpc_id == *vpc))
    }

    /// Adds a route `destination → gateway` to `table` (the default route: `0.0.0.0/0`).
    pub async fn create_route(
        &self,
        table: &RouteTableId,
        destination: &str,
        gateway: &InternetGatewayId,
    ) -> Result<(), AwsError> {
        let mut p = Params::new("CreateRoute");
        p.set("RouteTableId", table)
            .set("DestinationCidrBlock", destination)
            .set("GatewayId", gateway);
        let ack = self.call(&p).await?;
        acknowledged(self, "CreateRoute", ack)
    }

    /// Points the existing route for `destination` in `table` at `gateway` (a default route
    /// left pointing at a deleted gateway is a `blackhole`; CreateRoute refuses to add another).
    pub async fn replace_route(
        &self,
        table: &RouteTableId,
        destination: &str,
        gateway: &InternetGatewayId,
    ) -> Result<(), AwsError> {
        let mut p = Params::new("ReplaceRoute");
        p.set("RouteTableId", table)
            .set("DestinationCidrBlock", destination)
            .set("GatewayId", gateway);
        let ack = self.call(&p).await?;
        acknowledged(self, "ReplaceRoute", ack)
    }

    pub async fn delete_route(
        &self,
        table: &RouteTableId,
        destination: &str,
    ) -> Result<(), AwsError> {
        let mut p = Params::new("DeleteRoute");
        p.set("RouteTableId", table)
            .set("DestinationCidrBlock", destination);
        let ack = self.call(&p).await?;
        acknowledged(self, "DeleteRoute", ack)
    }

    /// Creates a subnet of `vpc` in `zone`, tagged at creation.
    pub async fn create_subnet(
        &self,
        vpc: &VpcId,
        cidr: &Cidr,
        zone: &ZoneId,
        tags: &Tags,
    ) -> Result<Subnet, AwsError> {
        let mut p = Params::new("CreateSubnet");
        p.set("VpcId", vpc)
            .set("CidrBlock", cidr)
            .set("AvailabilityZone", zone);
        p.tag_specs(&[TagTarget::Subnet], tags);
        Ok(self.call::<CreateSubnetResponse>(&p).await?.subnet)
    }

    pub async fn describe_subnets(
        &self,
        ids: &[SubnetId],
        filters: &[Filter],
    ) -> Result<Vec<Subnet>, AwsError> {
        let mut p = Params::new("DescribeSubnets");
        p.list("SubnetId", ids).filters(filters);
        let max = (!Ec2::names_ids(&p, "SubnetId")).then_some(1000);
        self.call_paged::<DescribeSubnetsResponse>(p, max).await
    }

    pub async fn delete_subnet(&self, id: &SubnetId) -> Result<(), AwsError> {
        let mut p = Params::new("DeleteSubnet");
        p.set("SubnetId", id);
        let ack = self.call(&p).await?;
        acknowledged(self, "DeleteSubnet", ack)
    }

    /// Creates a security group in `vpc`, tagged at creation. It starts with no ingress rules.
    pub async fn create_security_group(
        &self,
        vpc: &VpcId,
        name: &str,
        description: &str,
        tags: &Tags,
    ) -> Result<SecurityGroupId, AwsError> {
        let mut p = Params::new("CreateSecurityGroup");
        p.set("VpcId", vpc)
            .set("GroupName", name)
            .set("GroupDescription", description);
        p.tag_specs(&[TagTarget::SecurityGroup], tags);
        Ok(self.call::<CreateSecurityGroupResponse>(&p).await?.id)
    }

    /// Adds ingress rules to `group`. A rule that already exists (`InvalidPermission.Duplicate`)
    /// counts as added, so re-applying the same rules converges.
    pub async fn authorize_ingress(
        &self,
        group: &SecurityGroupId,
        rules: &[IngressRule],
    ) -> Result<(), AwsError> {
        let mut p = Params::new("AuthorizeSecurityGroupIngress");
        p.set("GroupId", group).ip_permissions(rules, true);
        match self.call::<Acknowledged>(&p).await {
            Ok(ack) => acknowledged(self, "AuthorizeSecurityGroupIngress", ack),
            Err(e) if e.code == "InvalidPermission.Duplicate" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes ingress rules from `group` (matched on protocol, ports and source; descriptions
    /// are not part of a rule's identity). `InvalidPermission.NotFound` when one is absent.
    pub async fn revoke_ingress(
        &self,
        group: &SecurityGroupId,
        rules: &[IngressRule],
    ) -> Result<(), AwsError> {
        let mut p = Params::new("RevokeSecurityGroupIngress");
        p.set("GroupId", group).ip_permissions(rules, false);
        let ack = self.call(&p).await?;
        acknowledged(self, "RevokeSecurityGroupIngress", ack)
    }

    pub async fn describe_security_groups(
        &self,
        ids: &[SecurityGroupId],
        filters: &[Filter],
    ) -> Result<Vec<SecurityGroup>, AwsError> {
        let mut p = Params::new("DescribeSecurityGroups");
        p.list("GroupId", ids).filters(filters);
        let max = (!Ec2::names_ids(&p, "GroupId")).then_some(1000);
        self.call_paged::<DescribeSecurityGroupsResponse>(p, max)
            .await
    }

    pub async fn delete_security_group(&self, id: &SecurityGroupId) -> Result<(), AwsError> {
        let mut p = Params::new("DeleteSecurityGroup");
        p.set("GroupId", id);
        let ack = self.call(&p).await?;
        acknowledged(self, "DeleteSecurityGroup", ack)
    }
}
