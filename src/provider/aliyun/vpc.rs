//! Typed VPC actions (version `2016-04-28`), with pagination handled here
//! (aliyun-api.md §3.4). VPCs and vSwitches are created `Pending` and become `Available`
//! asynchronously; callers poll `describe_vpcs` / `describe_vswitches` for the status.

use serde::Deserialize;

use super::client::{Client, Params};
use super::ecs::list_tags;
use super::endpoint::Api;
use super::error::{AliyunError, local_codes};
use super::types::wrap;
use super::{Tag, TagResource, VSwitchInfo, VpcInfo};
use crate::spec::RegionId;

/// `CreateVpc`.
#[derive(Debug, Clone, Default)]
pub struct CreateVpcRequest {
    pub cidr_block: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    /// Without one the service uses the request id, so retries are not idempotent.
    pub client_token: Option<String>,
}

/// `CreateVpc` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreatedVpc {
    pub vpc_id: String,
    #[serde(rename = "VRouterId", default)]
    pub vrouter_id: String,
    #[serde(default)]
    pub route_table_id: String,
}

/// `DescribeVpcs` filters.
#[derive(Debug, Clone, Default)]
pub struct VpcQuery {
    /// Any number; sent 20 per call (a comma list on the wire).
    pub ids: Vec<String>,
    pub name: Option<String>,
    pub tags: Vec<Tag>,
}

/// `CreateVSwitch`.
#[derive(Debug, Clone, Default)]
pub struct CreateVSwitchRequest {
    pub vpc_id: String,
    pub zone_id: String,
    pub cidr_block: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

/// `DescribeVSwitches` filters.
#[derive(Debug, Clone, Default)]
pub struct VSwitchQuery {
    pub vpc_id: Option<String>,
    pub vswitch_id: Option<String>,
    pub zone_id: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<Tag>,
}

/// Resource types of VPC tagging (uppercase on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcResourceType {
    Vpc,
    VSwitch,
}

impl VpcResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            VpcResourceType::Vpc => "VPC",
            VpcResourceType::VSwitch => "VSWITCH",
        }
    }
}

#[derive(Deserialize)]
struct Empty {}

/// Most VPC ids in one `DescribeVpcs` call.
const MAX_VPC_IDS: usize = 20;

impl Client {
    fn vpc<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        region: &RegionId,
        params: Params,
    ) -> impl Future<Output = Result<T, AliyunError>> {
        self.call(Api::Vpc, action, Some(region), params)
    }

    pub async fn create_vpc(
        &self,
        region: &RegionId,
        req: &CreateVpcRequest,
    ) -> Result<CreatedVpc, AliyunError> {
        if req.tags.len() > 20 {
            return Err(AliyunError::local(
                "CreateVpc",
                Some(region.clone()),
                local_codes::INVALID_REQUEST,
                format!("{} tags given; a call takes at most 20", req.tags.len()),
            ));
        }
        let p = Params::new()
            .set("CidrBlock", &req.cidr_block)
            .set("VpcName", &req.name)
            .opt("Description", req.description.as_ref())
            .opt("ClientToken", req.client_token.as_ref())
            .tags(&req.tags);
        self.vpc("CreateVpc", region, p).await
    }

    /// VPCs matching `query`, all pages (`PageNumber` style, 50 per page).
    pub async fn describe_vpcs(
        &self,
        region: &RegionId,
        query: &VpcQuery,
    ) -> Result<Vec<VpcInfo>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::vpc", default)]
            vpcs: Vec<VpcInfo>,
            #[serde(default)]
            total_count: usize,
        }
        let batches: Vec<&[String]> = if query.ids.is_empty() {
            vec![&[]]
        } else {
            query.ids.chunks(MAX_VPC_IDS).collect()
        };
        let mut out = Vec::new();
        for ids in batches {
            let mut seen = 0;
            for page in 1.. {
                let p = Params::new()
                    .non_empty("VpcId", &ids.join(","))
                    .opt("VpcName", query.name.as_ref())
                    .tags(&query.tags)
                    .set("PageNumber", page)
                    .set("PageSize", 50);
                let r: R = self.vpc("DescribeVpcs", region, p).await?;
                let got = r.vpcs.len();
                seen += got;
                out.extend(r.vpcs);
                if got == 0 || seen >= r.total_count {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub async fn delete_vpc(&self, region: &RegionId, vpc_id: &str) -> Result<(), AliyunError> {
        let _: Empty = self
            .vpc("DeleteVpc", region, Params::new().set("VpcId", vpc_id))
            .await?;
        Ok(())
    }

    pub async fn create_vswitch(
        &self,
        region: &RegionId,
        req: &CreateVSwitchRequest,
    ) -> Result<String, AliyunError> {
        #[derive(Deserialize)]
        struct R {
            #[serde(rename = "VSwitchId")]
            vswitch_id: String,
        }
        let p = Params::new()
            .set("VpcId", &req.vpc_id)
            .set("ZoneId", &req.zone_id)
            .set("CidrBlock", &req.cidr_block)
            .set("VSwitchName", &req.name)
            .opt("Description", req.description.as_ref())
            .opt("ClientToken", req.client_token.as_ref())
            .tags(&req.tags);
        let r: R = self.vpc("CreateVSwitch", region, p).await?;
        Ok(r.vswitch_id)
    }

    /// vSwitches matching `query`, all pages (`PageNumber` style, 50 per page).
    pub async fn describe_vswitches(
        &self,
        region: &RegionId,
        query: &VSwitchQuery,
    ) -> Result<Vec<VSwitchInfo>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(rename = "VSwitches", deserialize_with = "wrap::vswitch", default)]
            vswitches: Vec<VSwitchInfo>,
            #[serde(default)]
            total_count: usize,
        }
        let mut out = Vec::new();
        for page in 1.. {
            let p = Params::new()
                .opt("VpcId", query.vpc_id.as_ref())
                .opt("VSwitchId", query.vswitch_id.as_ref())
                .opt("ZoneId", query.zone_id.as_ref())
                .opt("VSwitchName", query.name.as_ref())
                .tags(&query.tags)
                .set("PageNumber", page)
                .set("PageSize", 50);
            let r: R = self.vpc("DescribeVSwitches", region, p).await?;
            let got = r.vswitches.len();
            out.extend(r.vswitches);
            if got == 0 || out.len() >= r.total_count {
                break;
            }
        }
        Ok(out)
    }

    pub async fn delete_vswitch(
        &self,
        region: &RegionId,
        vswitch_id: &str,
    ) -> Result<(), AliyunError> {
        let _: Empty = self
            .vpc(
                "DeleteVSwitch",
                region,
                Params::new().set("VSwitchId", vswitch_id),
            )
            .await?;
        Ok(())
    }

    /// (resource, tag) rows of VPC resources of one type, by ids (50 per call) and/or tags.
    pub async fn list_vpc_tag_resources(
        &self,
        region: &RegionId,
        resource_type: VpcResourceType,
        ids: &[String],
        tags: &[Tag],
    ) -> Result<Vec<TagResource>, AliyunError> {
        list_tags(self, Api::Vpc, region, resource_type.as_str(), ids, tags).await
    }
}
