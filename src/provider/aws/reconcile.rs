//! [`AwsProvider`]: the reconciler's [`Provider`] over the typed EC2 client ([`Ec2`]), so plan,
//! apply and destroy drive AWS exactly as they drive Aliyun, in the same graph.
//!
//! The mapping (original-tool.md §4.2): VPC → network; internet gateway, attached to the VPC
//! with the main route table's default route through it → gateway; subnet → subnet (one per
//! zone); security group → security group and its peer rules; imported key pair → key pair.
//! Every create call carries the spec's three tags (and a `Name`, for the console) in its
//! `TagSpecification`; every answer is checked against the tag scope again.
//!
//! What EC2 (and moto, aliyun-api.md §6.2) needs beyond Aliyun's provider:
//! - discovery: a region is first asked `DescribeTags` for anything of the owner; only a region
//!   that has some is read kind by kind (most of the ~30 regions an account has are empty, and
//!   destroy reads all of them);
//! - a gateway is the spec's only while attached to the spec's network with the default route
//!   through it; scan reports any other state so the plan repairs it (attach, route);
//! - key pairs are compared by key: `DescribeKeyPairs IncludePublicKey=true`, fingerprinted
//!   here ([`key_fingerprint`]), since EC2 and moto fingerprint ED25519 keys differently;
//! - launches: `MinCount = 1` takes what the zone has; moto launches `MinCount` only, so a
//!   partial answer is followed by one call for the rest, all or nothing (`MinCount =
//!   MaxCount`), which on AWS confirms the shortage and on moto completes the batch;
//! - a zone EC2 calls unavailable (the original's heuristic, [`Shortage::Zone`]) is blocked for
//!   the rest of the process: later launches there fail over without a call;
//! - `ClientToken` is idempotent on AWS but not on moto: [`Provider::settle`] looks for the
//!   interrupted launch's instances by tags and token before it re-issues anything;
//! - regions: those `DescribeRegions` lists in the partition of the home region (an account
//!   lives in one; moto lists China's and GovCloud's too);
//! - instances are read by the `instance-id` filter, never `InstanceId.N`, which fails the whole
//!   call when one id is not visible yet (or any more).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::fingerprint::key_fingerprint;
use super::{
    AwsClient, AwsError, AwsSetupError, Ec2, Filter, ImageId, Instance, InstanceId, InstanceQuery,
    InstanceStateName, InternetGatewayId, KeyName, LaunchRequest, RootVolume, SecurityGroup,
    SecurityGroupId, Shortage, SubnetId, VpcId,
};
use crate::apply::{
    ApiClass, Decision, MutationError, Mutations, Operation, RateBuckets, RetryPolicy, StepError,
    retry,
};
use crate::provider::ErrorClass;
use crate::provider::aliyun::Timing;
use crate::provider::resource::{
    Attrs, HostStatus, ImageRef, Kind, Launch, LiveInstance, LiveResource, Provider, ProviderError,
    RegionScan, Rule, TAG_OWNER, TagScope, Tags, ZoneOffer, delete_instances_in_rounds,
    read_failed, wait_available,
};
use crate::spec::{AwsSettings, Cidr, CloudKind, InstanceType, Region, RegionId, ZoneId};
use crate::ssh::BoxFuture;
use crate::state::{ClientToken, Intent};

/// The default route every host's public address needs.
const DEFAULT_ROUTE: &str = "0.0.0.0/0";
/// Ids per `instance-id` filter (EC2 caps filter values per request).
const IDS_PER_FILTER: usize = 200;
/// Ingress permissions per Authorize/Revoke call.
const RULES_PER_CALL: usize = 50;
/// The root device when an image does not name one (the original tool's, on Ubuntu AMIs).
const DEFAULT_ROOT_DEVICE: &str = "/dev/sda1";

impl From<AwsError> for ProviderError {
    fn from(e: AwsError) -> Self {
        ProviderError {
            class: e.class,
            action: e.action.to_owned(),
            code: e.code.clone(),
            message: e.to_string(),
        }
    }
}

/// The volume settings of the spec that [`Launch`] does not carry (they are AWS's alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Volume {
    iops: u32,
    throughput_mbps: u32,
}

/// AWS EC2 for the reconciler.
#[derive(Debug)]
pub struct AwsProvider {
    client: AwsClient,
    /// Where region-less calls (`DescribeRegions`) are signed for.
    home: RegionId,
    /// Shared by every task of the command: paces calls per (region, API class). AWS's own:
    /// EC2 and Aliyun throttle independently, and both have an `ap-southeast-1`.
    buckets: Arc<RateBuckets>,
    /// For reads; mutations use the policy their [`Mutations`] carries.
    policy: RetryPolicy,
    timing: Timing,
    /// The spec's instance types on AWS: what `DescribeInstanceTypeOfferings` is asked about
    /// (all types when empty).
    types: Vec<InstanceType>,
    volume: Volume,
    /// Zones EC2 said are unavailable during this process: launches there fail over at once.
    blocked: Mutex<BTreeSet<(RegionId, ZoneId)>>,
    /// Root device names of images, by (region, image id): where the root volume goes.
    root_devices: Mutex<BTreeMap<(RegionId, String), String>>,
}

impl AwsProvider {
    pub fn new(
        client: AwsClient,
        buckets: Arc<RateBuckets>,
        policy: RetryPolicy,
        timing: Timing,
    ) -> Self {
        AwsProvider {
            client,
            home: RegionId::new("us-east-1"),
            buckets,
            policy,
            timing,
            types: Vec::new(),
            volume: Volume {
                iops: 3000,
                throughput_mbps: 125,
            },
            blocked: Mutex::new(BTreeSet::new()),
            root_devices: Mutex::new(BTreeMap::new()),
        }
    }

    /// The provider of a spec's `aws:` cloud: credentials from the standard chain, the
    /// endpoint from `AWS_ENDPOINT_URL_EC2`/`AWS_ENDPOINT_URL`, the spec's volume and types.
    pub fn for_spec(
        settings: &AwsSettings,
        regions: &[Region],
        buckets: Arc<RateBuckets>,
        policy: RetryPolicy,
        timing: Timing,
    ) -> Result<Self, AwsSetupError> {
        let client = AwsClient::from_env()?;
        Ok(Self::new(client, buckets, policy, timing).with_spec(settings, regions, env_region()))
    }

    /// A provider with no spec (`destroy --owner`): credentials and endpoint from the
    /// environment, `AWS_REGION`/`AWS_DEFAULT_REGION` (else `us-east-1`) as the home region.
    pub fn from_env(
        buckets: Arc<RateBuckets>,
        policy: RetryPolicy,
        timing: Timing,
    ) -> Result<Self, AwsSetupError> {
        let mut p = Self::new(AwsClient::from_env()?, buckets, policy, timing);
        if let Some(home) = env_region() {
            p.home = home;
        }
        Ok(p)
    }

    /// Takes the spec's volume settings and instance types; `home` (else the first region of
    /// the spec, else `us-east-1`) signs the region-less calls.
    pub fn with_spec(
        mut self,
        settings: &AwsSettings,
        regions: &[Region],
        home: Option<RegionId>,
    ) -> Self {
        self.volume = Volume {
            iops: settings.iops,
            throughput_mbps: settings.throughput_mbps,
        };
        let mut types: Vec<InstanceType> = Vec::new();
        for t in regions.iter().flat_map(|r| &r.instance_types) {
            if !types.contains(&t.name) {
                types.push(t.name.clone());
            }
        }
        self.types = types;
        if let Some(home) = home.or_else(|| regions.first().map(|r| r.id.clone())) {
            self.home = home;
        }
        self
    }

    pub fn client(&self) -> &AwsClient {
        &self.client
    }

    fn ec2(&self, region: &RegionId) -> Ec2 {
        self.client.ec2(region.clone())
    }

    /// One call, paced by the region's bucket for its class. A throttled answer pauses that
    /// bucket for everyone; an unavailable zone is blocked for the rest of the process.
    async fn paced<T>(
        &self,
        region: &RegionId,
        action: &'static str,
        call: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, ProviderError> {
        let class = ApiClass::of_action(action);
        self.buckets.acquire(region, class).await;
        match call.await {
            Ok(v) => {
                tracing::debug!(%region, action, "call succeeded");
                Ok(v)
            }
            Err(e) => {
                tracing::info!(%region, action, code = %e.code, class = ?e.class, "call failed");
                if let ErrorClass::Throttled { retry_after } = e.class {
                    self.buckets.throttled(region, class, retry_after);
                }
                if e.shortage == Some(Shortage::Zone)
                    && let Some(zone) = &e.zone
                {
                    self.lock_blocked().insert((region.clone(), zone.clone()));
                }
                Err(ProviderError::from(e))
            }
        }
    }

    fn lock_blocked(&self) -> std::sync::MutexGuard<'_, BTreeSet<(RegionId, ZoneId)>> {
        self.blocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether EC2 said `zone` of `region` is unavailable during this process.
    pub fn is_blocked(&self, region: &RegionId, zone: &ZoneId) -> bool {
        self.lock_blocked()
            .contains(&(region.clone(), zone.clone()))
    }

    /// A read, paced and retried; `NotFound` comes back as the error (the caller decides).
    async fn read<T, F, Fut>(
        &self,
        region: &RegionId,
        action: &'static str,
        mut call: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        retry(&self.policy, Operation::Read, None, |_| {
            self.paced(region, action, call())
        })
        .await
        .map_err(|s| s.error)
    }

    /// Whether anything in `region` carries the owner's tag: one `DescribeTags` call that lets
    /// discovery skip the regions where nothing of the owner was ever created.
    async fn owner_present(
        &self,
        region: &RegionId,
        scope: &TagScope,
    ) -> Result<bool, ProviderError> {
        let ec2 = self.ec2(region);
        let filters = [
            Filter::new("key", [TAG_OWNER]),
            Filter::new("value", [scope.owner.as_str()]),
        ];
        let rows = self
            .read(region, "DescribeTags", || ec2.describe_tags(&filters))
            .await?;
        Ok(rows
            .iter()
            .any(|t| t.key == TAG_OWNER && t.value == scope.owner.as_str()))
    }

    /// Instances whose id is one of `ids`, by the `instance-id` filter (unknown ids are simply
    /// absent), terminated ones left out.
    async fn instances_by_id(
        &self,
        region: &RegionId,
        ids: &[String],
    ) -> Result<Vec<Instance>, ProviderError> {
        let ec2 = self.ec2(region);
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_FILTER) {
            let q = InstanceQuery {
                filters: vec![Filter::new("instance-id", chunk.iter().map(String::as_str))],
                ..InstanceQuery::default()
            };
            out.extend(
                self.read(region, "DescribeInstances", || ec2.describe_instances(&q))
                    .await?,
            );
        }
        Ok(out)
    }

    /// The rules on `group` now (peer rules included), or `None` when it is gone.
    async fn rules_now(
        &self,
        region: &RegionId,
        group: &str,
    ) -> Result<Option<Vec<Rule>>, ProviderError> {
        let ec2 = self.ec2(region);
        let ids = [SecurityGroupId::new(group)];
        match self
            .read(region, "DescribeSecurityGroups", || {
                ec2.describe_security_groups(&ids, &[])
            })
            .await
        {
            Ok(groups) => Ok(groups.iter().find(|g| g.id.as_str() == group).map(rules_of)),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Authorizes `add` and revokes `remove` on `group`, journaled, and checks the result: an
    /// authorize answered `InvalidPermission.Duplicate` adds nothing of its batch, so what is
    /// still missing afterwards is added rule by rule.
    async fn change_rules(
        &self,
        m: &Mutations<'_>,
        region: &RegionId,
        group: &str,
        add: &[Rule],
        remove: &[Rule],
    ) -> Result<(), StepError> {
        let ec2 = self.ec2(region);
        let gid = SecurityGroupId::new(group);
        let authorize = |rules: Vec<Rule>| {
            let ec2 = ec2.clone();
            let gid = gid.clone();
            async move {
                let params = json!({
                    "Region": region,
                    "GroupId": gid,
                    "Rules": rules.iter().map(ToString::to_string).collect::<Vec<_>>(),
                });
                let perms: Vec<super::IngressRule> = rules.iter().filter_map(ingress).collect();
                m.call(
                    "AuthorizeSecurityGroupIngress",
                    None,
                    params,
                    Operation::Update,
                    |_: &()| vec![gid.to_string()],
                    |_| {
                        self.paced(
                            region,
                            "AuthorizeSecurityGroupIngress",
                            ec2.authorize_ingress(&gid, &perms),
                        )
                    },
                )
                .await
            }
        };
        for batch in add.chunks(RULES_PER_CALL) {
            authorize(batch.to_vec()).await?;
        }
        for batch in remove.chunks(RULES_PER_CALL) {
            let params = json!({
                "Region": region,
                "GroupId": gid,
                "Rules": batch.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            let perms: Vec<super::IngressRule> = batch.iter().filter_map(ingress).collect();
            m.call(
                "RevokeSecurityGroupIngress",
                None,
                params,
                Operation::Delete,
                |_: &()| vec![gid.to_string()],
                |_| {
                    self.paced(
                        region,
                        "RevokeSecurityGroupIngress",
                        ec2.revoke_ingress(&gid, &perms),
                    )
                },
            )
            .await
            .or_else(done)?;
        }
        if add.is_empty() {
            return Ok(());
        }
        let now = self
            .rules_now(region, group)
            .await
            .map_err(read_failed)?
            .unwrap_or_default();
        let have: BTreeSet<_> = now.iter().map(Rule::key).collect();
        for missing in add.iter().filter(|r| !have.contains(&r.key())) {
            authorize(vec![missing.clone()]).await?;
        }
        Ok(())
    }

    async fn import_key(
        &self,
        m: &Mutations<'_>,
        region: &RegionId,
        name: &str,
        public_key: &str,
        tags: &Tags,
    ) -> Result<LiveResource, StepError> {
        let ec2 = self.ec2(region);
        let key = KeyName::new(name);
        let params =
            json!({ "Region": region, "KeyName": name, "PublicKey": public_key, "Tags": tags });
        let imported = m
            .call(
                "ImportKeyPair",
                None,
                params,
                Operation::Create,
                |k: &super::KeyPair| vec![k.name.to_string()],
                |_| {
                    self.paced(
                        region,
                        "ImportKeyPair",
                        ec2.import_key_pair(&key, public_key, tags),
                    )
                },
            )
            .await;
        let want = key_fingerprint(public_key).unwrap_or_default();
        match imported {
            Ok(_) => {}
            // ImportKeyPair has no ClientToken: a retry after a lost answer finds the key it
            // imported. Accept it only if it is ours: our tags and our key.
            Err(e) if code_is(&e, "InvalidKeyPair.Duplicate") => {
                let by_name = [Filter::new("key-name", [name])];
                let found = self
                    .read(region, "DescribeKeyPairs", || {
                        ec2.describe_key_pairs_with_keys(&by_name)
                    })
                    .await
                    .map_err(read_failed)?
                    .into_iter()
                    .find(|k| k.name.as_str() == name);
                let ours = found.is_some_and(|k| {
                    tags.iter().all(|(t, v)| k.tags.get(t) == Some(v))
                        && k.public_key.as_deref().and_then(key_fingerprint).as_ref() == Some(&want)
                });
                if !ours {
                    return Err(StepError::failed(
                        format!(
                            "a key pair named `{name}` already exists in `{region}` without this spec's tags or key"
                        ),
                        "cfxm never touches resources it did not tag; delete or rename that key pair",
                    ));
                }
            }
            Err(e) => return Err(e),
        }
        Ok(LiveResource {
            kind: Kind::KeyPair,
            id: name.to_owned(),
            region: region.clone(),
            status: "available".into(),
            attrs: Attrs::KeyPair {
                name: name.to_owned(),
                fingerprint: want,
                public_key: public_key.to_owned(),
            },
            parent_id: None,
            tags: tags.clone(),
        })
    }

    /// Attaches `gateway` to `vpc` (unless it is) and points the main route table's default
    /// route at it (creating or replacing the route).
    async fn attach_and_route(
        &self,
        m: &Mutations<'_>,
        region: &RegionId,
        gateway: &InternetGatewayId,
        vpc: &VpcId,
    ) -> Result<(), StepError> {
        let ec2 = self.ec2(region);
        let attached_here = || async {
            let ids = [gateway.clone()];
            self.read(region, "DescribeInternetGateways", || {
                ec2.describe_internet_gateways(&ids, &[])
            })
            .await
            .map(|gws| {
                gws.iter()
                    .filter(|g| g.id == *gateway)
                    .flat_map(|g| &g.attachments)
                    .any(|a| a.vpc_id == *vpc && is_attached(&a.state))
            })
            .map_err(read_failed)
        };
        if !attached_here().await? {
            let params = json!({ "Region": region, "InternetGatewayId": gateway, "VpcId": vpc });
            let attached = m
                .call(
                    "AttachInternetGateway",
                    None,
                    params,
                    Operation::Update,
                    |_: &()| vec![gateway.to_string()],
                    |_| {
                        self.paced(
                            region,
                            "AttachInternetGateway",
                            ec2.attach_internet_gateway(gateway, vpc),
                        )
                    },
                )
                .await;
            // A retry after a lost answer meets its own attachment (`Resource.AlreadyAssociated`).
            if let Err(e) = attached
                && !attached_here().await?
            {
                return Err(e);
            }
        }
        let table = self
            .read(region, "DescribeRouteTables", || ec2.main_route_table(vpc))
            .await
            .map_err(read_failed)?
            .ok_or_else(|| {
                StepError::failed(
                    format!("`{vpc}` in `{region}` has no main route table"),
                    "EC2 makes one with every VPC; delete the VPC (`cfxm destroy`) and apply again",
                )
            })?;
        let current = table
            .route_to(DEFAULT_ROUTE)
            .map(|r| r.gateway_id.clone().unwrap_or_default());
        if current.as_deref() == Some(gateway.as_str()) {
            return Ok(());
        }
        let replace = current.is_some();
        let action = if replace {
            "ReplaceRoute"
        } else {
            "CreateRoute"
        };
        let params = json!({
            "Region": region,
            "RouteTableId": table.id,
            "DestinationCidrBlock": DEFAULT_ROUTE,
            "GatewayId": gateway,
        });
        let routed = m
            .call(
                action,
                None,
                params,
                Operation::Update,
                |_: &()| vec![table.id.to_string()],
                |_| async {
                    if replace {
                        self.paced(
                            region,
                            "ReplaceRoute",
                            ec2.replace_route(&table.id, DEFAULT_ROUTE, gateway),
                        )
                        .await
                    } else {
                        self.paced(
                            region,
                            "CreateRoute",
                            ec2.create_route(&table.id, DEFAULT_ROUTE, gateway),
                        )
                        .await
                    }
                },
            )
            .await;
        if let Err(e) = routed {
            // A retry after a lost answer meets its own route (`RouteAlreadyExists`).
            let again = self
                .read(region, "DescribeRouteTables", || ec2.main_route_table(vpc))
                .await
                .map_err(read_failed)?;
            let ours = again
                .as_ref()
                .and_then(|t| t.route_to(DEFAULT_ROUTE))
                .and_then(|r| r.gateway_id.as_deref())
                == Some(gateway.as_str());
            if !ours {
                return Err(e);
            }
        }
        Ok(())
    }

    /// The image's root device name, cached.
    async fn root_device(&self, region: &RegionId, image: &str) -> Result<String, ProviderError> {
        let key = (region.clone(), image.to_owned());
        if let Some(d) = self
            .root_devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(d.clone());
        }
        let ec2 = self.ec2(region);
        let ids = [ImageId::new(image)];
        let found = self
            .read(region, "DescribeImages", || {
                ec2.describe_images(&[], &ids, &[])
            })
            .await?;
        let device = found
            .into_iter()
            .find(|i| i.id.as_str() == image)
            .and_then(|i| i.root_device_name)
            .unwrap_or_else(|| DEFAULT_ROOT_DEVICE.to_owned());
        self.root_devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, device.clone());
        Ok(device)
    }

    fn launch_request(&self, batch: &Launch, token: &ClientToken, device: &str) -> LaunchRequest {
        let s = &batch.settings;
        let provisioned_iops = matches!(s.disk_category.as_str(), "gp3" | "io1" | "io2");
        let mut tags = batch.tags.clone();
        tags.insert("Name".into(), batch.name.clone());
        LaunchRequest {
            image: ImageId::new(&batch.image_id),
            instance_type: batch.instance_type.clone(),
            zone: batch.zone.clone(),
            subnet: SubnetId::new(&batch.subnet_id),
            security_group: SecurityGroupId::new(&batch.security_group_id),
            key_name: KeyName::new(&batch.key_pair),
            count: batch.amount.max(1),
            min_count: batch.min_amount.clamp(1, batch.amount.max(1)),
            client_token: super::ClientToken::new(token.as_str()),
            root_volume: RootVolume {
                device_name: device.to_owned(),
                size_gb: s.disk_gb,
                volume_type: s.disk_category.clone(),
                iops: provisioned_iops.then_some(self.volume.iops),
                throughput_mbps: (s.disk_category == "gp3").then_some(self.volume.throughput_mbps),
            },
            public_ip: s.public_ip,
            spot: s.spot,
            tags,
        }
    }

    /// One journaled RunInstances; the ids it launched.
    async fn run_once(
        &self,
        m: &Mutations<'_>,
        batch: &Launch,
        token: ClientToken,
        device: &str,
    ) -> Result<Vec<String>, StepError> {
        let req = self.launch_request(batch, &token, device);
        let params = serde_json::to_value(batch).expect("launches serialize");
        let ec2 = self.ec2(&batch.region);
        m.call(
            "RunInstances",
            Some(token),
            params,
            Operation::Create,
            Clone::clone,
            |_| async {
                self.paced(&batch.region, "RunInstances", ec2.run_instances(&req))
                    .await
                    .map(|launched| launched.into_iter().map(|i| i.id.to_string()).collect())
            },
        )
        .await
    }

    async fn journaled_create<T, F, Fut>(
        &self,
        m: &Mutations<'_>,
        region: &RegionId,
        action: &'static str,
        params: serde_json::Value,
        id: impl FnOnce(&T) -> String,
        call: F,
    ) -> Result<T, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        let mut call = call;
        m.call(
            action,
            None,
            params,
            Operation::Create,
            |v: &T| vec![id(v)],
            |_| self.paced(region, action, call()),
        )
        .await
    }
}

impl Provider for AwsProvider {
    fn cloud(&self) -> CloudKind {
        CloudKind::Aws
    }

    fn kinds(&self) -> &'static [Kind] {
        &[
            Kind::Network,
            Kind::Gateway,
            Kind::Subnet,
            Kind::SecurityGroup,
            Kind::Peers,
            Kind::KeyPair,
        ]
    }

    fn noun(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Network => "vpc",
            Kind::Gateway => "internet_gateway",
            Kind::Subnet => "subnet",
            Kind::SecurityGroup => "security_group",
            Kind::Peers => "peers",
            Kind::KeyPair => "key_pair",
            Kind::Image => "image",
            Kind::Hosts => "hosts",
        }
    }

    fn fingerprint(&self, public_key: &str) -> Option<String> {
        key_fingerprint(public_key)
    }

    fn regions(&self) -> BoxFuture<'_, Result<Vec<RegionId>, ProviderError>> {
        Box::pin(async move {
            let ec2 = self.ec2(&self.home);
            let regions = self
                .read(&self.home, "DescribeRegions", || ec2.describe_regions())
                .await?;
            // One account lives in one partition; moto lists every partition's regions (and
            // refuses the account's key in the others).
            let home = partition(&self.home);
            Ok(regions
                .into_iter()
                .map(|r| r.name)
                .filter(|r| partition(r) == home)
                .collect())
        })
    }

    fn zones<'a>(
        &'a self,
        region: &'a RegionId,
    ) -> BoxFuture<'a, Result<Vec<ZoneOffer>, ProviderError>> {
        Box::pin(async move {
            let ec2 = self.ec2(region);
            let zones = self
                .read(region, "DescribeAvailabilityZones", || {
                    ec2.describe_availability_zones()
                })
                .await?;
            let offers = self
                .read(region, "DescribeInstanceTypeOfferings", || {
                    ec2.describe_instance_type_offerings(&self.types)
                })
                .await?;
            let mut by_zone: BTreeMap<&str, Vec<InstanceType>> = BTreeMap::new();
            for o in &offers {
                by_zone
                    .entry(o.location.as_str())
                    .or_default()
                    .push(o.instance_type.clone());
            }
            Ok(zones
                .iter()
                .filter(|z| z.is_usable())
                .map(|z| ZoneOffer {
                    zone: z.name.clone(),
                    types: by_zone.get(z.name.as_str()).cloned().unwrap_or_default(),
                })
                .collect())
        })
    }

    fn find_image<'a>(
        &'a self,
        region: &'a RegionId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ImageRef>, ProviderError>> {
        Box::pin(async move {
            let ec2 = self.ec2(region);
            let filters = [Filter::new("name", [name])];
            let mut images: Vec<_> = self
                .read(region, "DescribeImages", || {
                    ec2.describe_images(&["self"], &[], &filters)
                })
                .await?
                .into_iter()
                .filter(|i| i.name.as_deref() == Some(name))
                .collect();
            // The newest of several same-named images (the console allows duplicates).
            images.sort_by(|a, b| b.creation_date.cmp(&a.creation_date));
            Ok(images.into_iter().next().map(|i| {
                if let Some(d) = &i.root_device_name {
                    self.root_devices
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((region.clone(), i.id.to_string()), d.clone());
                }
                ImageRef {
                    id: i.id.to_string(),
                    name: name.to_owned(),
                    status: i.state,
                }
            }))
        })
    }

    fn scan<'a>(
        &'a self,
        region: &'a RegionId,
        scope: &'a TagScope,
    ) -> BoxFuture<'a, Result<RegionScan, ProviderError>> {
        Box::pin(async move {
            let mut out = RegionScan::default();
            if !self.owner_present(region, scope).await? {
                return Ok(out);
            }
            let ec2 = self.ec2(region);
            let filters = scope_filters(scope);
            let named = |tags: &Tags, id: &str| tags.get("Name").cloned().unwrap_or(id.to_owned());

            let vpcs = self
                .read(region, "DescribeVpcs", || ec2.describe_vpcs(&[], &filters))
                .await?;
            for v in vpcs {
                if scope.classify(&v.tags).is_none() {
                    continue;
                }
                out.resources.push(LiveResource {
                    kind: Kind::Network,
                    id: v.id.to_string(),
                    region: region.clone(),
                    status: v.state,
                    attrs: Attrs::Network {
                        name: named(&v.tags, v.id.as_str()),
                        cidr: v.cidr_block,
                    },
                    parent_id: None,
                    tags: v.tags,
                });
            }

            let gateways = self
                .read(region, "DescribeInternetGateways", || {
                    ec2.describe_internet_gateways(&[], &filters)
                })
                .await?;
            for g in gateways {
                if scope.classify(&g.tags).is_none() {
                    continue;
                }
                let vpc = g
                    .attachments
                    .iter()
                    .find(|a| is_attached(&a.state))
                    .map(|a| a.vpc_id.clone());
                let status = match &vpc {
                    None => "detached".to_owned(),
                    Some(vpc) => {
                        let table = self
                            .read(region, "DescribeRouteTables", || ec2.main_route_table(vpc))
                            .await?;
                        let routed = table
                            .as_ref()
                            .and_then(|t| t.route_to(DEFAULT_ROUTE))
                            .and_then(|r| r.gateway_id.as_deref())
                            == Some(g.id.as_str());
                        if routed {
                            "available"
                        } else {
                            "no default route"
                        }
                        .to_owned()
                    }
                };
                out.resources.push(LiveResource {
                    kind: Kind::Gateway,
                    id: g.id.to_string(),
                    region: region.clone(),
                    status,
                    attrs: Attrs::Gateway {
                        name: named(&g.tags, g.id.as_str()),
                    },
                    parent_id: vpc.map(|v| v.to_string()),
                    tags: g.tags,
                });
            }

            let subnets = self
                .read(region, "DescribeSubnets", || {
                    ec2.describe_subnets(&[], &filters)
                })
                .await?;
            for s in subnets {
                if scope.classify(&s.tags).is_none() {
                    continue;
                }
                out.resources.push(LiveResource {
                    kind: Kind::Subnet,
                    id: s.id.to_string(),
                    region: region.clone(),
                    status: s.state,
                    attrs: Attrs::Subnet {
                        name: named(&s.tags, s.id.as_str()),
                        zone: s.zone,
                        cidr: s.cidr_block,
                    },
                    parent_id: Some(s.vpc_id.to_string()),
                    tags: s.tags,
                });
            }

            let groups = self
                .read(region, "DescribeSecurityGroups", || {
                    ec2.describe_security_groups(&[], &filters)
                })
                .await?;
            for g in groups {
                if scope.classify(&g.tags).is_none() {
                    continue;
                }
                let (peers, base): (Vec<Rule>, Vec<Rule>) =
                    rules_of(&g).into_iter().partition(|r| r.note == "peers");
                let vpc = g.vpc_id.as_ref().map(ToString::to_string);
                out.resources.push(LiveResource {
                    kind: Kind::SecurityGroup,
                    id: g.id.to_string(),
                    region: region.clone(),
                    status: "available".into(),
                    attrs: Attrs::SecurityGroup {
                        name: g.name.clone(),
                        rules: base,
                    },
                    parent_id: vpc.clone(),
                    tags: g.tags.clone(),
                });
                if peers.is_empty() {
                    continue;
                }
                out.resources.push(LiveResource {
                    kind: Kind::Peers,
                    id: g.id.to_string(),
                    region: region.clone(),
                    status: "available".into(),
                    attrs: Attrs::Peers { rules: Some(peers) },
                    parent_id: vpc,
                    tags: g.tags,
                });
            }

            let keys = self
                .read(region, "DescribeKeyPairs", || {
                    ec2.describe_key_pairs_with_keys(&filters)
                })
                .await?;
            for k in keys {
                if scope.classify(&k.tags).is_none() {
                    continue;
                }
                // Compared by key: the same function on both sides (see the module notes).
                let fingerprint = k
                    .public_key
                    .as_deref()
                    .and_then(key_fingerprint)
                    .unwrap_or(k.fingerprint);
                out.resources.push(LiveResource {
                    kind: Kind::KeyPair,
                    id: k.name.to_string(),
                    region: region.clone(),
                    status: "available".into(),
                    attrs: Attrs::KeyPair {
                        name: k.name.to_string(),
                        fingerprint,
                        public_key: k.public_key.unwrap_or_default(),
                    },
                    parent_id: None,
                    tags: k.tags,
                });
            }

            let q = InstanceQuery {
                filters: filters.clone(),
                ..InstanceQuery::default()
            };
            let instances = self
                .read(region, "DescribeInstances", || ec2.describe_instances(&q))
                .await?;
            for i in instances {
                if scope.classify(&i.tags).is_some() {
                    out.instances.push(live_instance(region, i));
                }
            }
            Ok(out)
        })
    }

    fn create<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        region: &'a RegionId,
        want: &'a Attrs,
        parent: Option<&'a LiveResource>,
        tags: &'a Tags,
    ) -> BoxFuture<'a, Result<LiveResource, StepError>> {
        Box::pin(async move {
            let ec2 = self.ec2(region);
            let timing = (self.timing.network_ready, self.timing.poll);
            let vpc_of_parent = || {
                parent.map(|p| VpcId::new(&p.id)).ok_or_else(|| {
                    StepError::failed(
                        format!("a {:?} needs its network, which is missing", want.kind()),
                        "this is a bug in cfxm's planner; please report it",
                    )
                })
            };
            let mut named = tags.clone();
            if let Some(name) = want.name() {
                named.insert("Name".into(), name.to_owned());
            }
            let live = |id: String, status: String, parent_id: Option<String>| LiveResource {
                kind: want.kind(),
                id,
                region: region.clone(),
                status,
                attrs: want.clone(),
                parent_id,
                tags: named.clone(),
            };
            match want {
                Attrs::Network { cidr, .. } => {
                    let block = parse_cidr(cidr)?;
                    let params = json!({ "Region": region, "CidrBlock": cidr, "Tags": named });
                    let vpc = self
                        .journaled_create(
                            m,
                            region,
                            "CreateVpc",
                            params,
                            |v: &super::Vpc| v.id.to_string(),
                            || ec2.create_vpc(&block, &named),
                        )
                        .await?;
                    let ids = [vpc.id.clone()];
                    let status =
                        wait_available(m, region, vpc.id.as_str(), timing, "EC2", || async {
                            self.read(region, "DescribeVpcs", || ec2.describe_vpcs(&ids, &[]))
                                .await
                                .map(|v| v.into_iter().next().map(|v| v.state))
                        })
                        .await?;
                    Ok(live(vpc.id.to_string(), status, None))
                }
                Attrs::Gateway { .. } => {
                    let vpc = vpc_of_parent()?;
                    let params = json!({ "Region": region, "VpcId": vpc, "Tags": named });
                    let gateway = self
                        .journaled_create(
                            m,
                            region,
                            "CreateInternetGateway",
                            params,
                            |g: &super::InternetGateway| g.id.to_string(),
                            || ec2.create_internet_gateway(&named),
                        )
                        .await?;
                    self.attach_and_route(m, region, &gateway.id, &vpc).await?;
                    Ok(live(
                        gateway.id.to_string(),
                        "available".into(),
                        Some(vpc.to_string()),
                    ))
                }
                Attrs::Subnet { zone, cidr, .. } => {
                    let vpc = vpc_of_parent()?;
                    let block = parse_cidr(cidr)?;
                    let params = json!({
                        "Region": region, "VpcId": vpc, "AvailabilityZone": zone,
                        "CidrBlock": cidr, "Tags": named,
                    });
                    let subnet = self
                        .journaled_create(
                            m,
                            region,
                            "CreateSubnet",
                            params,
                            |s: &super::Subnet| s.id.to_string(),
                            || ec2.create_subnet(&vpc, &block, zone, &named),
                        )
                        .await?;
                    let ids = [subnet.id.clone()];
                    let status =
                        wait_available(m, region, subnet.id.as_str(), timing, "EC2", || async {
                            self.read(region, "DescribeSubnets", || {
                                ec2.describe_subnets(&ids, &[])
                            })
                            .await
                            .map(|s| s.into_iter().next().map(|s| s.state))
                        })
                        .await?;
                    Ok(live(subnet.id.to_string(), status, Some(vpc.to_string())))
                }
                Attrs::SecurityGroup { name, rules } => {
                    let vpc = vpc_of_parent()?;
                    let params =
                        json!({ "Region": region, "VpcId": vpc, "GroupName": name, "Tags": named });
                    let created = self
                        .journaled_create(
                            m,
                            region,
                            "CreateSecurityGroup",
                            params,
                            |id: &SecurityGroupId| id.to_string(),
                            || ec2.create_security_group(&vpc, name, "cfxm", &named),
                        )
                        .await;
                    let id = match created {
                        Ok(id) => id,
                        // A retry after a lost answer meets its own group: accept it if it
                        // carries our tags, in our VPC.
                        Err(e) if code_is(&e, "InvalidGroup.Duplicate") => {
                            let filters = [
                                Filter::new("vpc-id", [vpc.as_str()]),
                                Filter::new("group-name", [name.as_str()]),
                            ];
                            let found = self
                                .read(region, "DescribeSecurityGroups", || {
                                    ec2.describe_security_groups(&[], &filters)
                                })
                                .await
                                .map_err(read_failed)?
                                .into_iter()
                                .find(|g| tags.iter().all(|(k, v)| g.tags.get(k) == Some(v)));
                            match found {
                                Some(g) => g.id,
                                None => return Err(e),
                            }
                        }
                        Err(e) => return Err(e),
                    };
                    let have: BTreeSet<_> = self
                        .rules_now(region, id.as_str())
                        .await
                        .map_err(read_failed)?
                        .unwrap_or_default()
                        .iter()
                        .map(Rule::key)
                        .collect();
                    let add: Vec<Rule> = rules
                        .iter()
                        .filter(|r| !have.contains(&r.key()))
                        .cloned()
                        .collect();
                    self.change_rules(m, region, id.as_str(), &add, &[]).await?;
                    Ok(live(
                        id.to_string(),
                        "available".into(),
                        Some(vpc.to_string()),
                    ))
                }
                Attrs::Peers { rules } => {
                    let group = parent.ok_or_else(|| {
                        StepError::failed(
                            "peer rules need their security group, which is missing",
                            "this is a bug in cfxm's planner; please report it",
                        )
                    })?;
                    let rules = rules.clone().unwrap_or_default();
                    let have: BTreeSet<_> = self
                        .rules_now(region, &group.id)
                        .await
                        .map_err(read_failed)?
                        .unwrap_or_default()
                        .iter()
                        .map(Rule::key)
                        .collect();
                    let add: Vec<Rule> = rules
                        .iter()
                        .filter(|r| !have.contains(&r.key()))
                        .cloned()
                        .collect();
                    self.change_rules(m, region, &group.id, &add, &[]).await?;
                    Ok(LiveResource {
                        kind: Kind::Peers,
                        id: group.id.clone(),
                        region: region.clone(),
                        status: "available".into(),
                        attrs: Attrs::Peers { rules: Some(rules) },
                        parent_id: group.parent_id.clone(),
                        tags: tags.clone(),
                    })
                }
                Attrs::KeyPair {
                    name, public_key, ..
                } => self.import_key(m, region, name, public_key, tags).await,
                Attrs::Image { .. } | Attrs::Hosts(_) => Err(StepError::failed(
                    format!("{:?} is not an infra resource to create", want.kind()),
                    "this is a bug in cfxm's planner; please report it",
                )),
            }
        })
    }

    fn update<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        live: &'a LiveResource,
        want: &'a Attrs,
    ) -> BoxFuture<'a, Result<LiveResource, StepError>> {
        Box::pin(async move {
            let region = &live.region;
            if let Attrs::Gateway { .. } = want {
                // Attached but without the default route (an apply died between the two): the
                // route is added; a gateway attached nowhere is never the spec's (discovery
                // calls it left over, and a new one is made).
                let ec2 = self.ec2(region);
                let ids = [InternetGatewayId::new(&live.id)];
                let vpc = self
                    .read(region, "DescribeInternetGateways", || {
                        ec2.describe_internet_gateways(&ids, &[])
                    })
                    .await
                    .map_err(read_failed)?
                    .into_iter()
                    .flat_map(|g| g.attachments)
                    .find(|a| is_attached(&a.state))
                    .map(|a| a.vpc_id)
                    .ok_or_else(|| {
                        StepError::failed(
                            format!("`{}` in `{region}` is attached to no VPC", live.id),
                            "run `cfxm plan` again: a detached gateway is replaced",
                        )
                    })?;
                self.attach_and_route(m, region, &ids[0], &vpc).await?;
                let mut updated = live.clone();
                updated.status = "available".into();
                updated.parent_id = Some(vpc.to_string());
                return Ok(updated);
            }
            // Read the rules now: the plan's view may be minutes old.
            let current = self
                .rules_now(region, &live.id)
                .await
                .map_err(read_failed)?
                .ok_or_else(|| {
                    StepError::failed(
                        format!("security group `{}` in `{region}` is gone", live.id),
                        "run `cfxm plan` again; it will be created anew",
                    )
                })?;
            let (wanted, managed): (Vec<Rule>, fn(&str) -> bool) = match want {
                Attrs::SecurityGroup { rules, .. } => (rules.clone(), |n| n != "peers"),
                Attrs::Peers { rules } => (rules.clone().unwrap_or_default(), |n| n == "peers"),
                other => {
                    return Err(StepError::failed(
                        format!("{:?} resources are replaced, not updated", other.kind()),
                        "this is a bug in cfxm's planner; please report it",
                    ));
                }
            };
            let have: BTreeSet<_> = current
                .iter()
                .filter(|r| managed(&r.note))
                .map(Rule::key)
                .collect();
            let add: Vec<Rule> = wanted
                .iter()
                .filter(|r| !have.contains(&r.key()))
                .cloned()
                .collect();
            let want_keys: BTreeSet<_> = wanted.iter().map(Rule::key).collect();
            let remove: Vec<Rule> = current
                .iter()
                .filter(|r| managed(&r.note) && !want_keys.contains(&r.key()))
                .cloned()
                .collect();
            self.change_rules(m, region, &live.id, &add, &remove)
                .await?;
            let mut updated = live.clone();
            updated.attrs = match want {
                Attrs::Peers { .. } => Attrs::Peers {
                    rules: Some(wanted),
                },
                other => other.clone(),
            };
            Ok(updated)
        })
    }

    fn delete<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        live: &'a LiveResource,
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let region = &live.region;
            let id = live.id.as_str();
            let ec2 = self.ec2(region);
            let params = json!({ "Region": region, "Id": id });
            let result = match live.kind {
                Kind::Network => {
                    let vpc = VpcId::new(id);
                    m.call("DeleteVpc", None, params, Operation::Delete, none, |_| {
                        self.paced(region, "DeleteVpc", ec2.delete_vpc(&vpc))
                    })
                    .await
                }
                Kind::Subnet => {
                    let subnet = SubnetId::new(id);
                    m.call(
                        "DeleteSubnet",
                        None,
                        params,
                        Operation::Delete,
                        none,
                        |_| self.paced(region, "DeleteSubnet", ec2.delete_subnet(&subnet)),
                    )
                    .await
                }
                Kind::SecurityGroup => {
                    let group = SecurityGroupId::new(id);
                    m.call(
                        "DeleteSecurityGroup",
                        None,
                        params,
                        Operation::Delete,
                        none,
                        |_| {
                            self.paced(
                                region,
                                "DeleteSecurityGroup",
                                ec2.delete_security_group(&group),
                            )
                        },
                    )
                    .await
                }
                Kind::KeyPair => {
                    let key = KeyName::new(id);
                    m.call(
                        "DeleteKeyPair",
                        None,
                        params,
                        Operation::Delete,
                        none,
                        |_| self.paced(region, "DeleteKeyPair", ec2.delete_key_pair(&key)),
                    )
                    .await
                }
                Kind::Gateway => self.delete_gateway(m, region, id).await,
                Kind::Peers => {
                    let Some(current) = self.rules_now(region, id).await.map_err(read_failed)?
                    else {
                        return Ok(());
                    };
                    let remove: Vec<Rule> =
                        current.into_iter().filter(|r| r.note == "peers").collect();
                    self.change_rules(m, region, id, &[], &remove).await
                }
                Kind::Image | Kind::Hosts => Ok(()),
            };
            result.or_else(done)
        })
    }

    fn launch<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        batch: &'a Launch,
        token: ClientToken,
    ) -> BoxFuture<'a, Result<Vec<String>, StepError>> {
        Box::pin(async move {
            let region = &batch.region;
            if self.is_blocked(region, &batch.zone) {
                return Err(replan(
                    "RunInstances",
                    format!(
                        "zone `{}` of `{region}` was found unavailable earlier in this run; not asking it again",
                        batch.zone
                    ),
                ));
            }
            let device = self
                .root_device(region, &batch.image_id)
                .await
                .map_err(read_failed)?;
            let mut ids = self.run_once(m, batch, token.clone(), &device).await?;
            let wanted = batch.amount as usize;
            if ids.is_empty() || ids.len() >= wanted {
                return Ok(ids);
            }
            // Fewer than asked: on AWS the zone ran short between MinCount and MaxCount, on
            // moto only MinCount was launched. Ask once for the rest, all or nothing.
            let rest = u32::try_from(wanted - ids.len()).unwrap_or(u32::MAX);
            let mut topup = batch.clone();
            topup.amount = rest;
            topup.min_amount = rest;
            let topup_token = ClientToken::new(format!("{token}-rest")).unwrap_or(token);
            match self.run_once(m, &topup, topup_token, &device).await {
                Ok(more) => ids.extend(more),
                // The shortage the first answer implied: keep what was launched.
                Err(e) if e.is_replan() => {}
                // Any other refusal still leaves the first call's hosts, which must be counted;
                // the next candidate meets the cause again if it is the account's.
                Err(e) if e.cloud_class().is_some() => {
                    m.progress(format!("{} more in {}: {e}", rest, batch.zone));
                }
                Err(e) => return Err(e),
            }
            Ok(ids)
        })
    }

    fn instance_status<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, HostStatus)>, ProviderError>> {
        Box::pin(async move {
            Ok(self
                .instances_by_id(region, ids)
                .await?
                .into_iter()
                .map(|i| (i.id.to_string(), host_status(&i.state.name)))
                .collect())
        })
    }

    fn describe_instances<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<LiveInstance>, ProviderError>> {
        Box::pin(async move {
            Ok(self
                .instances_by_id(region, ids)
                .await?
                .into_iter()
                .map(|i| live_instance(region, i))
                .collect())
        })
    }

    fn terminate<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<(), StepError>> {
        Box::pin(async move {
            let ec2 = &self.ec2(region);
            delete_instances_in_rounds(
                region,
                "terminated",
                ids,
                1000,
                move |left: Vec<String>| async move {
                    let params = json!({ "Region": region, "InstanceIds": left });
                    let instance_ids: Vec<InstanceId> = left.iter().map(InstanceId::new).collect();
                    m.call(
                        "TerminateInstances",
                        None,
                        params,
                        Operation::Delete,
                        |_: &Vec<super::InstanceStateChange>| left.clone(),
                        |_| {
                            self.paced(
                                region,
                                "TerminateInstances",
                                ec2.terminate_instances(&instance_ids),
                            )
                        },
                    )
                    .await
                    .map(drop)
                },
                move |left: Vec<String>| async move {
                    Ok(self
                        .instances_by_id(region, &left)
                        .await
                        .map_err(read_failed)?
                        .into_iter()
                        .filter(|i| host_status(&i.state.name) != HostStatus::Stopping)
                        .map(|i| i.id.to_string())
                        .collect())
                },
            )
            .await
        })
    }

    fn settle<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        intent: &'a Intent,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StepError>> {
        Box::pin(async move {
            // Only launches carry a token; the network creates have none on EC2, and
            // discovery finds what they made by its tags.
            let Some(token) = intent.client_token.clone() else {
                return Ok(None);
            };
            if intent.action != "RunInstances" {
                return Ok(None);
            }
            let Ok(batch) = serde_json::from_value::<Launch>(intent.params.clone()) else {
                return Ok(None);
            };
            let region = &batch.region;
            // moto does not deduplicate by token: look for what the call made before asking
            // again (on AWS the re-issue would answer the same; this saves the call).
            let ec2 = self.ec2(region);
            let q = InstanceQuery::tagged(&batch.tags);
            let made: Vec<String> = self
                .read(region, "DescribeInstances", || ec2.describe_instances(&q))
                .await
                .map_err(read_failed)?
                .into_iter()
                .filter(|i| i.client_token.as_deref() == Some(token.as_str()))
                .map(|i| i.id.to_string())
                .collect();
            if !made.is_empty() {
                return Ok(Some(made));
            }
            let device = self
                .root_device(region, &batch.image_id)
                .await
                .map_err(read_failed)?;
            let req = self.launch_request(&batch, &token, &device);
            retry(m.policy, Operation::Create, m.step, |_| async {
                self.paced(region, "RunInstances", ec2.run_instances(&req))
                    .await
                    .map(|v| v.into_iter().map(|i| i.id.to_string()).collect())
            })
            .await
            .map(Some)
            .map_err(|s| StepError::from(MutationError::Call(s)))
        })
    }
}

impl AwsProvider {
    /// The gateway's reverse: the default route through it, its attachments, itself.
    async fn delete_gateway(
        &self,
        m: &Mutations<'_>,
        region: &RegionId,
        id: &str,
    ) -> Result<(), StepError> {
        let ec2 = self.ec2(region);
        let gateway = InternetGatewayId::new(id);
        let ids = [gateway.clone()];
        let attachments = match self
            .read(region, "DescribeInternetGateways", || {
                ec2.describe_internet_gateways(&ids, &[])
            })
            .await
        {
            Ok(gws) => gws
                .into_iter()
                .filter(|g| g.id == gateway)
                .flat_map(|g| g.attachments)
                .collect::<Vec<_>>(),
            Err(e) if e.class == ErrorClass::NotFound => return Ok(()),
            Err(e) => return Err(read_failed(e)),
        };
        for a in attachments {
            let vpc = a.vpc_id;
            if let Some(table) = self
                .read(region, "DescribeRouteTables", || ec2.main_route_table(&vpc))
                .await
                .map_err(read_failed)?
                && table
                    .route_to(DEFAULT_ROUTE)
                    .and_then(|r| r.gateway_id.as_deref())
                    == Some(id)
            {
                let params = json!({ "Region": region, "RouteTableId": table.id, "DestinationCidrBlock": DEFAULT_ROUTE });
                m.call("DeleteRoute", None, params, Operation::Delete, none, |_| {
                    self.paced(
                        region,
                        "DeleteRoute",
                        ec2.delete_route(&table.id, DEFAULT_ROUTE),
                    )
                })
                .await
                .or_else(done)?;
            }
            // Refused (`DependencyViolation`) while instances with public addresses remain in
            // the VPC; the delete policy waits for them.
            let params = json!({ "Region": region, "InternetGatewayId": id, "VpcId": vpc });
            m.call(
                "DetachInternetGateway",
                None,
                params,
                Operation::Delete,
                none,
                |_| {
                    self.paced(
                        region,
                        "DetachInternetGateway",
                        ec2.detach_internet_gateway(&gateway, &vpc),
                    )
                },
            )
            .await
            .or_else(done)?;
        }
        let params = json!({ "Region": region, "InternetGatewayId": id });
        m.call(
            "DeleteInternetGateway",
            None,
            params,
            Operation::Delete,
            none,
            |_| {
                self.paced(
                    region,
                    "DeleteInternetGateway",
                    ec2.delete_internet_gateway(&gateway),
                )
            },
        )
        .await
    }
}

fn none<T>(_: &T) -> Vec<String> {
    Vec::new()
}

/// A delete that found its target gone succeeded.
fn done(e: StepError) -> Result<(), StepError> {
    if e.is_done() { Ok(()) } else { Err(e) }
}

/// A "no capacity here" decided without a call.
fn replan(action: &str, message: String) -> StepError {
    StepError::from(MutationError::Call(crate::apply::retry::Stopped {
        error: ProviderError::local(action, ErrorClass::NoCapacity, message),
        decision: Decision::Replan,
        attempts: 0,
        elapsed: Duration::ZERO,
    }))
}

fn code_is(e: &StepError, code: &str) -> bool {
    e.call().is_some_and(|s| s.error.code == code)
}

fn parse_cidr(text: &str) -> Result<Cidr, StepError> {
    text.parse().map_err(|e: String| {
        StepError::failed(
            format!("`{text}` is not an address block: {e}"),
            "this is a bug in cfxm's planner; please report it",
        )
    })
}

/// The server-side filters of a tag scope: exact values, or the key alone (any spec).
fn scope_filters(scope: &TagScope) -> Vec<Filter> {
    scope
        .filter()
        .into_iter()
        .map(|(k, v)| {
            if v.is_empty() {
                Filter::new("tag-key", [k])
            } else {
                Filter::tag(&k, &v)
            }
        })
        .collect()
}

/// The region the standard variables name, if any.
fn env_region() -> Option<RegionId> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .map(RegionId::new)
}

/// The AWS partition of a region: `aws-cn` (China), `aws-us-gov` (GovCloud) or `aws`.
fn partition(region: &RegionId) -> &'static str {
    let r = region.as_str();
    if r.starts_with("cn-") {
        "aws-cn"
    } else if r.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// `attached` on AWS, `available` on moto (and in older EC2 answers).
fn is_attached(state: &str) -> bool {
    matches!(state, "attached" | "available" | "attaching")
}

/// The TCP rules of a group as cfxm's [`Rule`]s, one per source range; rules cfxm never
/// writes (other protocols, group or prefix-list sources) are left out, and so left alone.
fn rules_of(g: &SecurityGroup) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in &g.ingress {
        if !p.protocol.eq_ignore_ascii_case("tcp") {
            continue;
        }
        let (Some(from), Some(to)) = (p.from_port, p.to_port) else {
            continue;
        };
        let (Ok(from), Ok(to)) = (u16::try_from(from), u16::try_from(to)) else {
            continue;
        };
        for r in &p.ip_ranges {
            out.push(Rule {
                protocol: "tcp".into(),
                from_port: from,
                to_port: to,
                source: r.cidr.clone(),
                note: Rule::note_of(r.description.as_deref().unwrap_or_default()),
            });
        }
    }
    out
}

/// A rule as an EC2 ingress permission with its `cfxm:<note>` description.
fn ingress(r: &Rule) -> Option<super::IngressRule> {
    let source: Cidr = r.source.parse().ok()?;
    let mut rule =
        super::IngressRule::tcp(i32::from(r.from_port), i32::from(r.to_port), vec![source]);
    let d = r.description();
    rule.description = (!d.is_empty()).then_some(d);
    Some(rule)
}

fn host_status(s: &InstanceStateName) -> HostStatus {
    match s {
        InstanceStateName::Pending => HostStatus::Pending,
        InstanceStateName::Running => HostStatus::Running,
        InstanceStateName::ShuttingDown | InstanceStateName::Stopping => HostStatus::Stopping,
        InstanceStateName::Stopped => HostStatus::Stopped,
        InstanceStateName::Terminated | InstanceStateName::Other(_) => HostStatus::Unknown,
    }
}

fn live_instance(region: &RegionId, i: Instance) -> LiveInstance {
    LiveInstance {
        public_ip: i.public_ip.as_deref().and_then(|a| a.parse().ok()),
        private_ip: i.private_ip.as_deref().and_then(|a| a.parse().ok()),
        status: host_status(&i.state.name),
        id: i.id.to_string(),
        region: region.clone(),
        zone: i.zone.unwrap_or_else(|| ZoneId::new("")),
        instance_type: i.instance_type,
        subnet_id: i.subnet_id.map(|s| s.to_string()).unwrap_or_default(),
        key_pair: i.key_name.map(|k| k.to_string()).unwrap_or_default(),
        tags: i.tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::resource::InstanceSettings;
    use crate::spec::{Owner, SpecName};

    fn provider() -> AwsProvider {
        let client = AwsClient::new(
            super::super::Credentials::new("AKID", super::super::Secret::new("s")),
            super::super::Endpoint::fixed("http://127.0.0.1:9").unwrap(),
        )
        .unwrap();
        AwsProvider::new(
            client,
            Arc::new(RateBuckets::new(Default::default()).unwrap()),
            RetryPolicy::default(),
            Timing::default(),
        )
    }

    #[test]
    fn a_launch_is_one_tagged_run_instances_with_the_spec_disk_and_a_public_address() {
        let p = provider();
        let batch = Launch {
            region: RegionId::new("us-west-2"),
            zone: ZoneId::new("us-west-2a"),
            subnet_id: "subnet-1".into(),
            security_group_id: "sg-1".into(),
            image_id: "ami-1".into(),
            key_pair: "kp".into(),
            instance_type: InstanceType::new("m6i.2xlarge"),
            amount: 40,
            min_amount: 1,
            settings: InstanceSettings {
                disk_gb: 250,
                disk_category: "gp3".into(),
                bandwidth_mbps: 0,
                public_ip: true,
                spot: false,
            },
            name: "conflux-massive-test-alice-x".into(),
            tags: TagScope::create_tags(&Owner::new("alice"), &SpecName::new("x")),
        };
        let token = ClientToken::new("cfxm-0123456789abcdef-3").unwrap();
        let req = p.launch_request(&batch, &token, "/dev/sda1");
        assert_eq!((req.count, req.min_count), (40, 1));
        assert_eq!(req.client_token.as_str(), "cfxm-0123456789abcdef-3");
        assert!(req.public_ip);
        assert_eq!(req.root_volume.volume_type, "gp3");
        assert_eq!(req.root_volume.size_gb, 250);
        assert_eq!(req.root_volume.iops, Some(3000));
        assert_eq!(req.root_volume.throughput_mbps, Some(125));
        assert_eq!(req.tags.len(), 4, "the three tags and a Name");
        assert_eq!(
            req.tags.get("Name").map(String::as_str),
            Some("conflux-massive-test-alice-x")
        );
        // Journaled as the launch itself, so a re-issue rebuilds the same request.
        let back: Launch = serde_json::from_value(serde_json::to_value(&batch).unwrap()).unwrap();
        assert_eq!(p.launch_request(&back, &token, "/dev/sda1").tags, req.tags);
    }

    #[test]
    fn rules_round_trip_through_ingress_permissions() {
        let r = Rule::tcp(11000, 11009, "10.0.0.0/16", "vpc");
        let p = ingress(&r).unwrap();
        assert_eq!((p.from_port, p.to_port), (11000, 11009));
        assert_eq!(p.description.as_deref(), Some("cfxm:vpc"));
        let g = SecurityGroup {
            id: SecurityGroupId::new("sg-1"),
            name: "g".into(),
            description: String::new(),
            vpc_id: None,
            ingress: vec![
                super::super::IpPermission {
                    protocol: "tcp".into(),
                    from_port: Some(11000),
                    to_port: Some(11009),
                    ip_ranges: vec![super::super::IpRange {
                        cidr: "10.0.0.0/16".into(),
                        description: Some("cfxm:vpc".into()),
                    }],
                },
                super::super::IpPermission {
                    protocol: "-1".into(),
                    from_port: None,
                    to_port: None,
                    ip_ranges: vec![super::super::IpRange {
                        cidr: "0.0.0.0/0".into(),
                        description: None,
                    }],
                },
            ],
            tags: Tags::new(),
        };
        assert_eq!(rules_of(&g), vec![r]);
    }

    #[test]
    fn owner_scopes_filter_on_the_spec_key_alone() {
        let f = scope_filters(&TagScope::owner(&Owner::new("alice")));
        assert_eq!(f[0], Filter::tag("conflux-massive-test", "true"));
        assert_eq!(f[1], Filter::tag("user", "alice"));
        assert_eq!(f[2], Filter::new("tag-key", ["cfxm-spec"]));
    }

    #[test]
    fn regions_keep_to_the_home_partition() {
        assert_eq!(partition(&RegionId::new("cn-northwest-1")), "aws-cn");
        assert_eq!(partition(&RegionId::new("us-gov-west-1")), "aws-us-gov");
        assert_eq!(partition(&RegionId::new("us-east-1")), "aws");
        assert_eq!(partition(&RegionId::new("me-south-1")), "aws");
    }

    #[test]
    fn instance_states_map_to_host_states() {
        assert_eq!(
            host_status(&InstanceStateName::ShuttingDown),
            HostStatus::Stopping
        );
        assert_eq!(
            host_status(&InstanceStateName::Pending),
            HostStatus::Pending
        );
        assert_eq!(
            host_status(&InstanceStateName::Other("rebooting".into())),
            HostStatus::Unknown
        );
    }
}
