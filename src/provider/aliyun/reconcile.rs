//! [`AliyunProvider`]: the reconciler's [`Provider`] over the typed ECS/VPC [`Client`].
//!
//! What it adds to the client: the mapping between Aliyun's resources and the cloud-neutral
//! kinds (VPC → network, vSwitch → subnet, ...), tags in every create call, exact tag matching
//! on every answer, pacing by the apply's [`RateBuckets`] (a throttled answer pauses its bucket
//! for every caller), retries of reads under the [`RetryPolicy`], journaled mutations through
//! [`Mutations`], and waits until a new VPC or vSwitch is `Available`.
//!
//! Discovery of instances prefers `DescribeInstances` with the tag filter (100 per page) and
//! falls back to `ListTagResources` plus lookups by id when the filter's 1,000-resource cap is
//! reached (aliyun-api.md §3.6), so fleets of any size are found whole.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    AliyunError, Client, CreateSecurityGroupRequest, CreateVSwitchRequest, CreateVpcRequest,
    EcsResourceType, ImageQuery, InstanceInfo, InstanceQuery, InstanceStatus, KeyPairQuery,
    Permission, RunInstancesRequest, SecurityGroupQuery, Tag, VSwitchQuery, VpcQuery,
};
use crate::apply::{ApiClass, Mutations, Operation, RateBuckets, RetryPolicy, StepError, retry};
use crate::provider::ErrorClass;
use crate::provider::resource::{
    Attrs, HostStatus, ImageRef, Kind, Launch, LiveInstance, LiveResource, Provider, ProviderError,
    RegionScan, Rule, TagScope, Tags, ZoneOffer, delete_instances_in_rounds, read_failed,
    wait_available,
};
use crate::spec::{CloudKind, InstanceType, RegionId, ZoneId};
use crate::ssh::BoxFuture;
use crate::state::{ClientToken, Intent};

/// Above this many matches a tag-filtered `DescribeInstances` may be cut short by the service.
const TAG_FILTER_CAP: usize = 1000;

/// How long the provider waits for the cloud, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between two status polls of a VPC or vSwitch being created.
    pub poll: Duration,
    /// How long a new VPC or vSwitch may stay `Pending` (Terraform allows 5–10 minutes).
    pub network_ready: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            poll: Duration::from_secs(3),
            network_ready: Duration::from_secs(10 * 60),
        }
    }
}

/// Aliyun for the reconciler.
#[derive(Debug, Clone)]
pub struct AliyunProvider {
    /// Which cloud this is to the reconciler: Aliyun, or the local cloud (the built-in
    /// emulator, same API).
    cloud: CloudKind,
    client: Client,
    /// Shared by every task of the command: paces calls per (region, API class).
    buckets: Arc<RateBuckets>,
    /// For reads; mutations use the policy their [`Mutations`] carries.
    policy: RetryPolicy,
    timing: Timing,
}

impl AliyunProvider {
    pub fn new(
        client: Client,
        buckets: Arc<RateBuckets>,
        policy: RetryPolicy,
        timing: Timing,
    ) -> Self {
        AliyunProvider {
            cloud: CloudKind::Aliyun,
            client,
            buckets,
            policy,
            timing,
        }
    }

    /// The same provider serving another cloud kind: `cloud: local` is the built-in emulator,
    /// driven through the Aliyun API, with its own addresses (`local/<region>/...`) and
    /// inventory provider.
    pub fn as_cloud(mut self, cloud: CloudKind) -> Self {
        self.cloud = cloud;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One call, paced by the region's bucket for its class; a throttled answer pauses that
    /// bucket for everyone.
    async fn paced<T>(
        &self,
        region: &RegionId,
        action: &'static str,
        call: impl Future<Output = Result<T, AliyunError>>,
    ) -> Result<T, ProviderError> {
        let class = ApiClass::of_action(action);
        self.buckets.acquire(region, class).await;
        let result = call.await;
        match &result {
            Ok(_) => tracing::debug!(%region, action, "call succeeded"),
            Err(e) => {
                tracing::info!(%region, action, code = %e.code, class = ?e.class, "call failed");
                if let ErrorClass::Throttled { retry_after } = e.class {
                    self.buckets.throttled(region, class, retry_after);
                }
            }
        }
        result.map_err(ProviderError::from)
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
        Fut: Future<Output = Result<T, AliyunError>>,
    {
        retry(&self.policy, Operation::Read, None, |_| {
            self.paced(region, action, call())
        })
        .await
        .map_err(|s| s.error)
    }

    async fn scan_instances(
        &self,
        region: &RegionId,
        filter: &[Tag],
    ) -> Result<Vec<InstanceInfo>, ProviderError> {
        // Every page is its own paced, retried call: a throttled page is retried alone, never
        // the whole enumeration.
        let query = InstanceQuery {
            tags: filter.to_vec(),
            ..InstanceQuery::default()
        };
        let mut found = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .read(region, "DescribeInstances", || {
                    self.client
                        .describe_instances_page(region, &query, &[], 100, &token)
                })
                .await?;
            found.extend(page.instances);
            match page.next_token {
                Some(t) => token = t,
                None => break,
            }
        }
        if found.len() < TAG_FILTER_CAP {
            return Ok(found);
        }
        // The filter may have been cut at the cap: enumerate ids by tags (no cap), then read
        // the instances by id, 100 per call.
        let ids: Vec<String> = self.tagged_ids(region, filter).await?.into_iter().collect();
        self.instances_by_id(region, &ids).await
    }

    /// Ids of the instances carrying `filter`, from `ListTagResources`, page by page.
    async fn tagged_ids(
        &self,
        region: &RegionId,
        filter: &[Tag],
    ) -> Result<BTreeSet<String>, ProviderError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Page {
            #[serde(deserialize_with = "super::types::wrap::tag_resource", default)]
            tag_resources: Vec<super::TagResource>,
            #[serde(default)]
            next_token: String,
        }
        let mut ids = BTreeSet::new();
        let mut token = String::new();
        loop {
            let params = super::Params::new()
                .set("ResourceType", EcsResourceType::Instance.as_str())
                .tags(filter)
                .non_empty("NextToken", &token);
            let page: Page = self
                .read(region, "ListTagResources", || {
                    self.client.call(
                        super::Api::Ecs,
                        "ListTagResources",
                        Some(region),
                        params.clone(),
                    )
                })
                .await?;
            ids.extend(page.tag_resources.into_iter().map(|r| r.resource_id));
            if page.next_token.is_empty() {
                return Ok(ids);
            }
            token = page.next_token;
        }
    }

    /// Instances by id, 100 per paced call.
    async fn instances_by_id(
        &self,
        region: &RegionId,
        ids: &[String],
    ) -> Result<Vec<InstanceInfo>, ProviderError> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(super::MAX_IDS_PER_CALL) {
            let q = InstanceQuery {
                ids: batch.to_vec(),
                ..InstanceQuery::default()
            };
            out.extend(
                self.read(region, "DescribeInstances", || {
                    self.client.describe_instances(region, &q)
                })
                .await?,
            );
        }
        Ok(out)
    }

    async fn wait_network(
        &self,
        m: &Mutations<'_>,
        region: &RegionId,
        kind: Kind,
        id: &str,
    ) -> Result<String, StepError> {
        let timing = (self.timing.network_ready, self.timing.poll);
        wait_available(m, region, id, timing, "the cloud", || async {
            Ok(match kind {
                Kind::Network => {
                    let q = VpcQuery {
                        ids: vec![id.to_owned()],
                        ..VpcQuery::default()
                    };
                    self.read(region, "DescribeVpcs", || {
                        self.client.describe_vpcs(region, &q)
                    })
                    .await?
                    .into_iter()
                    .find(|v| v.vpc_id == id)
                    .map(|v| v.status)
                }
                _ => {
                    let q = VSwitchQuery {
                        vswitch_id: Some(id.to_owned()),
                        ..VSwitchQuery::default()
                    };
                    self.read(region, "DescribeVSwitches", || {
                        self.client.describe_vswitches(region, &q)
                    })
                    .await?
                    .into_iter()
                    .find(|v| v.vswitch_id == id)
                    .map(|v| v.status)
                }
            })
        })
        .await
    }

    async fn rules_of(
        &self,
        region: &RegionId,
        sg: &str,
    ) -> Result<Vec<(Rule, Permission)>, ProviderError> {
        let attr = self
            .read(region, "DescribeSecurityGroupAttribute", || {
                self.client.describe_security_group_attribute(region, sg)
            })
            .await?;
        Ok(attr
            .permissions
            .into_iter()
            .filter_map(|p| rule_of(&p).map(|r| (r, p)))
            .collect())
    }

    /// Authorizes `add` and revokes `remove` on `sg`, journaled.
    async fn change_rules(
        &self,
        m: &Mutations<'_>,
        region: &RegionId,
        sg: &str,
        add: &[Rule],
        remove: &[Permission],
    ) -> Result<(), StepError> {
        for (batch_no, batch) in add.chunks(100).enumerate() {
            let perms: Vec<Permission> = batch.iter().map(permission).collect();
            let token = m.token("AuthorizeSecurityGroup", batch_no as u32);
            let params = json!({
                "RegionId": region,
                "SecurityGroupId": sg,
                "Rules": batch.iter().map(ToString::to_string).collect::<Vec<_>>(),
            });
            m.call(
                "AuthorizeSecurityGroup",
                Some(token.clone()),
                params,
                Operation::Update,
                |_: &()| vec![sg.to_owned()],
                |_| {
                    self.paced(
                        region,
                        "AuthorizeSecurityGroup",
                        self.client.authorize_security_group_with_token(
                            region,
                            sg,
                            &perms,
                            token.as_str(),
                        ),
                    )
                },
            )
            .await?;
        }
        if !remove.is_empty() {
            let params = json!({
                "RegionId": region,
                "SecurityGroupId": sg,
                "Rules": remove.iter().filter_map(rule_of).map(|r| r.to_string()).collect::<Vec<_>>(),
            });
            m.call(
                "RevokeSecurityGroup",
                None,
                params,
                Operation::Update,
                |_: &()| vec![sg.to_owned()],
                |_| {
                    self.paced(
                        region,
                        "RevokeSecurityGroup",
                        self.client.revoke_security_group(region, sg, remove),
                    )
                },
            )
            .await?;
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
        let params = json!({ "RegionId": region, "KeyPairName": name, "PublicKeyBody": public_key, "Tags": tags });
        let tag_list = tag_list(tags);
        let imported = m
            .call(
                "ImportKeyPair",
                None,
                params,
                Operation::Create,
                |k: &super::KeyPairInfo| vec![k.key_pair_name.clone()],
                |_| {
                    self.paced(
                        region,
                        "ImportKeyPair",
                        self.client
                            .import_key_pair(region, name, public_key, &tag_list),
                    )
                },
            )
            .await;
        let info = match imported {
            Ok(info) => info,
            // ImportKeyPair takes no ClientToken: a retry after a lost answer finds the key
            // it imported. Accept it only if it is ours: our tags and our key.
            Err(e) if already_exists(&e) => {
                let q = KeyPairQuery {
                    name: Some(name.to_owned()),
                    ..KeyPairQuery::default()
                };
                let found = self
                    .read(region, "DescribeKeyPairs", || {
                        self.client.describe_key_pairs(region, &q)
                    })
                    .await
                    .map_err(read_failed)?
                    .into_iter()
                    .find(|k| k.key_pair_name == name);
                let want = self.fingerprint(public_key);
                match found {
                    Some(k)
                        if tags_of(&k.tags) == *tags
                            && Some(&k.key_pair_finger_print) == want.as_ref() =>
                    {
                        k
                    }
                    _ => {
                        return Err(StepError::failed(
                            format!(
                                "a key pair named `{name}` already exists in `{region}` without this spec's tags or key"
                            ),
                            "cfxm never touches resources it did not tag; delete or rename that key pair",
                        ));
                    }
                }
            }
            Err(e) => return Err(e),
        };
        Ok(LiveResource {
            kind: Kind::KeyPair,
            id: info.key_pair_name.clone(),
            region: region.clone(),
            status: "Available".into(),
            attrs: Attrs::KeyPair {
                name: info.key_pair_name,
                fingerprint: info.key_pair_finger_print,
                public_key: public_key.to_owned(),
            },
            parent_id: None,
            tags: tags.clone(),
        })
    }

    async fn run_instances(
        &self,
        region: &RegionId,
        req: &RunInstancesRequest,
    ) -> Result<Vec<String>, ProviderError> {
        self.paced(
            region,
            "RunInstances",
            self.client.run_instances(region, req),
        )
        .await
        .map(|r| r.instance_ids)
    }
}

/// What a create call journals, enough to re-issue it identically. The variants are the API
/// actions, journaled by name.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action")]
enum CreateCall {
    CreateVpc {
        region: RegionId,
        name: String,
        cidr: String,
        tags: Tags,
    },
    CreateVSwitch {
        region: RegionId,
        vpc_id: String,
        zone: ZoneId,
        name: String,
        cidr: String,
        tags: Tags,
    },
    CreateSecurityGroup {
        region: RegionId,
        vpc_id: String,
        name: String,
        tags: Tags,
    },
}

impl AliyunProvider {
    /// Makes `call` with `token`; returns the new resource's id.
    async fn create_call(&self, call: &CreateCall, token: &str) -> Result<String, ProviderError> {
        match call {
            CreateCall::CreateVpc {
                region,
                name,
                cidr,
                tags,
            } => {
                let req = CreateVpcRequest {
                    cidr_block: cidr.clone(),
                    name: name.clone(),
                    description: Some("cfxm".into()),
                    tags: tag_list(tags),
                    client_token: Some(token.to_owned()),
                };
                self.paced(region, "CreateVpc", self.client.create_vpc(region, &req))
                    .await
                    .map(|v| v.vpc_id)
            }
            CreateCall::CreateVSwitch {
                region,
                vpc_id,
                zone,
                name,
                cidr,
                tags,
            } => {
                let req = CreateVSwitchRequest {
                    vpc_id: vpc_id.clone(),
                    zone_id: zone.to_string(),
                    cidr_block: cidr.clone(),
                    name: name.clone(),
                    description: Some("cfxm".into()),
                    tags: tag_list(tags),
                    client_token: Some(token.to_owned()),
                };
                self.paced(
                    region,
                    "CreateVSwitch",
                    self.client.create_vswitch(region, &req),
                )
                .await
            }
            CreateCall::CreateSecurityGroup {
                region,
                vpc_id,
                name,
                tags,
            } => {
                let req = CreateSecurityGroupRequest {
                    vpc_id: vpc_id.clone(),
                    name: name.clone(),
                    description: Some("cfxm".into()),
                    tags: tag_list(tags),
                    client_token: Some(token.to_owned()),
                };
                self.paced(
                    region,
                    "CreateSecurityGroup",
                    self.client.create_security_group(region, &req),
                )
                .await
            }
        }
    }

    fn action_of(call: &CreateCall) -> &'static str {
        match call {
            CreateCall::CreateVpc { .. } => "CreateVpc",
            CreateCall::CreateVSwitch { .. } => "CreateVSwitch",
            CreateCall::CreateSecurityGroup { .. } => "CreateSecurityGroup",
        }
    }

    async fn journaled_create(
        &self,
        m: &Mutations<'_>,
        call: CreateCall,
    ) -> Result<String, StepError> {
        let action = Self::action_of(&call);
        let token = m.token(action, 0);
        let params = serde_json::to_value(&call).expect("create calls serialize");
        m.call(
            action,
            Some(token.clone()),
            params,
            Operation::Create,
            |id: &String| vec![id.clone()],
            |_| self.create_call(&call, token.as_str()),
        )
        .await
    }
}

impl Provider for AliyunProvider {
    fn cloud(&self) -> CloudKind {
        self.cloud
    }

    fn kinds(&self) -> &'static [Kind] {
        &[
            Kind::Network,
            Kind::Subnet,
            Kind::SecurityGroup,
            Kind::Peers,
            Kind::KeyPair,
        ]
    }

    fn noun(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Network => "vpc",
            Kind::Gateway => "gateway",
            Kind::Subnet => "vswitch",
            Kind::SecurityGroup => "security_group",
            Kind::Peers => "peers",
            Kind::KeyPair => "key_pair",
            Kind::Image => "image",
            Kind::Hosts => "hosts",
        }
    }

    fn fingerprint(&self, public_key: &str) -> Option<String> {
        super::key_fingerprint(public_key)
    }

    fn regions(&self) -> BoxFuture<'_, Result<Vec<RegionId>, ProviderError>> {
        Box::pin(async move {
            // Region-less; paced under a pseudo-region of its own.
            let global = RegionId::new("-");
            let regions = self
                .read(&global, "DescribeRegions", || {
                    self.client.describe_regions()
                })
                .await?;
            Ok(regions
                .into_iter()
                .map(|r| RegionId::new(r.region_id))
                .collect())
        })
    }

    fn zones<'a>(
        &'a self,
        region: &'a RegionId,
    ) -> BoxFuture<'a, Result<Vec<ZoneOffer>, ProviderError>> {
        Box::pin(async move {
            let zones = self
                .read(region, "DescribeZones", || {
                    self.client.describe_zones(region, true)
                })
                .await?;
            Ok(zones
                .into_iter()
                .map(|z| ZoneOffer {
                    zone: ZoneId::new(z.zone_id),
                    types: z
                        .available_instance_types
                        .into_iter()
                        .map(InstanceType::new)
                        .collect(),
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
            let q = ImageQuery {
                image_name: Some(name.to_owned()),
                owner_alias: Some("self".into()),
                ..ImageQuery::default()
            };
            let images = self
                .read(region, "DescribeImages", || {
                    self.client.describe_images(region, &q)
                })
                .await?;
            // `ImageName` matches fuzzily; the original (and cfxm) want the exact name.
            Ok(images
                .into_iter()
                .find(|i| i.image_name == name)
                .map(|i| ImageRef {
                    id: i.image_id,
                    name: i.image_name,
                    status: i.status,
                }))
        })
    }

    fn scan<'a>(
        &'a self,
        region: &'a RegionId,
        scope: &'a TagScope,
    ) -> BoxFuture<'a, Result<RegionScan, ProviderError>> {
        Box::pin(async move {
            let filter: Vec<Tag> = scope
                .filter()
                .into_iter()
                .map(|(k, v)| Tag::new(k, v))
                .collect();
            let mut out = RegionScan::default();
            let vpcs = self
                .read(region, "DescribeVpcs", || {
                    let q = VpcQuery {
                        tags: filter.clone(),
                        ..VpcQuery::default()
                    };
                    let client = self.client.clone();
                    async move { client.describe_vpcs(region, &q).await }
                })
                .await?;
            for v in vpcs {
                let tags = tags_of(&v.tags);
                if scope.classify(&tags).is_none() {
                    continue;
                }
                out.resources.push(LiveResource {
                    kind: Kind::Network,
                    id: v.vpc_id,
                    region: region.clone(),
                    status: v.status,
                    attrs: Attrs::Network {
                        name: v.vpc_name,
                        cidr: v.cidr_block,
                    },
                    parent_id: None,
                    tags,
                });
            }
            let vswitches = self
                .read(region, "DescribeVSwitches", || {
                    let q = VSwitchQuery {
                        tags: filter.clone(),
                        ..VSwitchQuery::default()
                    };
                    let client = self.client.clone();
                    async move { client.describe_vswitches(region, &q).await }
                })
                .await?;
            for s in vswitches {
                let tags = tags_of(&s.tags);
                if scope.classify(&tags).is_none() {
                    continue;
                }
                out.resources.push(LiveResource {
                    kind: Kind::Subnet,
                    id: s.vswitch_id,
                    region: region.clone(),
                    status: s.status,
                    attrs: Attrs::Subnet {
                        name: s.vswitch_name,
                        zone: ZoneId::new(s.zone_id),
                        cidr: s.cidr_block,
                    },
                    parent_id: Some(s.vpc_id),
                    tags,
                });
            }
            let groups = self
                .read(region, "DescribeSecurityGroups", || {
                    let q = SecurityGroupQuery {
                        tags: filter.clone(),
                        ..SecurityGroupQuery::default()
                    };
                    let client = self.client.clone();
                    async move { client.describe_security_groups(region, &q).await }
                })
                .await?;
            for g in groups {
                let tags = tags_of(&g.tags);
                if scope.classify(&tags).is_none() {
                    continue;
                }
                let rules = match self.rules_of(region, &g.security_group_id).await {
                    Ok(r) => r,
                    // Deleted between the two reads.
                    Err(e) if e.class == ErrorClass::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let (peers, base): (Vec<Rule>, Vec<Rule>) = rules
                    .into_iter()
                    .map(|(r, _)| r)
                    .partition(|r| r.note == "peers");
                out.resources.push(LiveResource {
                    kind: Kind::SecurityGroup,
                    id: g.security_group_id.clone(),
                    region: region.clone(),
                    status: "Available".into(),
                    attrs: Attrs::SecurityGroup {
                        name: g.security_group_name,
                        rules: base,
                    },
                    parent_id: Some(g.vpc_id.clone()),
                    tags: tags.clone(),
                });
                if peers.is_empty() {
                    // No peer rules yet: nothing to address (a spec of one region has none).
                    continue;
                }
                out.resources.push(LiveResource {
                    kind: Kind::Peers,
                    id: g.security_group_id,
                    region: region.clone(),
                    status: "Available".into(),
                    attrs: Attrs::Peers { rules: Some(peers) },
                    parent_id: Some(g.vpc_id),
                    tags,
                });
            }
            let keys = self
                .read(region, "DescribeKeyPairs", || {
                    let q = KeyPairQuery {
                        tags: filter.clone(),
                        ..KeyPairQuery::default()
                    };
                    let client = self.client.clone();
                    async move { client.describe_key_pairs(region, &q).await }
                })
                .await?;
            for k in keys {
                let tags = tags_of(&k.tags);
                if scope.classify(&tags).is_none() {
                    continue;
                }
                out.resources.push(LiveResource {
                    kind: Kind::KeyPair,
                    id: k.key_pair_name.clone(),
                    region: region.clone(),
                    status: "Available".into(),
                    attrs: Attrs::KeyPair {
                        name: k.key_pair_name,
                        fingerprint: k.key_pair_finger_print,
                        public_key: String::new(),
                    },
                    parent_id: None,
                    tags,
                });
            }
            for i in self.scan_instances(region, &filter).await? {
                let live = live_instance(region, i);
                if scope.classify(&live.tags).is_some() {
                    out.instances.push(live);
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
            let parent_id = || {
                parent.map(|p| p.id.clone()).ok_or_else(|| {
                    StepError::failed(
                        format!("a {:?} needs its network, which is missing", want.kind()),
                        "this is a bug in cfxm's planner; please report it",
                    )
                })
            };
            match want {
                Attrs::Network { name, cidr } => {
                    let id = self
                        .journaled_create(
                            m,
                            CreateCall::CreateVpc {
                                region: region.clone(),
                                name: name.clone(),
                                cidr: cidr.clone(),
                                tags: tags.clone(),
                            },
                        )
                        .await?;
                    let status = self.wait_network(m, region, Kind::Network, &id).await?;
                    Ok(LiveResource {
                        kind: Kind::Network,
                        id,
                        region: region.clone(),
                        status,
                        attrs: want.clone(),
                        parent_id: None,
                        tags: tags.clone(),
                    })
                }
                Attrs::Subnet { name, zone, cidr } => {
                    let vpc_id = parent_id()?;
                    let id = self
                        .journaled_create(
                            m,
                            CreateCall::CreateVSwitch {
                                region: region.clone(),
                                vpc_id: vpc_id.clone(),
                                zone: zone.clone(),
                                name: name.clone(),
                                cidr: cidr.clone(),
                                tags: tags.clone(),
                            },
                        )
                        .await?;
                    let status = self.wait_network(m, region, Kind::Subnet, &id).await?;
                    Ok(LiveResource {
                        kind: Kind::Subnet,
                        id,
                        region: region.clone(),
                        status,
                        attrs: want.clone(),
                        parent_id: Some(vpc_id),
                        tags: tags.clone(),
                    })
                }
                Attrs::SecurityGroup { name, rules } => {
                    let vpc_id = parent_id()?;
                    let id = self
                        .journaled_create(
                            m,
                            CreateCall::CreateSecurityGroup {
                                region: region.clone(),
                                vpc_id: vpc_id.clone(),
                                name: name.clone(),
                                tags: tags.clone(),
                            },
                        )
                        .await?;
                    self.change_rules(m, region, &id, rules, &[]).await?;
                    Ok(LiveResource {
                        kind: Kind::SecurityGroup,
                        id,
                        region: region.clone(),
                        status: "Available".into(),
                        attrs: want.clone(),
                        parent_id: Some(vpc_id),
                        tags: tags.clone(),
                    })
                }
                Attrs::Peers { rules } => {
                    // The peers' rules live on the security group (the parent here).
                    let parent = parent.ok_or_else(|| {
                        StepError::failed(
                            "peer rules need their security group, which is missing",
                            "this is a bug in cfxm's planner; please report it",
                        )
                    })?;
                    let rules = rules.clone().unwrap_or_default();
                    self.change_rules(m, region, &parent.id, &rules, &[])
                        .await?;
                    Ok(LiveResource {
                        kind: Kind::Peers,
                        id: parent.id.clone(),
                        region: region.clone(),
                        status: "Available".into(),
                        attrs: Attrs::Peers { rules: Some(rules) },
                        parent_id: parent.parent_id.clone(),
                        tags: tags.clone(),
                    })
                }
                Attrs::KeyPair {
                    name, public_key, ..
                } => self.import_key(m, region, name, public_key, tags).await,
                Attrs::Gateway { .. } | Attrs::Image { .. } | Attrs::Hosts(_) => {
                    Err(StepError::failed(
                        format!("Aliyun has no {:?} resource to create", want.kind()),
                        "this is a bug in cfxm's planner; please report it",
                    ))
                }
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
            // Read the rules now: the plan's view may be minutes old.
            let current = self.rules_of(region, &live.id).await.map_err(read_failed)?;
            let (wanted, managed_note): (Vec<Rule>, fn(&str) -> bool) = match want {
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
                .filter(|(r, _)| managed_note(&r.note))
                .map(|(r, _)| r.key())
                .collect();
            let add: Vec<Rule> = wanted
                .iter()
                .filter(|r| !have.contains(&r.key()))
                .cloned()
                .collect();
            let want_keys: BTreeSet<_> = wanted.iter().map(Rule::key).collect();
            let remove: Vec<Permission> = current
                .iter()
                .filter(|(r, _)| managed_note(&r.note) && !want_keys.contains(&r.key()))
                .map(|(_, p)| p.clone())
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
            let params = json!({ "RegionId": region, "Id": id });
            let result = match live.kind {
                Kind::Network => {
                    m.call("DeleteVpc", None, params, Operation::Delete, none, |_| {
                        self.paced(region, "DeleteVpc", self.client.delete_vpc(region, id))
                    })
                    .await
                }
                Kind::Subnet => {
                    m.call(
                        "DeleteVSwitch",
                        None,
                        params,
                        Operation::Delete,
                        none,
                        |_| {
                            self.paced(
                                region,
                                "DeleteVSwitch",
                                self.client.delete_vswitch(region, id),
                            )
                        },
                    )
                    .await
                }
                Kind::SecurityGroup => {
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
                                self.client.delete_security_group(region, id),
                            )
                        },
                    )
                    .await
                }
                Kind::KeyPair => {
                    let names = [id.to_owned()];
                    m.call(
                        "DeleteKeyPairs",
                        None,
                        params,
                        Operation::Delete,
                        none,
                        |_| {
                            self.paced(
                                region,
                                "DeleteKeyPairs",
                                self.client.delete_key_pairs(region, &names),
                            )
                        },
                    )
                    .await
                }
                Kind::Peers => {
                    let current = match self.rules_of(region, id).await {
                        Ok(r) => r,
                        Err(e) if e.class == ErrorClass::NotFound => return Ok(()),
                        Err(e) => return Err(read_failed(e)),
                    };
                    let remove: Vec<Permission> = current
                        .into_iter()
                        .filter(|(r, _)| r.note == "peers")
                        .map(|(_, p)| p)
                        .collect();
                    self.change_rules(m, region, id, &[], &remove).await
                }
                Kind::Gateway | Kind::Image | Kind::Hosts => Ok(()),
            };
            match result {
                Err(e) if e.is_done() => Ok(()),
                other => other,
            }
        })
    }

    fn launch<'a>(
        &'a self,
        m: &'a Mutations<'a>,
        batch: &'a Launch,
        token: ClientToken,
    ) -> BoxFuture<'a, Result<Vec<String>, StepError>> {
        Box::pin(async move {
            let req = run_request(batch, &token);
            let params = serde_json::to_value(batch).expect("launches serialize");
            m.call(
                "RunInstances",
                Some(token),
                params,
                Operation::Create,
                Clone::clone,
                |_| self.run_instances(&batch.region, &req),
            )
            .await
        })
    }

    fn instance_status<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<(String, HostStatus)>, ProviderError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(ids.len());
            for batch in ids.chunks(super::MAX_IDS_PER_CALL) {
                let rows = self
                    .read(region, "DescribeInstanceStatus", || {
                        self.client.describe_instance_status(region, batch)
                    })
                    .await?;
                out.extend(
                    rows.into_iter()
                        .map(|r| (r.instance_id, host_status(r.status))),
                );
            }
            Ok(out)
        })
    }

    fn describe_instances<'a>(
        &'a self,
        region: &'a RegionId,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<LiveInstance>, ProviderError>> {
        Box::pin(async move {
            let found = self.instances_by_id(region, ids).await?;
            Ok(found
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
            delete_instances_in_rounds(
                region,
                "deleted",
                ids,
                super::MAX_IDS_PER_CALL,
                move |left: Vec<String>| async move {
                    let params = json!({ "RegionId": region, "InstanceIds": left, "Force": true });
                    m.call(
                        "DeleteInstances",
                        None,
                        params,
                        Operation::Delete,
                        |_: &()| left.clone(),
                        |_| {
                            self.paced(
                                region,
                                "DeleteInstances",
                                self.client.delete_instances(region, &left, true),
                            )
                        },
                    )
                    .await
                },
                move |left: Vec<String>| async move {
                    Ok(self
                        .instance_status(region, &left)
                        .await
                        .map_err(read_failed)?
                        .into_iter()
                        .filter(|(_, s)| *s != HostStatus::Stopping)
                        .map(|(id, _)| id)
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
            let Some(token) = intent.client_token.clone() else {
                return Ok(None);
            };
            let again =
                |result: Result<Vec<String>, crate::apply::retry::Stopped<ProviderError>>| {
                    result
                        .map(Some)
                        .map_err(|s| StepError::from(crate::apply::MutationError::Call(s)))
                };
            match intent.action.as_str() {
                "RunInstances" => {
                    let Ok(batch) = serde_json::from_value::<Launch>(intent.params.clone()) else {
                        return Ok(None);
                    };
                    let req = run_request(&batch, &token);
                    again(
                        retry(m.policy, Operation::Create, m.step, |_| {
                            self.run_instances(&batch.region, &req)
                        })
                        .await,
                    )
                }
                "CreateVpc" | "CreateVSwitch" | "CreateSecurityGroup" => {
                    let Ok(call) = serde_json::from_value::<CreateCall>(intent.params.clone())
                    else {
                        return Ok(None);
                    };
                    again(
                        retry(m.policy, Operation::Create, m.step, |_| async {
                            self.create_call(&call, token.as_str())
                                .await
                                .map(|id| vec![id])
                        })
                        .await,
                    )
                }
                _ => Ok(None),
            }
        })
    }
}

fn none(_: &()) -> Vec<String> {
    Vec::new()
}

fn already_exists(e: &StepError) -> bool {
    matches!(e, StepError::Mutation(_))
        && e.call()
            .is_some_and(|s| s.error.code.ends_with("AlreadyExist"))
}

fn run_request(batch: &Launch, token: &ClientToken) -> RunInstancesRequest {
    let s = &batch.settings;
    RunInstancesRequest {
        zone_id: Some(batch.zone.to_string()),
        image_id: batch.image_id.clone(),
        instance_type: batch.instance_type.to_string(),
        security_group_id: batch.security_group_id.clone(),
        vswitch_id: batch.subnet_id.clone(),
        key_pair_name: Some(batch.key_pair.clone()),
        instance_name: Some(batch.name.clone()),
        host_name: None,
        amount: batch.amount,
        min_amount: Some(batch.min_amount),
        client_token: Some(token.to_string()),
        tags: tag_list(&batch.tags),
        internet_max_bandwidth_out: s.bandwidth_mbps,
        internet_charge_type: (s.bandwidth_mbps > 0).then(|| "PayByTraffic".to_owned()),
        system_disk_category: Some(s.disk_category.clone()),
        system_disk_size_gb: Some(s.disk_gb),
        instance_charge_type: Some("PostPaid".into()),
        spot_strategy: Some(if s.spot { "SpotAsPriceGo" } else { "NoSpot" }.into()),
        user_data: None,
        dry_run: false,
    }
}

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::new(k, v)).collect()
}

fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect::<BTreeMap<_, _>>()
}

fn host_status(s: InstanceStatus) -> HostStatus {
    match s {
        InstanceStatus::Pending => HostStatus::Pending,
        InstanceStatus::Starting => HostStatus::Starting,
        InstanceStatus::Running => HostStatus::Running,
        InstanceStatus::Stopping => HostStatus::Stopping,
        InstanceStatus::Stopped => HostStatus::Stopped,
        InstanceStatus::Unknown => HostStatus::Unknown,
    }
}

fn live_instance(region: &RegionId, i: InstanceInfo) -> LiveInstance {
    LiveInstance {
        public_ip: i.public_ip().and_then(|a| a.parse().ok()),
        private_ip: i.private_ip().and_then(|a| a.parse().ok()),
        id: i.instance_id,
        region: region.clone(),
        zone: ZoneId::new(i.zone_id),
        instance_type: InstanceType::new(i.instance_type),
        status: host_status(i.status),
        subnet_id: i.vpc_attributes.vswitch_id,
        key_pair: i.key_pair_name,
        tags: tags_of(&i.tags),
    }
}

/// A cloud rule as cfxm's [`Rule`]; `None` for rules cfxm never writes (non-TCP, egress,
/// group sources), which it leaves alone.
fn rule_of(p: &Permission) -> Option<Rule> {
    if !p.ip_protocol.eq_ignore_ascii_case("tcp") || p.source_cidr_ip.is_empty() {
        return None;
    }
    if !p.policy.is_empty() && !p.policy.eq_ignore_ascii_case("accept") {
        return None;
    }
    let (a, b) = p.port_range.split_once('/')?;
    Some(Rule {
        protocol: "tcp".into(),
        from_port: a.parse().ok()?,
        to_port: b.parse().ok()?,
        source: p.source_cidr_ip.clone(),
        note: Rule::note_of(&p.description),
    })
}

fn permission(r: &Rule) -> Permission {
    let mut p = Permission::tcp(r.from_port, r.to_port, &r.source);
    p.description = r.description();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_permissions_and_foreign_rules_are_left_alone() {
        let r = Rule::tcp(11000, 11009, "10.0.0.0/16", "vpc");
        let p = permission(&r);
        assert_eq!(p.port_range, "11000/11009");
        assert_eq!(p.description, "cfxm:vpc");
        assert_eq!(rule_of(&p), Some(r));
        let mut udp = p.clone();
        udp.ip_protocol = "UDP".into();
        assert_eq!(rule_of(&udp), None);
        let mut drop = p.clone();
        drop.policy = "Drop".into();
        assert_eq!(rule_of(&drop), None);
        let mut accept = p;
        accept.policy = "Accept".into();
        accept.ip_protocol = "TCP".into();
        assert!(rule_of(&accept).is_some());
    }

    #[test]
    fn a_launch_becomes_one_tagged_run_instances_with_min_amount() {
        let batch = Launch {
            region: RegionId::new("ap-southeast-1"),
            zone: ZoneId::new("ap-southeast-1a"),
            subnet_id: "vsw-1".into(),
            security_group_id: "sg-1".into(),
            image_id: "m-1".into(),
            key_pair: "kp".into(),
            instance_type: InstanceType::new("ecs.g8i.2xlarge"),
            amount: 100,
            min_amount: 1,
            settings: crate::provider::resource::InstanceSettings {
                disk_gb: 40,
                disk_category: "cloud_essd".into(),
                bandwidth_mbps: 100,
                public_ip: true,
                spot: false,
            },
            name: "conflux-massive-test-alice-x".into(),
            tags: TagScope::create_tags(
                &crate::spec::Owner::new("alice"),
                &crate::spec::SpecName::new("x"),
            ),
        };
        let token = ClientToken::new("cfxm-1-0").unwrap();
        let req = run_request(&batch, &token);
        assert_eq!((req.amount, req.min_amount), (100, Some(1)));
        assert_eq!(req.client_token.as_deref(), Some("cfxm-1-0"));
        assert_eq!(req.tags.len(), 3);
        assert_eq!(req.internet_charge_type.as_deref(), Some("PayByTraffic"));
        assert_eq!(req.spot_strategy.as_deref(), Some("NoSpot"));
        // Journaled as the launch itself, so a re-issue rebuilds the same request.
        let back: Launch = serde_json::from_value(serde_json::to_value(&batch).unwrap()).unwrap();
        assert_eq!(run_request(&back, &token).tags, req.tags);
    }
}
