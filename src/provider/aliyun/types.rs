//! Typed requests and answers of the Aliyun actions cfxm uses, shared by the client and the
//! emulator. Field names follow the wire (aliyun-api.md §3); list wrappers such as
//! `Instances.Instance[]` are flattened into `Vec`s when decoding.

use serde::{Deserialize, Deserializer, Serialize};

/// A resource tag. Requests send `Tag.N.Key/Value`; answers use `TagKey/TagValue` (ECS) or
/// `Key/Value` (VPC), and this type reads both.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key", alias = "TagKey")]
    pub key: String,
    #[serde(rename = "Value", alias = "TagValue", default)]
    pub value: String,
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Reads `{"<Inner>": [..]}` (or a missing/`null` wrapper) as a `Vec`.
macro_rules! wrapper {
    ($fn_name:ident, $inner:literal) => {
        pub(crate) fn $fn_name<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
        where
            D: Deserializer<'de>,
            T: Deserialize<'de>,
        {
            #[derive(Deserialize)]
            struct W<T> {
                #[serde(rename = $inner, default = "Vec::new")]
                items: Vec<T>,
            }
            Ok(Option::<W<T>>::deserialize(d)?
                .map(|w| w.items)
                .unwrap_or_default())
        }
    };
}

pub(crate) mod wrap {
    use super::*;
    wrapper!(tag, "Tag");
    wrapper!(region, "Region");
    wrapper!(zone, "Zone");
    wrapper!(instance_types, "InstanceTypes");
    wrapper!(instance_type, "InstanceType");
    wrapper!(disk_categories, "DiskCategories");
    wrapper!(resource_types, "ResourceTypes");
    wrapper!(available_zone, "AvailableZone");
    wrapper!(available_resource, "AvailableResource");
    wrapper!(supported_resource, "SupportedResource");
    wrapper!(image, "Image");
    wrapper!(security_group, "SecurityGroup");
    wrapper!(permission, "Permission");
    wrapper!(key_pair, "KeyPair");
    wrapper!(instance_id_set, "InstanceIdSet");
    wrapper!(instance, "Instance");
    wrapper!(ip_address, "IpAddress");
    wrapper!(security_group_id, "SecurityGroupId");
    wrapper!(instance_status, "InstanceStatus");
    wrapper!(tag_resource, "TagResource");
    wrapper!(vpc, "Vpc");
    wrapper!(vswitch, "VSwitch");
    wrapper!(vswitch_id, "VSwitchId");
}

/// `DescribeRegions` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegionInfo {
    pub region_id: String,
    #[serde(default)]
    pub local_name: String,
    #[serde(default)]
    pub region_endpoint: String,
    #[serde(default)]
    pub status: String,
}

/// `DescribeZones` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ZoneInfo {
    pub zone_id: String,
    #[serde(default)]
    pub local_name: String,
    #[serde(default, deserialize_with = "wrap::instance_types")]
    pub available_instance_types: Vec<String>,
    #[serde(default, deserialize_with = "wrap::disk_categories")]
    pub available_disk_categories: Vec<String>,
    #[serde(default, deserialize_with = "wrap::resource_types")]
    pub available_resource_creation: Vec<String>,
}

/// Stock of one resource value in one zone (`DescribeAvailableResource`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SupportedResource {
    pub value: String,
    /// `Available` or `SoldOut`.
    #[serde(default)]
    pub status: String,
    /// `WithStock`, `ClosedWithStock`, `WithoutStock` or `ClosedWithoutStock`.
    #[serde(default)]
    pub status_category: String,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    #[serde(default)]
    pub unit: Option<String>,
}

impl SupportedResource {
    /// Worth placing on: `WithStock` (or `ClosedWithStock`, low but present).
    pub fn has_stock(&self) -> bool {
        matches!(
            self.status_category.as_str(),
            "WithStock" | "ClosedWithStock"
        )
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AvailableResource {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(default, deserialize_with = "wrap::supported_resource")]
    pub supported_resources: Vec<SupportedResource>,
}

/// One zone of a `DescribeAvailableResource` answer.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AvailableZone {
    pub zone_id: String,
    #[serde(default)]
    pub region_id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub status_category: String,
    #[serde(default, deserialize_with = "wrap::available_resource")]
    pub available_resources: Vec<AvailableResource>,
}

/// `DescribeInstanceTypes` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceTypeInfo {
    pub instance_type_id: String,
    #[serde(default)]
    pub instance_type_family: String,
    #[serde(default)]
    pub cpu_core_count: u32,
    /// GiB.
    #[serde(default)]
    pub memory_size: f64,
    #[serde(default)]
    pub cpu_architecture: String,
}

/// `DescribeImages` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInfo {
    pub image_id: String,
    #[serde(default)]
    pub image_name: String,
    /// `system`, `self`, `others` or `marketplace`.
    #[serde(default)]
    pub image_owner_alias: String,
    /// `Creating`, `Waiting`, `Available`, `UnAvailable`, `CreateFailed`, `Deprecated`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub progress: String,
    #[serde(default)]
    pub size: u32,
    #[serde(rename = "OSType", default)]
    pub os_type: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "wrap::tag")]
    pub tags: Vec<Tag>,
}

/// `DescribeSecurityGroups` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroupInfo {
    pub security_group_id: String,
    #[serde(default)]
    pub security_group_name: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub security_group_type: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default)]
    pub rule_count: u32,
    #[serde(default, deserialize_with = "wrap::tag")]
    pub tags: Vec<Tag>,
}

/// An ingress rule (`AuthorizeSecurityGroup` `Permissions.N.*`, and the rows of
/// `DescribeSecurityGroupAttribute`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Permission {
    /// `TCP`, `UDP`, `ICMP`, `GRE` or `ALL` (answers may use lowercase).
    pub ip_protocol: String,
    /// `22/22`, `1024/49151`, `-1/-1`.
    pub port_range: String,
    #[serde(default)]
    pub source_cidr_ip: String,
    /// `accept` or `drop`.
    #[serde(default)]
    pub policy: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub description: String,
}

impl Permission {
    /// Accept TCP `from..=to` from `cidr`, priority 1.
    pub fn tcp(from: u16, to: u16, cidr: &str) -> Self {
        Self {
            ip_protocol: "TCP".into(),
            port_range: format!("{from}/{to}"),
            source_cidr_ip: cidr.into(),
            policy: "accept".into(),
            priority: "1".into(),
            description: String::new(),
        }
    }
}

/// `DescribeSecurityGroupAttribute`: a group with its ingress rules.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecurityGroupAttribute {
    pub security_group_id: String,
    #[serde(default)]
    pub security_group_name: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "wrap::permission")]
    pub permissions: Vec<Permission>,
}

/// A key pair (`ImportKeyPair`, `DescribeKeyPairs`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyPairInfo {
    pub key_pair_name: String,
    /// Lowercase hex MD5 of the public key blob, no colons.
    #[serde(default)]
    pub key_pair_finger_print: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "wrap::tag")]
    pub tags: Vec<Tag>,
}

/// The life-cycle states of an ECS instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum InstanceStatus {
    Pending,
    Starting,
    Running,
    Stopping,
    Stopped,
    /// Anything else the service may add.
    #[serde(other)]
    Unknown,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Pending => "Pending",
            InstanceStatus::Starting => "Starting",
            InstanceStatus::Running => "Running",
            InstanceStatus::Stopping => "Stopping",
            InstanceStatus::Stopped => "Stopped",
            InstanceStatus::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EipAddress {
    #[serde(default)]
    pub ip_address: String,
    #[serde(default)]
    pub allocation_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcAttributes {
    #[serde(default)]
    pub vpc_id: String,
    #[serde(rename = "VSwitchId", default)]
    pub vswitch_id: String,
    #[serde(default, deserialize_with = "wrap::ip_address")]
    pub private_ip_address: Vec<String>,
}

/// `DescribeInstances` row (the fields cfxm uses out of about sixty).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceInfo {
    pub instance_id: String,
    #[serde(default)]
    pub instance_name: String,
    #[serde(default)]
    pub host_name: String,
    pub status: InstanceStatus,
    #[serde(default)]
    pub region_id: String,
    #[serde(default)]
    pub zone_id: String,
    #[serde(default)]
    pub instance_type: String,
    #[serde(default)]
    pub cpu: u32,
    /// MiB.
    #[serde(default)]
    pub memory: u64,
    #[serde(default)]
    pub image_id: String,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default)]
    pub key_pair_name: String,
    #[serde(default)]
    pub internet_max_bandwidth_out: u32,
    #[serde(default)]
    pub instance_charge_type: String,
    #[serde(default)]
    pub spot_strategy: String,
    #[serde(default, deserialize_with = "wrap::ip_address")]
    pub public_ip_address: Vec<String>,
    #[serde(default)]
    pub eip_address: EipAddress,
    #[serde(default)]
    pub vpc_attributes: VpcAttributes,
    #[serde(default, deserialize_with = "wrap::security_group_id")]
    pub security_group_ids: Vec<String>,
    #[serde(default, deserialize_with = "wrap::tag")]
    pub tags: Vec<Tag>,
}

impl InstanceInfo {
    /// The public address: the first `PublicIpAddress`, else the EIP.
    pub fn public_ip(&self) -> Option<&str> {
        self.public_ip_address
            .first()
            .map(String::as_str)
            .or(Some(self.eip_address.ip_address.as_str()).filter(|s| !s.is_empty()))
    }
    /// The VPC address.
    pub fn private_ip(&self) -> Option<&str> {
        self.vpc_attributes
            .private_ip_address
            .first()
            .map(String::as_str)
    }
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

/// `DescribeInstanceStatus` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceStatusInfo {
    pub instance_id: String,
    pub status: InstanceStatus,
}

/// One (resource, tag) row of `ListTagResources`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResource {
    pub resource_id: String,
    #[serde(default)]
    pub resource_type: String,
    pub tag_key: String,
    #[serde(default)]
    pub tag_value: String,
}

/// `DescribeVpcs` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcInfo {
    pub vpc_id: String,
    #[serde(default)]
    pub vpc_name: String,
    #[serde(default)]
    pub cidr_block: String,
    /// `Pending` or `Available`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub region_id: String,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "VRouterId", default)]
    pub vrouter_id: String,
    #[serde(rename = "VSwitchIds", default, deserialize_with = "wrap::vswitch_id")]
    pub vswitch_ids: Vec<String>,
    #[serde(default, deserialize_with = "wrap::tag")]
    pub tags: Vec<Tag>,
}

/// `DescribeVSwitches` row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VSwitchInfo {
    #[serde(rename = "VSwitchId")]
    pub vswitch_id: String,
    #[serde(default)]
    pub vpc_id: String,
    #[serde(default)]
    pub zone_id: String,
    #[serde(default)]
    pub cidr_block: String,
    /// `Pending` or `Available`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub available_ip_address_count: u64,
    #[serde(rename = "VSwitchName", default)]
    pub vswitch_name: String,
    #[serde(default)]
    pub is_default: bool,
    #[serde(default)]
    pub creation_time: String,
    #[serde(default, deserialize_with = "wrap::tag")]
    pub tags: Vec<Tag>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_both_wire_shapes() {
        let ecs: Tag = serde_json::from_str(r#"{"TagKey":"k","TagValue":"v"}"#).unwrap();
        let vpc: Tag = serde_json::from_str(r#"{"Key":"k","Value":"v"}"#).unwrap();
        assert_eq!(ecs, vpc);
    }

    #[test]
    fn wrappers_flatten_and_tolerate_absence() {
        let i: InstanceInfo = serde_json::from_str(
            r#"{"InstanceId":"i-1","Status":"Running",
                "PublicIpAddress":{"IpAddress":["1.2.3.4"]},
                "VpcAttributes":{"PrivateIpAddress":{"IpAddress":["10.0.0.5"]}},
                "Tags":{"Tag":[{"TagKey":"user","TagValue":"alice"}]}}"#,
        )
        .unwrap();
        assert_eq!(i.public_ip(), Some("1.2.3.4"));
        assert_eq!(i.private_ip(), Some("10.0.0.5"));
        assert_eq!(i.tag("user"), Some("alice"));
        let bare: InstanceInfo =
            serde_json::from_str(r#"{"InstanceId":"i-2","Status":"Rebooting","Tags":null}"#)
                .unwrap();
        assert_eq!(bare.status, InstanceStatus::Unknown);
        assert!(bare.tags.is_empty() && bare.public_ip().is_none());
    }
}
