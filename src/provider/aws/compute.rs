//! Compute actions: regions, zones, instance-type offerings, images, key pairs and instances.
//!
//! moto gaps (aliyun-api.md §6.2) and how this layer meets them:
//! - terminated instances stay listed: [`Ec2::describe_instances`] asks for every state but
//!   `terminated` (server-side `instance-state-name` filter) and drops any that still come back,
//!   unless [`InstanceQuery::include_terminated`] is set;
//! - RunInstances creates `MinCount` instances and ignores `MaxCount`: callers must treat a
//!   launch that returned fewer than `count` instances as a partial success (AWS does the same
//!   when capacity runs short between `MinCount` and `MaxCount`) and launch the shortfall again;
//!   `min_count == count` (all or nothing, the original tool's way) is exact on both;
//! - `ClientToken` is not idempotent on moto (same token → new instances); on AWS it is. The
//!   token is always sent; only the reconciler's re-discovery by tags protects moto runs;
//! - instances are `running` at once on moto; real ones pass through `pending`, which
//!   [`InstanceStateName`] models, so callers must poll.

use base64::Engine;
use serde::Deserialize;

use super::client::{Ec2, Page, Params};
use super::error::AwsError;
use super::types::{
    ClientToken, Filter, ImageId, InstanceId, KeyName, KeyPairId, SecurityGroupId, SubnetId,
    TagTarget, Tags, VpcId, items, tag_set,
};
use crate::provider::ErrorClass;
use crate::spec::{AwsSettings, InstanceType, RegionId, ZoneId};

/// Most ids one DescribeInstances / TerminateInstances call names (AWS's documented limit).
const IDS_PER_CALL: usize = 1000;

#[derive(Debug, Clone, Deserialize)]
pub struct Region {
    #[serde(rename = "regionName")]
    pub name: RegionId,
    #[serde(rename = "regionEndpoint", default)]
    pub endpoint: String,
    /// `opt-in-not-required`, `opted-in` or `not-opted-in`.
    #[serde(rename = "optInStatus", default)]
    pub opt_in_status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AvailabilityZone {
    #[serde(rename = "zoneName")]
    pub name: ZoneId,
    /// The account-independent id, e.g. `use1-az6` (the original's "blocked" Bahrain zone was
    /// `mes1-az2`).
    #[serde(rename = "zoneId", default)]
    pub zone_id: String,
    /// `available`, `information`, `impaired` or `unavailable`.
    #[serde(rename = "zoneState", default)]
    pub state: String,
    #[serde(rename = "regionName", default)]
    pub region: String,
    /// `availability-zone`, `local-zone` or `wavelength-zone`.
    #[serde(rename = "zoneType", default)]
    pub zone_type: Option<String>,
}

impl AvailabilityZone {
    /// Usable for hosts: state `available` and a plain availability zone (the original keeps
    /// only `available` zones).
    pub fn is_usable(&self) -> bool {
        self.state == "available"
            && self
                .zone_type
                .as_deref()
                .is_none_or(|t| t == "availability-zone")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct InstanceTypeOffering {
    #[serde(rename = "instanceType")]
    pub instance_type: InstanceType,
    #[serde(rename = "locationType", default)]
    pub location_type: String,
    /// A zone name when the location type is `availability-zone`.
    pub location: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Image {
    #[serde(rename = "imageId")]
    pub id: ImageId,
    pub name: Option<String>,
    /// `available`, `pending`, `failed`, …
    #[serde(rename = "imageState", default)]
    pub state: String,
    #[serde(rename = "imageOwnerId", default)]
    pub owner_id: String,
    #[serde(rename = "creationDate", default)]
    pub creation_date: String,
    #[serde(default)]
    pub architecture: String,
    /// The root device (`/dev/sda1`, `/dev/xvda`): where the root volume's size and type go.
    #[serde(rename = "rootDeviceName")]
    pub root_device_name: Option<String>,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    pub tags: Tags,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyPair {
    #[serde(rename = "keyName")]
    pub name: KeyName,
    #[serde(rename = "keyPairId")]
    pub id: Option<KeyPairId>,
    #[serde(rename = "keyFingerprint", default)]
    pub fingerprint: String,
    /// The OpenSSH public key line, when asked for (`IncludePublicKey`).
    #[serde(rename = "publicKey")]
    pub public_key: Option<String>,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    pub tags: Tags,
}

/// An instance's lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum InstanceStateName {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
    Other(String),
}

impl From<String> for InstanceStateName {
    fn from(s: String) -> Self {
        match s.as_str() {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            _ => Self::Other(s),
        }
    }
}

impl InstanceStateName {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstanceState {
    #[serde(default)]
    pub code: u16,
    pub name: InstanceStateName,
}

#[derive(Debug, Clone, Deserialize)]
struct Placement {
    #[serde(rename = "availabilityZone")]
    zone: Option<ZoneId>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawInstance")]
pub struct Instance {
    pub id: InstanceId,
    pub image_id: Option<ImageId>,
    pub instance_type: InstanceType,
    pub state: InstanceState,
    pub zone: Option<ZoneId>,
    pub subnet_id: Option<SubnetId>,
    pub vpc_id: Option<VpcId>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub key_name: Option<KeyName>,
    pub launch_time: Option<String>,
    pub client_token: Option<String>,
    pub tags: Tags,
}

#[derive(Deserialize)]
struct RawInstance {
    #[serde(rename = "instanceId")]
    id: InstanceId,
    #[serde(rename = "imageId")]
    image_id: Option<ImageId>,
    #[serde(rename = "instanceType")]
    instance_type: InstanceType,
    #[serde(rename = "instanceState")]
    state: InstanceState,
    placement: Option<Placement>,
    #[serde(rename = "subnetId")]
    subnet_id: Option<SubnetId>,
    #[serde(rename = "vpcId")]
    vpc_id: Option<VpcId>,
    #[serde(rename = "privateIpAddress")]
    private_ip: Option<String>,
    #[serde(rename = "ipAddress")]
    public_ip: Option<String>,
    #[serde(rename = "keyName")]
    key_name: Option<KeyName>,
    #[serde(rename = "launchTime")]
    launch_time: Option<String>,
    #[serde(rename = "clientToken")]
    client_token: Option<String>,
    #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
    tags: Tags,
}

impl From<RawInstance> for Instance {
    fn from(r: RawInstance) -> Self {
        let blank = |s: Option<String>| s.filter(|s| !s.is_empty());
        Instance {
            id: r.id,
            image_id: r.image_id,
            instance_type: r.instance_type,
            state: r.state,
            zone: r.placement.and_then(|p| p.zone),
            subnet_id: r.subnet_id,
            vpc_id: r.vpc_id,
            private_ip: blank(r.private_ip),
            public_ip: blank(r.public_ip),
            key_name: r.key_name,
            launch_time: r.launch_time,
            client_token: blank(r.client_token),
            tags: r.tags,
        }
    }
}

/// What TerminateInstances reports for each instance.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceStateChange {
    #[serde(rename = "instanceId")]
    pub id: InstanceId,
    #[serde(rename = "currentState")]
    pub current: InstanceState,
    #[serde(rename = "previousState")]
    pub previous: InstanceState,
}

/// The root volume of launched instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootVolume {
    /// The image's root device name (see [`Image::root_device_name`]).
    pub device_name: String,
    pub size_gb: u32,
    /// `gp3`, `gp2`, `io1`, `io2`, …
    pub volume_type: String,
    /// Provisioned IOPS (`gp3`, `io1`, `io2` only).
    pub iops: Option<u32>,
    /// Throughput in MiB/s (`gp3` only).
    pub throughput_mbps: Option<u32>,
}

impl RootVolume {
    /// The spec's disk on `device_name`, sending IOPS and throughput only where the volume type
    /// accepts them (EC2 rejects them elsewhere).
    pub fn from_settings(device_name: &str, s: &AwsSettings) -> Self {
        let provisioned_iops = matches!(s.volume_type.as_str(), "gp3" | "io1" | "io2");
        RootVolume {
            device_name: device_name.to_string(),
            size_gb: s.disk_gb,
            volume_type: s.volume_type.clone(),
            iops: provisioned_iops.then_some(s.iops),
            throughput_mbps: (s.volume_type == "gp3").then_some(s.throughput_mbps),
        }
    }
}

/// One RunInstances call: `min_count..=count` instances of one type in one zone's subnet.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub image: ImageId,
    pub instance_type: InstanceType,
    pub zone: ZoneId,
    pub subnet: SubnetId,
    pub security_group: SecurityGroupId,
    pub key_name: KeyName,
    /// Most instances to launch (`MaxCount`).
    pub count: u32,
    /// Fewest acceptable (`MinCount`); below it AWS launches nothing and fails.
    pub min_count: u32,
    /// Idempotency token; reuse it when retrying the same launch.
    pub client_token: ClientToken,
    pub root_volume: RootVolume,
    /// A public IPv4 address on the primary network interface.
    pub public_ip: bool,
    pub spot: bool,
    /// Applied to the instances and their volumes by the call itself.
    pub tags: Tags,
}

/// Which instances [`Ec2::describe_instances`] lists.
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    pub ids: Vec<InstanceId>,
    pub filters: Vec<Filter>,
    /// List `terminated` instances too (they linger for about an hour on AWS, forever on moto).
    pub include_terminated: bool,
}

impl InstanceQuery {
    /// Instances carrying all of `tags`.
    pub fn tagged(tags: &Tags) -> Self {
        InstanceQuery {
            filters: Filter::tags(tags),
            ..Default::default()
        }
    }
}

// --- responses -------------------------------------------------------------------------------

#[derive(Deserialize)]
struct DescribeRegionsResponse {
    #[serde(rename = "regionInfo", default, deserialize_with = "items")]
    regions: Vec<Region>,
}

#[derive(Deserialize)]
struct DescribeAvailabilityZonesResponse {
    #[serde(rename = "availabilityZoneInfo", default, deserialize_with = "items")]
    zones: Vec<AvailabilityZone>,
}

#[derive(Deserialize)]
struct DescribeInstanceTypeOfferingsResponse {
    #[serde(
        rename = "instanceTypeOfferingSet",
        default,
        deserialize_with = "items"
    )]
    offerings: Vec<InstanceTypeOffering>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeInstanceTypeOfferingsResponse {
    type Item = InstanceTypeOffering;
    fn into_parts(self) -> (Vec<InstanceTypeOffering>, Option<String>) {
        (self.offerings, self.next_token)
    }
}

#[derive(Deserialize)]
struct DescribeImagesResponse {
    #[serde(rename = "imagesSet", default, deserialize_with = "items")]
    images: Vec<Image>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeImagesResponse {
    type Item = Image;
    fn into_parts(self) -> (Vec<Image>, Option<String>) {
        (self.images, self.next_token)
    }
}

#[derive(Deserialize)]
struct DescribeKeyPairsResponse {
    #[serde(rename = "keySet", default, deserialize_with = "items")]
    keys: Vec<KeyPair>,
}

#[derive(Deserialize)]
struct Reservation {
    #[serde(rename = "instancesSet", default, deserialize_with = "items")]
    instances: Vec<Instance>,
}

#[derive(Deserialize)]
struct DescribeInstancesResponse {
    #[serde(rename = "reservationSet", default, deserialize_with = "items")]
    reservations: Vec<Reservation>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeInstancesResponse {
    type Item = Instance;
    fn into_parts(self) -> (Vec<Instance>, Option<String>) {
        let instances = self
            .reservations
            .into_iter()
            .flat_map(|r| r.instances)
            .collect();
        (instances, self.next_token)
    }
}

#[derive(Deserialize)]
struct TerminateInstancesResponse {
    #[serde(rename = "instancesSet", default, deserialize_with = "items")]
    changes: Vec<InstanceStateChange>,
}

/// Every instance state but `terminated`.
const LIVE_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

impl Ec2 {
    /// The regions enabled for the account (`AllRegions=false`): where destroy must look.
    pub async fn describe_regions(&self) -> Result<Vec<Region>, AwsError> {
        self.call::<DescribeRegionsResponse>(&Params::new("DescribeRegions"))
            .await
            .map(|r| r.regions)
    }

    /// The zones of this handle's region (callers keep [`AvailabilityZone::is_usable`] ones).
    pub async fn describe_availability_zones(&self) -> Result<Vec<AvailabilityZone>, AwsError> {
        self.call::<DescribeAvailabilityZonesResponse>(&Params::new("DescribeAvailabilityZones"))
            .await
            .map(|r| r.zones)
    }

    /// Which zones offer which of `types` (all types when empty).
    pub async fn describe_instance_type_offerings(
        &self,
        types: &[InstanceType],
    ) -> Result<Vec<InstanceTypeOffering>, AwsError> {
        let mut p = Params::new("DescribeInstanceTypeOfferings");
        p.set("LocationType", "availability-zone");
        if !types.is_empty() {
            p.filters(&[Filter::new(
                "instance-type",
                types.iter().map(|t| t.as_str()),
            )]);
        }
        self.call_paged::<DescribeInstanceTypeOfferingsResponse>(p, Some(1000))
            .await
    }

    /// Images owned by any of `owners` (`self`, `amazon`, an account id) matching `filters`
    /// (e.g. `Filter::new("name", [image_name])`).
    pub async fn describe_images(
        &self,
        owners: &[&str],
        ids: &[ImageId],
        filters: &[Filter],
    ) -> Result<Vec<Image>, AwsError> {
        let mut p = Params::new("DescribeImages");
        p.list("Owner", owners)
            .list("ImageId", ids)
            .filters(filters);
        let max = (!Ec2::names_ids(&p, "ImageId")).then_some(1000);
        self.call_paged::<DescribeImagesResponse>(p, max).await
    }

    /// Imports an OpenSSH public key (`ssh-ed25519 AAAA… comment`) as key pair `name`, tagged
    /// at creation.
    pub async fn import_key_pair(
        &self,
        name: &KeyName,
        public_key_openssh: &str,
        tags: &Tags,
    ) -> Result<KeyPair, AwsError> {
        let mut p = Params::new("ImportKeyPair");
        p.set("KeyName", name).set(
            "PublicKeyMaterial",
            // A blob in the Query protocol: base64 of the key's text.
            base64::engine::general_purpose::STANDARD.encode(public_key_openssh.trim()),
        );
        p.tag_specs(&[TagTarget::KeyPair], tags);
        self.call(&p).await
    }

    /// Key pairs by name and/or filter; a name that does not exist fails with `NotFound`.
    pub async fn describe_key_pairs(
        &self,
        names: &[KeyName],
        filters: &[Filter],
    ) -> Result<Vec<KeyPair>, AwsError> {
        let mut p = Params::new("DescribeKeyPairs");
        p.list("KeyName", names).filters(filters);
        self.call::<DescribeKeyPairsResponse>(&p)
            .await
            .map(|r| r.keys)
    }

    /// Key pairs matching `filters`, each with its public key (`IncludePublicKey=true`), so a
    /// caller can compare keys rather than fingerprints (whose algorithm differs by key type,
    /// and between AWS and moto).
    pub async fn describe_key_pairs_with_keys(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<KeyPair>, AwsError> {
        let mut p = Params::new("DescribeKeyPairs");
        p.set("IncludePublicKey", true).filters(filters);
        self.call::<DescribeKeyPairsResponse>(&p)
            .await
            .map(|r| r.keys)
    }

    /// The key pair called `name`, or `None` (`InvalidKeyPair.NotFound` means absent, as in the
    /// original tool).
    pub async fn find_key_pair(&self, name: &KeyName) -> Result<Option<KeyPair>, AwsError> {
        match self
            .describe_key_pairs(std::slice::from_ref(name), &[])
            .await
        {
            Ok(keys) => Ok(keys.into_iter().find(|k| k.name == *name)),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_key_pair(&self, name: &KeyName) -> Result<(), AwsError> {
        let mut p = Params::new("DeleteKeyPair");
        p.set("KeyName", name);
        self.call::<super::types::Acknowledged>(&p).await.map(drop)
    }

    /// Launches instances as `req` says and returns those launched (possibly fewer than
    /// `req.count`; see the module notes). The instances and their volumes carry `req.tags` from
    /// the first moment.
    pub async fn run_instances(&self, req: &LaunchRequest) -> Result<Vec<Instance>, AwsError> {
        let mut p = Params::new("RunInstances");
        p.set("ImageId", &req.image)
            .set("InstanceType", &req.instance_type)
            .set("MinCount", req.min_count.clamp(1, req.count.max(1)))
            .set("MaxCount", req.count.max(1))
            .set("KeyName", &req.key_name)
            .set("ClientToken", &req.client_token)
            .set("Placement.AvailabilityZone", &req.zone);
        // The subnet and security group go on the primary interface: EC2 refuses them at the
        // top level once a network interface is given, and the interface is what carries
        // `AssociatePublicIpAddress` (the subnet need not auto-assign public IPs).
        p.set("NetworkInterface.1.DeviceIndex", 0)
            .set("NetworkInterface.1.SubnetId", &req.subnet)
            .set("NetworkInterface.1.SecurityGroupId.1", &req.security_group)
            .set("NetworkInterface.1.AssociatePublicIpAddress", req.public_ip)
            .set("NetworkInterface.1.DeleteOnTermination", true);
        let v = &req.root_volume;
        p.set("BlockDeviceMapping.1.DeviceName", &v.device_name)
            .set("BlockDeviceMapping.1.Ebs.VolumeSize", v.size_gb)
            .set("BlockDeviceMapping.1.Ebs.VolumeType", &v.volume_type)
            .set("BlockDeviceMapping.1.Ebs.DeleteOnTermination", true);
        if let Some(iops) = v.iops {
            p.set("BlockDeviceMapping.1.Ebs.Iops", iops);
        }
        if let Some(t) = v.throughput_mbps {
            p.set("BlockDeviceMapping.1.Ebs.Throughput", t);
        }
        if req.spot {
            p.set("InstanceMarketOptions.MarketType", "spot");
        }
        p.tag_specs(&[TagTarget::Instance, TagTarget::Volume], &req.tags);
        self.call::<Reservation>(&p).await.map(|r| r.instances)
    }

    /// Instances by id and/or filter, every page, without `terminated` ones unless asked.
    pub async fn describe_instances(&self, q: &InstanceQuery) -> Result<Vec<Instance>, AwsError> {
        let mut filters = q.filters.clone();
        if !q.include_terminated && !filters.iter().any(|f| f.name == "instance-state-name") {
            filters.push(Filter::new("instance-state-name", LIVE_STATES));
        }
        let mut out = Vec::new();
        // Ids go in chunks (AWS's limit per call); no ids means one paginated listing.
        let chunks: Vec<&[InstanceId]> = if q.ids.is_empty() {
            vec![&[]]
        } else {
            q.ids.chunks(IDS_PER_CALL).collect()
        };
        for ids in chunks {
            let mut p = Params::new("DescribeInstances");
            p.list("InstanceId", ids).filters(&filters);
            let max = ids.is_empty().then_some(1000);
            out.extend(self.call_paged::<DescribeInstancesResponse>(p, max).await?);
        }
        if !q.include_terminated {
            out.retain(|i| i.state.name != InstanceStateName::Terminated);
        }
        Ok(out)
    }

    /// Terminates `ids` (in chunks of 1,000) and returns each one's state change.
    pub async fn terminate_instances(
        &self,
        ids: &[InstanceId],
    ) -> Result<Vec<InstanceStateChange>, AwsError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let mut p = Params::new("TerminateInstances");
            p.list("InstanceId", chunk);
            out.extend(self.call::<TerminateInstancesResponse>(&p).await?.changes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Cidr, HostAccess, Network};

    fn settings(volume_type: &str) -> AwsSettings {
        AwsSettings {
            access: HostAccess {
                image: "img".into(),
                ssh_key: "k".into(),
                ssh_user: "ubuntu".into(),
            },
            network: Network {
                create: true,
                cidr: "10.0.0.0/16".parse::<Cidr>().unwrap(),
                ssh_from: vec![],
            },
            disk_gb: 250,
            volume_type: volume_type.into(),
            iops: 3000,
            throughput_mbps: 300,
            spot: false,
        }
    }

    #[test]
    fn root_volumes_send_iops_and_throughput_only_where_accepted() {
        let gp3 = RootVolume::from_settings("/dev/sda1", &settings("gp3"));
        assert_eq!(
            (gp3.iops, gp3.throughput_mbps, gp3.size_gb),
            (Some(3000), Some(300), 250)
        );
        let io2 = RootVolume::from_settings("/dev/sda1", &settings("io2"));
        assert_eq!((io2.iops, io2.throughput_mbps), (Some(3000), None));
        let gp2 = RootVolume::from_settings("/dev/xvda", &settings("gp2"));
        assert_eq!((gp2.iops, gp2.throughput_mbps), (None, None));
        assert_eq!(gp2.device_name, "/dev/xvda");
    }

    #[test]
    fn an_aws_describe_instances_page_parses() {
        // Shape from the EC2 API reference (DescribeInstances example), trimmed.
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
          <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
          <reservationSet><item>
            <reservationId>r-1234567890abcdef0</reservationId>
            <instancesSet><item>
              <instanceId>i-1234567890abcdef0</instanceId>
              <imageId>ami-bff32ccc</imageId>
              <instanceState><code>16</code><name>running</name></instanceState>
              <keyName>my_keypair</keyName>
              <instanceType>t2.micro</instanceType>
              <launchTime>2018-05-08T16:46:19.000Z</launchTime>
              <placement><availabilityZone>eu-west-1c</availabilityZone><tenancy>default</tenancy></placement>
              <subnetId>subnet-56f5f633</subnetId>
              <vpcId>vpc-11112222</vpcId>
              <privateIpAddress>192.168.1.88</privateIpAddress>
              <ipAddress>54.194.252.215</ipAddress>
              <clientToken/>
              <tagSet><item><key>user</key><value>alice</value></item></tagSet>
            </item></instancesSet>
          </item></reservationSet>
          <nextToken>next-page</nextToken>
        </DescribeInstancesResponse>"#;
        let page: DescribeInstancesResponse = quick_xml::de::from_str(xml).unwrap();
        let (instances, next) = page.into_parts();
        assert_eq!(next.as_deref(), Some("next-page"));
        let i = &instances[0];
        assert_eq!(i.id.as_str(), "i-1234567890abcdef0");
        assert_eq!(i.state.name, InstanceStateName::Running);
        assert_eq!(i.state.code, 16);
        assert_eq!(i.zone.as_ref().map(ZoneId::as_str), Some("eu-west-1c"));
        assert_eq!(i.public_ip.as_deref(), Some("54.194.252.215"));
        assert_eq!(i.client_token, None);
        assert_eq!(i.tags.get("user").map(String::as_str), Some("alice"));
        assert_eq!(
            InstanceStateName::from("rebooting".to_string()),
            InstanceStateName::Other("rebooting".into())
        );
    }
}
