//! Typed ECS actions (version `2014-05-26`), with pagination and batch limits handled here so
//! callers get whole answers (aliyun-api.md §3.2–§3.7).

use serde::Deserialize;

use super::client::{Client, Params};
use super::endpoint::Api;
use super::error::{AliyunError, local_codes};
use super::types::wrap;
use super::{
    AvailableZone, ImageInfo, InstanceInfo, InstanceStatusInfo, InstanceTypeInfo, KeyPairInfo,
    Permission, RegionInfo, SecurityGroupAttribute, SecurityGroupInfo, Tag, TagResource, ZoneInfo,
};
use crate::spec::RegionId;

/// Most ids one `DescribeInstances`, `DescribeInstanceStatus`, `DeleteInstances` or
/// `DeleteKeyPairs` call takes, and most instances one `RunInstances` creates.
pub const MAX_IDS_PER_CALL: usize = 100;
/// Most resources per `ListTagResources` / `TagResources` call.
pub const MAX_TAG_RESOURCES_PER_CALL: usize = 50;
/// Most tags per resource call.
pub const MAX_TAGS_PER_CALL: usize = 20;

fn invalid(action: &'static str, region: &RegionId, message: String) -> AliyunError {
    AliyunError::local(
        action,
        Some(region.clone()),
        local_codes::INVALID_REQUEST,
        message,
    )
}

fn check_tags(action: &'static str, region: &RegionId, tags: &[Tag]) -> Result<(), AliyunError> {
    if tags.len() > MAX_TAGS_PER_CALL {
        return Err(invalid(
            action,
            region,
            format!(
                "{} tags given; a call takes at most {MAX_TAGS_PER_CALL}",
                tags.len()
            ),
        ));
    }
    Ok(())
}

/// `DescribeAvailableResource` query.
#[derive(Debug, Clone)]
pub struct AvailableResourceQuery {
    /// `Zone`, `InstanceType`, `SystemDisk`, ...
    pub destination_resource: String,
    pub zone_id: Option<String>,
    pub instance_type: Option<String>,
    /// `PostPaid` (default) or `PrePaid`.
    pub instance_charge_type: Option<String>,
    pub spot_strategy: Option<String>,
}

impl AvailableResourceQuery {
    /// Stock of instance types, optionally of one type.
    pub fn instance_types(instance_type: Option<&str>) -> Self {
        Self {
            destination_resource: "InstanceType".into(),
            zone_id: None,
            instance_type: instance_type.map(str::to_string),
            instance_charge_type: None,
            spot_strategy: None,
        }
    }
}

/// `DescribeImages` filters.
#[derive(Debug, Clone, Default)]
pub struct ImageQuery {
    pub image_id: Option<String>,
    pub image_name: Option<String>,
    /// `system`, `self`, `others`, `marketplace`.
    pub owner_alias: Option<String>,
    pub status: Option<String>,
}

/// `CreateImage` from an instance.
#[derive(Debug, Clone, Default)]
pub struct CreateImageRequest {
    pub instance_id: String,
    pub image_name: String,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

/// `CopyImage` to another region.
#[derive(Debug, Clone, Default)]
pub struct CopyImageRequest {
    pub image_id: String,
    pub destination_region: String,
    pub destination_image_name: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

/// `CreateSecurityGroup`.
#[derive(Debug, Clone, Default)]
pub struct CreateSecurityGroupRequest {
    pub vpc_id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
    pub client_token: Option<String>,
}

/// `DescribeSecurityGroups` filters.
#[derive(Debug, Clone, Default)]
pub struct SecurityGroupQuery {
    pub vpc_id: Option<String>,
    pub ids: Vec<String>,
    pub name: Option<String>,
    pub tags: Vec<Tag>,
}

/// `DescribeKeyPairs` filters.
#[derive(Debug, Clone, Default)]
pub struct KeyPairQuery {
    /// Exact name, or a pattern with `*`.
    pub name: Option<String>,
    pub finger_print: Option<String>,
    pub tags: Vec<Tag>,
}

/// `RunInstances`.
#[derive(Debug, Clone, Default)]
pub struct RunInstancesRequest {
    pub zone_id: Option<String>,
    pub image_id: String,
    pub instance_type: String,
    pub security_group_id: String,
    pub vswitch_id: String,
    pub key_pair_name: Option<String>,
    pub instance_name: Option<String>,
    pub host_name: Option<String>,
    /// 1–100.
    pub amount: u32,
    /// With it the service creates `min(stock, amount)` when at least this many fit.
    pub min_amount: Option<u32>,
    /// Idempotency: the same token and parameters return the same instances.
    pub client_token: Option<String>,
    /// Applied atomically at creation (≤ 20).
    pub tags: Vec<Tag>,
    /// Above 0 allocates a public IP.
    pub internet_max_bandwidth_out: u32,
    pub internet_charge_type: Option<String>,
    pub system_disk_category: Option<String>,
    pub system_disk_size_gb: Option<u32>,
    pub instance_charge_type: Option<String>,
    /// `NoSpot`, `SpotAsPriceGo`, `SpotWithPriceLimit`.
    pub spot_strategy: Option<String>,
    pub user_data: Option<String>,
    pub dry_run: bool,
}

/// `RunInstances` answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunInstancesResponse {
    #[serde(
        rename = "InstanceIdSets",
        deserialize_with = "wrap::instance_id_set",
        default
    )]
    pub instance_ids: Vec<String>,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub trade_price: Option<f64>,
}

/// `DescribeInstances` filters (ANDed).
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    /// Any number; sent in batches of 100. Unknown ids are simply absent from the answer.
    pub ids: Vec<String>,
    /// A tag with an empty value matches any value of the key. The service shows at most
    /// 1,000 instances matched by a tag filter (silently; the emulator does the same): to
    /// enumerate more, list ids with [`Client::list_tag_resources`] and pass them as `ids`.
    pub tags: Vec<Tag>,
    pub vpc_id: Option<String>,
    pub vswitch_id: Option<String>,
    pub zone_id: Option<String>,
    pub security_group_id: Option<String>,
    pub status: Option<String>,
    pub instance_name: Option<String>,
    /// Page size (1–100, default 100): how many rows each underlying call asks for.
    pub page_size: Option<u32>,
}

/// Resource types of ECS tagging (lowercase on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsResourceType {
    Instance,
    Image,
    SecurityGroup,
    KeyPair,
    Disk,
}

impl EcsResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            EcsResourceType::Instance => "instance",
            EcsResourceType::Image => "image",
            EcsResourceType::SecurityGroup => "securitygroup",
            EcsResourceType::KeyPair => "keypair",
            EcsResourceType::Disk => "disk",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Empty {}

impl Client {
    fn ecs<T: serde::de::DeserializeOwned>(
        &self,
        action: &'static str,
        region: Option<&RegionId>,
        params: Params,
    ) -> impl Future<Output = Result<T, AliyunError>> {
        self.call(Api::Ecs, action, region, params)
    }

    /// Every region the account can use.
    pub async fn describe_regions(&self) -> Result<Vec<RegionInfo>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::region", default)]
            regions: Vec<RegionInfo>,
        }
        let r: R = self
            .ecs(
                "DescribeRegions",
                None,
                Params::new().set("AcceptLanguage", "en-US"),
            )
            .await?;
        Ok(r.regions)
    }

    /// The zones of a region; `verbose` adds the instance types and disk categories on sale.
    pub async fn describe_zones(
        &self,
        region: &RegionId,
        verbose: bool,
    ) -> Result<Vec<ZoneInfo>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::zone", default)]
            zones: Vec<ZoneInfo>,
        }
        let p = Params::new()
            .set("Verbose", verbose)
            .set("AcceptLanguage", "en-US");
        let r: R = self.ecs("DescribeZones", Some(region), p).await?;
        Ok(r.zones)
    }

    /// The stock oracle: what can be created where, right now (a hint; RunInstances decides).
    pub async fn describe_available_resource(
        &self,
        region: &RegionId,
        query: &AvailableResourceQuery,
    ) -> Result<Vec<AvailableZone>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::available_zone", default)]
            available_zones: Vec<AvailableZone>,
        }
        let p = Params::new()
            .set("DestinationResource", &query.destination_resource)
            .opt("ZoneId", query.zone_id.as_ref())
            .opt("InstanceType", query.instance_type.as_ref())
            .opt("InstanceChargeType", query.instance_charge_type.as_ref())
            .opt("SpotStrategy", query.spot_strategy.as_ref());
        let r: R = self
            .ecs("DescribeAvailableResource", Some(region), p)
            .await?;
        Ok(r.available_zones)
    }

    /// Instance type specs; all types when `types` is empty, else those named (any number,
    /// sent 10 per call as the API allows).
    pub async fn describe_instance_types(
        &self,
        types: &[String],
    ) -> Result<Vec<InstanceTypeInfo>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::instance_type", default)]
            instance_types: Vec<InstanceTypeInfo>,
            #[serde(default)]
            next_token: String,
        }
        let batches: Vec<&[String]> = if types.is_empty() {
            vec![&[]]
        } else {
            types.chunks(10).collect()
        };
        let mut out = Vec::new();
        for batch in batches {
            let mut token = String::new();
            loop {
                let p = Params::new()
                    .list("InstanceTypes", batch)
                    .set("MaxResults", 1600)
                    .non_empty("NextToken", &token);
                let r: R = self.ecs("DescribeInstanceTypes", None, p).await?;
                out.extend(r.instance_types);
                if r.next_token.is_empty() {
                    break;
                }
                token = r.next_token;
            }
        }
        Ok(out)
    }

    /// Images matching `query`, all pages.
    pub async fn describe_images(
        &self,
        region: &RegionId,
        query: &ImageQuery,
    ) -> Result<Vec<ImageInfo>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::image", default)]
            images: Vec<ImageInfo>,
            #[serde(default)]
            total_count: usize,
        }
        let mut out = Vec::new();
        for page in 1.. {
            let p = Params::new()
                .opt("ImageId", query.image_id.as_ref())
                .opt("ImageName", query.image_name.as_ref())
                .opt("ImageOwnerAlias", query.owner_alias.as_ref())
                .opt("Status", query.status.as_ref())
                .set("PageNumber", page)
                .set("PageSize", 100);
            let r: R = self.ecs("DescribeImages", Some(region), p).await?;
            let got = r.images.len();
            out.extend(r.images);
            if got == 0 || out.len() >= r.total_count {
                break;
            }
        }
        Ok(out)
    }

    /// Starts imaging an instance; the new image is `Creating` until `Available`.
    pub async fn create_image(
        &self,
        region: &RegionId,
        req: &CreateImageRequest,
    ) -> Result<String, AliyunError> {
        check_tags("CreateImage", region, &req.tags)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            image_id: String,
        }
        let p = Params::new()
            .set("InstanceId", &req.instance_id)
            .set("ImageName", &req.image_name)
            .opt("Description", req.description.as_ref())
            .opt("ClientToken", req.client_token.as_ref())
            .tags(&req.tags);
        let r: R = self.ecs("CreateImage", Some(region), p).await?;
        Ok(r.image_id)
    }

    /// Copies an image to another region; answers the new image's id in the destination.
    pub async fn copy_image(
        &self,
        region: &RegionId,
        req: &CopyImageRequest,
    ) -> Result<String, AliyunError> {
        check_tags("CopyImage", region, &req.tags)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            image_id: String,
        }
        let p = Params::new()
            .set("ImageId", &req.image_id)
            .set("DestinationRegionId", &req.destination_region)
            .opt("DestinationImageName", req.destination_image_name.as_ref())
            .opt("ClientToken", req.client_token.as_ref())
            .tags(&req.tags);
        let r: R = self.ecs("CopyImage", Some(region), p).await?;
        Ok(r.image_id)
    }

    /// Deletes an image (a missing one is not an error, as on the real service).
    pub async fn delete_image(
        &self,
        region: &RegionId,
        image_id: &str,
        force: bool,
    ) -> Result<(), AliyunError> {
        let p = Params::new().set("ImageId", image_id).set("Force", force);
        let _: Empty = self.ecs("DeleteImage", Some(region), p).await?;
        Ok(())
    }

    pub async fn create_security_group(
        &self,
        region: &RegionId,
        req: &CreateSecurityGroupRequest,
    ) -> Result<String, AliyunError> {
        check_tags("CreateSecurityGroup", region, &req.tags)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            security_group_id: String,
        }
        let p = Params::new()
            .set("VpcId", &req.vpc_id)
            .set("SecurityGroupName", &req.name)
            .opt("Description", req.description.as_ref())
            .opt("ClientToken", req.client_token.as_ref())
            .tags(&req.tags);
        let r: R = self.ecs("CreateSecurityGroup", Some(region), p).await?;
        Ok(r.security_group_id)
    }

    /// Adds ingress rules (any number; 100 per call). Re-adding an existing rule is a no-op.
    pub async fn authorize_security_group(
        &self,
        region: &RegionId,
        security_group_id: &str,
        rules: &[Permission],
    ) -> Result<(), AliyunError> {
        self.permissions(
            "AuthorizeSecurityGroup",
            region,
            security_group_id,
            rules,
            None,
        )
        .await
    }

    /// [`Client::authorize_security_group`] with a `ClientToken` (one batch of ≤ 100 rules:
    /// a token names one request).
    pub async fn authorize_security_group_with_token(
        &self,
        region: &RegionId,
        security_group_id: &str,
        rules: &[Permission],
        client_token: &str,
    ) -> Result<(), AliyunError> {
        if rules.len() > 100 {
            return Err(invalid(
                "AuthorizeSecurityGroup",
                region,
                format!(
                    "{} rules given; one call with a token takes at most 100",
                    rules.len()
                ),
            ));
        }
        self.permissions(
            "AuthorizeSecurityGroup",
            region,
            security_group_id,
            rules,
            Some(client_token),
        )
        .await
    }

    /// Removes ingress rules (any number; 100 per call), matched by protocol, ports, source
    /// and policy. Rules that do not exist are ignored.
    pub async fn revoke_security_group(
        &self,
        region: &RegionId,
        security_group_id: &str,
        rules: &[Permission],
    ) -> Result<(), AliyunError> {
        self.permissions(
            "RevokeSecurityGroup",
            region,
            security_group_id,
            rules,
            None,
        )
        .await
    }

    async fn permissions(
        &self,
        action: &'static str,
        region: &RegionId,
        security_group_id: &str,
        rules: &[Permission],
        client_token: Option<&str>,
    ) -> Result<(), AliyunError> {
        for batch in rules.chunks(100) {
            let mut p = Params::new().set("SecurityGroupId", security_group_id);
            for (i, r) in batch.iter().enumerate() {
                let n = i + 1;
                p = p
                    .set(&format!("Permissions.{n}.IpProtocol"), &r.ip_protocol)
                    .set(&format!("Permissions.{n}.PortRange"), &r.port_range)
                    .non_empty(&format!("Permissions.{n}.SourceCidrIp"), &r.source_cidr_ip)
                    .non_empty(&format!("Permissions.{n}.Policy"), &r.policy)
                    .non_empty(&format!("Permissions.{n}.Priority"), &r.priority)
                    .non_empty(&format!("Permissions.{n}.Description"), &r.description);
            }
            let p = p.opt("ClientToken", client_token);
            let _: Empty = self.ecs(action, Some(region), p).await?;
        }
        Ok(())
    }

    /// Security groups matching `query`, all pages (ids sent 100 per call).
    pub async fn describe_security_groups(
        &self,
        region: &RegionId,
        query: &SecurityGroupQuery,
    ) -> Result<Vec<SecurityGroupInfo>, AliyunError> {
        check_tags("DescribeSecurityGroups", region, &query.tags)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::security_group", default)]
            security_groups: Vec<SecurityGroupInfo>,
            #[serde(default)]
            next_token: String,
        }
        let batches: Vec<&[String]> = if query.ids.is_empty() {
            vec![&[]]
        } else {
            query.ids.chunks(MAX_IDS_PER_CALL).collect()
        };
        let mut out = Vec::new();
        for ids in batches {
            let mut token = String::new();
            loop {
                let p = Params::new()
                    .opt("VpcId", query.vpc_id.as_ref())
                    .json_list("SecurityGroupIds", ids)
                    .opt("SecurityGroupName", query.name.as_ref())
                    .tags(&query.tags)
                    .set("MaxResults", 100)
                    .non_empty("NextToken", &token);
                let r: R = self.ecs("DescribeSecurityGroups", Some(region), p).await?;
                out.extend(r.security_groups);
                if r.next_token.is_empty() {
                    break;
                }
                token = r.next_token;
            }
        }
        Ok(out)
    }

    /// One group and its ingress rules.
    pub async fn describe_security_group_attribute(
        &self,
        region: &RegionId,
        security_group_id: &str,
    ) -> Result<SecurityGroupAttribute, AliyunError> {
        let p = Params::new()
            .set("SecurityGroupId", security_group_id)
            .set("Direction", "ingress");
        self.ecs("DescribeSecurityGroupAttribute", Some(region), p)
            .await
    }

    pub async fn delete_security_group(
        &self,
        region: &RegionId,
        security_group_id: &str,
    ) -> Result<(), AliyunError> {
        let p = Params::new().set("SecurityGroupId", security_group_id);
        let _: Empty = self.ecs("DeleteSecurityGroup", Some(region), p).await?;
        Ok(())
    }

    /// Imports an OpenSSH public key; answers the name and the service's MD5 fingerprint.
    pub async fn import_key_pair(
        &self,
        region: &RegionId,
        name: &str,
        public_key: &str,
        tags: &[Tag],
    ) -> Result<KeyPairInfo, AliyunError> {
        check_tags("ImportKeyPair", region, tags)?;
        let p = Params::new()
            .set("KeyPairName", name)
            .set("PublicKeyBody", public_key)
            .tags(tags);
        self.ecs("ImportKeyPair", Some(region), p).await
    }

    /// Key pairs matching `query`, all pages.
    pub async fn describe_key_pairs(
        &self,
        region: &RegionId,
        query: &KeyPairQuery,
    ) -> Result<Vec<KeyPairInfo>, AliyunError> {
        check_tags("DescribeKeyPairs", region, &query.tags)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::key_pair", default)]
            key_pairs: Vec<KeyPairInfo>,
            #[serde(default)]
            total_count: usize,
        }
        let mut out = Vec::new();
        for page in 1.. {
            let p = Params::new()
                .opt("KeyPairName", query.name.as_ref())
                .opt("KeyPairFingerPrint", query.finger_print.as_ref())
                .tags(&query.tags)
                .set("PageNumber", page)
                .set("PageSize", 50);
            let r: R = self.ecs("DescribeKeyPairs", Some(region), p).await?;
            let got = r.key_pairs.len();
            out.extend(r.key_pairs);
            if got == 0 || out.len() >= r.total_count {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes key pairs by name (any number; 100 per call).
    pub async fn delete_key_pairs(
        &self,
        region: &RegionId,
        names: &[String],
    ) -> Result<(), AliyunError> {
        for batch in names.chunks(MAX_IDS_PER_CALL) {
            let p = Params::new().json_list("KeyPairNames", batch);
            let _: Empty = self.ecs("DeleteKeyPairs", Some(region), p).await?;
        }
        Ok(())
    }

    /// Creates up to 100 instances in one call, tagged at creation.
    pub async fn run_instances(
        &self,
        region: &RegionId,
        req: &RunInstancesRequest,
    ) -> Result<RunInstancesResponse, AliyunError> {
        const ACTION: &str = "RunInstances";
        if req.amount == 0 || req.amount as usize > MAX_IDS_PER_CALL {
            return Err(invalid(
                ACTION,
                region,
                format!(
                    "`Amount` is {}; one call creates 1 to {MAX_IDS_PER_CALL}",
                    req.amount
                ),
            ));
        }
        if req.min_amount.is_some_and(|m| m == 0 || m > req.amount) {
            return Err(invalid(
                ACTION,
                region,
                format!(
                    "`MinAmount` must be between 1 and `Amount` ({})",
                    req.amount
                ),
            ));
        }
        check_tags(ACTION, region, &req.tags)?;
        let p = Params::new()
            .opt("ZoneId", req.zone_id.as_ref())
            .set("ImageId", &req.image_id)
            .set("InstanceType", &req.instance_type)
            .set("SecurityGroupId", &req.security_group_id)
            .set("VSwitchId", &req.vswitch_id)
            .opt("KeyPairName", req.key_pair_name.as_ref())
            .opt("InstanceName", req.instance_name.as_ref())
            .opt("HostName", req.host_name.as_ref())
            .set("Amount", req.amount)
            .opt("MinAmount", req.min_amount)
            .opt("ClientToken", req.client_token.as_ref())
            .tags(&req.tags)
            .set("InternetMaxBandwidthOut", req.internet_max_bandwidth_out)
            .opt("InternetChargeType", req.internet_charge_type.as_ref())
            .opt("SystemDisk.Category", req.system_disk_category.as_ref())
            .opt("SystemDisk.Size", req.system_disk_size_gb)
            .opt("InstanceChargeType", req.instance_charge_type.as_ref())
            .opt("SpotStrategy", req.spot_strategy.as_ref())
            .opt("UserData", req.user_data.as_ref())
            .opt("DryRun", req.dry_run.then_some(true));
        self.ecs(ACTION, Some(region), p).await
    }

    /// Instances matching `query`, all pages (`NextToken` style; ids sent 100 per call).
    pub async fn describe_instances(
        &self,
        region: &RegionId,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceInfo>, AliyunError> {
        check_tags("DescribeInstances", region, &query.tags)?;
        let page_size = query.page_size.unwrap_or(100).clamp(1, 100);
        let batches: Vec<&[String]> = if query.ids.is_empty() {
            vec![&[]]
        } else {
            query.ids.chunks(MAX_IDS_PER_CALL).collect()
        };
        let mut out = Vec::new();
        for ids in batches {
            let mut token = String::new();
            loop {
                let page = self
                    .describe_instances_page(region, query, ids, page_size, &token)
                    .await?;
                out.extend(page.instances);
                match page.next_token {
                    Some(t) => token = t,
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// One page of `DescribeInstances`, for callers (and benchmarks) that stream pages.
    pub async fn describe_instances_page(
        &self,
        region: &RegionId,
        query: &InstanceQuery,
        ids: &[String],
        page_size: u32,
        next_token: &str,
    ) -> Result<InstancePage, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::instance", default)]
            instances: Vec<InstanceInfo>,
            #[serde(default)]
            next_token: String,
        }
        let p = Params::new()
            .json_list("InstanceIds", ids)
            .tags(&query.tags)
            .opt("VpcId", query.vpc_id.as_ref())
            .opt("VSwitchId", query.vswitch_id.as_ref())
            .opt("ZoneId", query.zone_id.as_ref())
            .opt("SecurityGroupId", query.security_group_id.as_ref())
            .opt("Status", query.status.as_ref())
            .opt("InstanceName", query.instance_name.as_ref())
            .set("MaxResults", page_size)
            .non_empty("NextToken", next_token);
        let r: R = self.ecs("DescribeInstances", Some(region), p).await?;
        Ok(InstancePage {
            instances: r.instances,
            next_token: Some(r.next_token).filter(|t| !t.is_empty()),
        })
    }

    /// Status of the given instances (any number; 100 ids per call, 50 rows per page).
    /// Unknown ids are absent from the answer.
    pub async fn describe_instance_status(
        &self,
        region: &RegionId,
        ids: &[String],
    ) -> Result<Vec<InstanceStatusInfo>, AliyunError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct R {
            #[serde(deserialize_with = "wrap::instance_status", default)]
            instance_statuses: Vec<InstanceStatusInfo>,
            #[serde(default)]
            total_count: usize,
        }
        let mut out = Vec::new();
        for batch in ids.chunks(MAX_IDS_PER_CALL) {
            let mut seen = 0;
            for page in 1.. {
                let p = Params::new()
                    .list("InstanceId", batch)
                    .set("PageNumber", page)
                    .set("PageSize", 50);
                let r: R = self.ecs("DescribeInstanceStatus", Some(region), p).await?;
                let got = r.instance_statuses.len();
                seen += got;
                out.extend(r.instance_statuses);
                if got == 0 || seen >= r.total_count {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Releases instances (any number; 100 per call). `force` releases running ones.
    pub async fn delete_instances(
        &self,
        region: &RegionId,
        ids: &[String],
        force: bool,
    ) -> Result<(), AliyunError> {
        for batch in ids.chunks(MAX_IDS_PER_CALL) {
            let p = Params::new().list("InstanceId", batch).set("Force", force);
            let _: Empty = self.ecs("DeleteInstances", Some(region), p).await?;
        }
        Ok(())
    }

    /// (resource, tag) rows of ECS resources of one type, by ids (50 per call) and/or tags.
    pub async fn list_tag_resources(
        &self,
        region: &RegionId,
        resource_type: EcsResourceType,
        ids: &[String],
        tags: &[Tag],
    ) -> Result<Vec<TagResource>, AliyunError> {
        list_tags(self, Api::Ecs, region, resource_type.as_str(), ids, tags).await
    }

    /// Adds tags to ECS resources (any number; 50 per call, ≤ 20 tags).
    pub async fn tag_resources(
        &self,
        region: &RegionId,
        resource_type: EcsResourceType,
        ids: &[String],
        tags: &[Tag],
    ) -> Result<(), AliyunError> {
        check_tags("TagResources", region, tags)?;
        for batch in ids.chunks(MAX_TAG_RESOURCES_PER_CALL) {
            let p = Params::new()
                .set("ResourceType", resource_type.as_str())
                .list("ResourceId", batch)
                .tags(tags);
            let _: Empty = self.ecs("TagResources", Some(region), p).await?;
        }
        Ok(())
    }
}

/// One page of instances and the token of the next (`None` at the end).
#[derive(Debug, Clone)]
pub struct InstancePage {
    pub instances: Vec<InstanceInfo>,
    pub next_token: Option<String>,
}

/// `ListTagResources` of either API: both page by `NextToken`; VPC also takes `MaxResults`.
pub(super) async fn list_tags(
    client: &Client,
    api: Api,
    region: &RegionId,
    resource_type: &str,
    ids: &[String],
    tags: &[Tag],
) -> Result<Vec<TagResource>, AliyunError> {
    check_tags("ListTagResources", region, tags)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct R {
        #[serde(deserialize_with = "wrap::tag_resource", default)]
        tag_resources: Vec<TagResource>,
        #[serde(default)]
        next_token: String,
    }
    let batches: Vec<&[String]> = if ids.is_empty() {
        vec![&[]]
    } else {
        ids.chunks(MAX_TAG_RESOURCES_PER_CALL).collect()
    };
    let mut out = Vec::new();
    for batch in batches {
        let mut token = String::new();
        loop {
            let mut p = Params::new()
                .set("ResourceType", resource_type)
                .list("ResourceId", batch)
                .tags(tags)
                .non_empty("NextToken", &token);
            if api == Api::Vpc {
                p = p.set("MaxResults", 50);
            }
            let r: R = client
                .call(api, "ListTagResources", Some(region), p)
                .await?;
            out.extend(r.tag_resources);
            if r.next_token.is_empty() {
                break;
            }
            token = r.next_token;
        }
    }
    Ok(out)
}
