//! The ECS actions (version `2014-05-26`): parse the wire parameters, act on the [`World`],
//! render the wire JSON with its wrappers and ECS tag shape (`TagKey`/`TagValue`), and page as
//! each action pages (aliyun-api.md §3.2–§3.7). The ECS API's legacy network actions
//! (`CreateVpc`, `DescribeVSwitches`, …) are the VPC module's, answered in the ECS shape.

use serde_json::{Value, json};

use super::actions::{Ctx, NumberPaging, TokenPaging, View, ecs_tags, wildcard};
use super::clock::{ecs_minutes, seconds};
use super::error::ApiError;
use super::params::Params;
use super::world::{Instance, Rule, RunArgs, World, matches_tags, unsupported_resource_type};
use crate::provider::aliyun::{Api, InstanceStatus};

/// Runs a read-only ECS action (`Describe*`, `List*`); `None` when not one the emulator has.
pub fn handle_read(
    action: &str,
    p: &Params,
    w: &World,
    v: &View<'_>,
) -> Option<Result<Value, ApiError>> {
    let r = match action {
        "DescribeRegions" => describe_regions(w),
        "DescribeZones" => describe_zones(p, w, v),
        "DescribeAvailableResource" => describe_available_resource(p, w, v),
        "DescribeInstanceTypes" => describe_instance_types(p, w),
        "DescribeImages" => describe_images(p, w, v),
        "DescribeSecurityGroups" => describe_security_groups(p, w, v),
        "DescribeSecurityGroupAttribute" => describe_security_group_attribute(p, w, v),
        "DescribeKeyPairs" => describe_key_pairs(p, w, v),
        "DescribeInstances" => describe_instances(p, w, v),
        "DescribeInstanceStatus" => describe_instance_status(p, w, v),
        "ListTagResources" => list_tag_resources(p, w, v),
        _ => return super::vpc::network_read(Api::Ecs, action, p, w, v),
    };
    Some(r)
}

/// Runs an ECS action that changes the world; `None` when not one the emulator has.
pub fn handle_write(
    action: &str,
    p: &Params,
    w: &mut World,
    ctx: &mut Ctx<'_>,
) -> Option<Result<Value, ApiError>> {
    let r = match action {
        "CreateImage" => create_image(p, w, ctx),
        "CopyImage" => copy_image(p, w, ctx),
        "DeleteImage" => p
            .required("ImageId")
            .and_then(|id| {
                w.delete_image(ctx.region, id, p.bool("Force")?.unwrap_or(false), ctx.now)
            })
            .map(|()| json!({})),
        "CreateSecurityGroup" => create_security_group(p, w, ctx),
        "AuthorizeSecurityGroup" => authorize(p, w, ctx),
        "RevokeSecurityGroup" => revoke(p, w, ctx),
        "DeleteSecurityGroup" => p
            .required("SecurityGroupId")
            .and_then(|id| w.delete_security_group(ctx.region, id))
            .map(|()| json!({})),
        "ImportKeyPair" => import_key_pair(p, w, ctx),
        "DeleteKeyPairs" => delete_key_pairs(p, w, ctx),
        "RunInstances" => run_instances(p, w, ctx),
        "DeleteInstances" => delete_instances(p, w, ctx),
        "TagResources" => tag_resources(p, w, ctx),
        _ => return super::vpc::network_write(Api::Ecs, action, p, w, ctx),
    };
    Some(r)
}

fn describe_regions(w: &World) -> Result<Value, ApiError> {
    let regions: Vec<Value> = w
        .regions
        .values()
        .map(|r| {
            json!({
                "RegionId": r.id,
                "LocalName": r.local_name,
                "RegionEndpoint": format!("ecs.{}.aliyuncs.com", r.id),
                "Status": "available",
            })
        })
        .collect();
    Ok(json!({ "Regions": { "Region": regions } }))
}

const DISK_CATEGORIES: [&str; 4] = ["cloud_essd", "cloud_efficiency", "cloud_ssd", "cloud_auto"];

fn describe_zones(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let verbose = p.bool("Verbose")?.unwrap_or(true);
    let zones: Vec<Value> = region
        .zones
        .iter()
        .map(|z| {
            let mut v = json!({
                "ZoneId": z.id,
                "LocalName": z.local_name,
                "ZoneType": "AvailabilityZone",
            });
            if verbose {
                let types: Vec<&String> = z.stock.keys().collect();
                v["AvailableInstanceTypes"] = json!({ "InstanceTypes": types });
                v["AvailableResourceCreation"] =
                    json!({ "ResourceTypes": ["VSwitch", "IoOptimized", "Instance", "Disk"] });
                v["AvailableDiskCategories"] = json!({ "DiskCategories": DISK_CATEGORIES });
                v["AvailableVolumeCategories"] = json!({ "VolumeCategories": [] });
                v["AvailableResources"] = json!({ "ResourcesInfo": [{
                    "IoOptimized": true,
                    "InstanceTypes": { "supportedInstanceType": types },
                    "SystemDiskCategories": { "supportedSystemDiskCategory": DISK_CATEGORIES },
                    "DataDiskCategories": { "supportedDataDiskCategory": DISK_CATEGORIES },
                    "NetworkTypes": { "supportedNetworkCategory": ["vpc"] },
                }]});
            }
            v
        })
        .collect();
    Ok(json!({ "Zones": { "Zone": zones } }))
}

fn stock_status(n: u64) -> (&'static str, &'static str) {
    if n > 0 {
        ("Available", "WithStock")
    } else {
        ("SoldOut", "WithoutStock")
    }
}

fn describe_available_resource(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let dest = p.required("DestinationResource")?;
    let want_zone = p.get("ZoneId");
    let want_type = p.get("InstanceType");
    if dest == "SystemDisk" && want_type.is_none() {
        return Err(ApiError::missing("InstanceType"));
    }
    let mut zones = Vec::new();
    for z in region
        .zones
        .iter()
        .filter(|z| want_zone.is_none_or(|id| id == z.id))
    {
        let on_sale: Vec<(&String, u64)> = z
            .stock
            .iter()
            .filter(|(t, _)| want_type.is_none_or(|w| w == t.as_str()))
            .map(|(t, n)| (t, *n))
            .collect();
        if want_type.is_some() && on_sale.is_empty() {
            continue;
        }
        let total: u64 = on_sale.iter().map(|(_, n)| n).sum();
        let (zone_status, zone_category) = stock_status(total);
        let supported: Vec<Value> = match dest {
            "Zone" => vec![json!({"Value": z.id, "Status": zone_status, "StatusCategory": zone_category})],
            "InstanceType" => on_sale
                .iter()
                .map(|(t, n)| {
                    let (s, c) = stock_status(*n);
                    json!({"Value": t, "Status": s, "StatusCategory": c})
                })
                .collect(),
            "SystemDisk" | "DataDisk" => DISK_CATEGORIES
                .iter()
                .map(|c| json!({"Value": c, "Status": "Available", "StatusCategory": "WithStock", "Min": 20, "Max": 32768, "Unit": "GiB"}))
                .collect(),
            "Network" => vec![json!({"Value": "vpc", "Status": "Available", "StatusCategory": "WithStock"})],
            "IoOptimized" => vec![json!({"Value": "optimized", "Status": "Available", "StatusCategory": "WithStock"})],
            other => {
                return Err(ApiError::invalid(format!(
                    "The DestinationResource `{other}` is not one of Zone, IoOptimized, InstanceType, Network, SystemDisk, DataDisk."
                )));
            }
        };
        zones.push(json!({
            "RegionId": region.id,
            "ZoneId": z.id,
            "Status": zone_status,
            "StatusCategory": zone_category,
            "AvailableResources": { "AvailableResource": [{
                "Type": dest,
                "SupportedResources": { "SupportedResource": supported },
            }]},
        }));
    }
    Ok(json!({ "AvailableZones": { "AvailableZone": zones } }))
}

fn describe_instance_types(p: &Params, w: &World) -> Result<Value, ApiError> {
    let wanted = p.list("InstanceTypes");
    if wanted.len() > 10 {
        return Err(ApiError::invalid(
            "At most 10 InstanceTypes.N may be given.",
        ));
    }
    let family = p.get("InstanceTypeFamily");
    let paging = TokenPaging::parse(p, 1600, 1600)?;
    let rows: Vec<(String, Value)> = w
        .types
        .values()
        .filter(|t| wanted.is_empty() || wanted.contains(&t.id))
        .filter(|t| family.is_none_or(|f| t.family() == f))
        .map(|t| {
            (
                t.id.clone(),
                json!({
                    "InstanceTypeId": t.id,
                    "InstanceTypeFamily": t.family(),
                    "InstanceFamilyLevel": "EnterpriseLevel",
                    "CpuCoreCount": t.cpu,
                    "MemorySize": t.memory_gib,
                    "CpuArchitecture": t.arch,
                    "GPUAmount": 0,
                    "GPUSpec": "",
                    "EniQuantity": 4,
                }),
            )
        })
        .collect();
    let (page, next) = paging.page(rows);
    Ok(json!({ "InstanceTypes": { "InstanceType": page }, "NextToken": next }))
}

fn image_json(i: &super::world::Image, now: i64) -> Value {
    json!({
        "ImageId": i.id,
        "ImageName": i.name,
        "ImageFamily": "",
        "ImageOwnerAlias": i.owner,
        "Status": i.status(now),
        "Progress": i.progress(now),
        "Size": i.size_gb,
        "OSType": i.os_type,
        "OSName": if i.owner == "system" { "Ubuntu" } else { "Ubuntu (custom)" },
        "Architecture": "x86_64",
        "Platform": "Ubuntu",
        "Description": i.description,
        "CreationTime": seconds(i.created_ms.max(0)),
        "IsCopied": i.copied_from.is_some(),
        "IsSelfShared": "",
        "Usage": "instance",
        "Tags": ecs_tags(&i.tags),
        "DiskDeviceMappings": { "DiskDeviceMapping": [{ "Device": "/dev/xvda", "Size": i.size_gb.to_string(), "Type": "system" }] },
    })
}

fn describe_images(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let ids: Vec<&str> = p
        .get("ImageId")
        .map(|s| s.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let name = p.get("ImageName");
    let owner = p.get("ImageOwnerAlias");
    // The service lists only `Available` images unless asked for other states.
    let statuses: Vec<&str> = p
        .get("Status")
        .unwrap_or("Available")
        .split(',')
        .map(str::trim)
        .collect();
    let tags = p.tags()?;
    let paging = NumberPaging::parse(p, 10, 100)?;
    let rows: Vec<Value> = region
        .images
        .values()
        .filter(|i| ctx.visible(i.created_ms))
        .filter(|i| ids.is_empty() || ids.contains(&i.id.as_str()))
        .filter(|i| name.is_none_or(|n| i.name.contains(n)))
        .filter(|i| match owner {
            None => i.owner == "system" || i.owner == "self",
            Some(o) => i.owner == o,
        })
        .filter(|i| statuses.contains(&i.status(ctx.now)))
        .filter(|i| matches_tags(&i.tags, &tags))
        .map(|i| image_json(i, ctx.now))
        .collect();
    let total = rows.len();
    Ok(json!({
        "Images": { "Image": paging.page(rows) },
        "TotalCount": total,
        "PageNumber": paging.number,
        "PageSize": paging.size,
        "RegionId": region.id,
    }))
}

fn create_image(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let instance = p
        .get("InstanceId")
        .ok_or_else(|| ApiError::missing("InstanceId"))?;
    let name = p.required("ImageName")?;
    let image = w.create_image(
        ctx.region,
        instance,
        name,
        &p.string("Description"),
        p.tags()?,
        ctx.now,
        ctx.knobs.delays(),
        ctx.rng,
    )?;
    Ok(json!({ "ImageId": image.id }))
}

fn copy_image(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let image = w.copy_image(
        ctx.region,
        p.required("ImageId")?,
        p.required("DestinationRegionId")?,
        p.get("DestinationImageName"),
        p.tags()?,
        ctx.now,
        ctx.knobs.delays(),
        ctx.rng,
    )?;
    Ok(json!({ "ImageId": image.id }))
}

fn create_security_group(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    if let Some(t) = p.get("SecurityGroupType")
        && t != "normal"
        && t != "enterprise"
    {
        return Err(ApiError::invalid(
            "SecurityGroupType must be `normal` or `enterprise`.",
        ));
    }
    let sg = w.create_security_group(
        ctx.region,
        &p.string("VpcId"),
        &p.string("SecurityGroupName"),
        &p.string("Description"),
        p.tags()?,
        ctx.now,
        ctx.rng,
    )?;
    Ok(json!({ "SecurityGroupId": sg.id }))
}

fn authorize(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let sg = p.required("SecurityGroupId")?;
    let rules = permissions(p, ctx)?;
    w.authorize(ctx.region, sg, rules, ctx.rng)?;
    Ok(json!({}))
}

/// `RevokeSecurityGroup`: removes the ingress rules matching protocol, ports, source and policy;
/// rules that do not exist are ignored, as by the service.
fn revoke(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let sg = p.required("SecurityGroupId")?;
    let rules = permissions(p, ctx)?;
    w.revoke(ctx.region, sg, &rules)?;
    Ok(json!({}))
}

/// The `Permissions.N.*` rules of an Authorize/Revoke call (or its deprecated flat form).
fn permissions(p: &Params, ctx: &Ctx<'_>) -> Result<Vec<Rule>, ApiError> {
    let mut groups = p.groups("Permissions");
    // The deprecated flat form: top-level IpProtocol / PortRange / SourceCidrIp.
    if groups.is_empty() && p.get("IpProtocol").is_some() {
        let mut g = std::collections::BTreeMap::new();
        for k in [
            "IpProtocol",
            "PortRange",
            "SourceCidrIp",
            "Policy",
            "Priority",
            "Description",
        ] {
            if let Some(v) = p.get(k) {
                g.insert(k.to_string(), v.to_string());
            }
        }
        groups.push(g);
    }
    if groups.is_empty() {
        return Err(ApiError::missing("Permissions.1.IpProtocol"));
    }
    if groups.len() > 100 {
        return Err(ApiError::invalid("At most 100 Permissions.N may be given."));
    }
    let mut rules = Vec::new();
    for g in groups {
        let get = |k: &str| g.get(k).cloned().unwrap_or_default();
        let proto = get("IpProtocol").to_ascii_uppercase();
        if !["TCP", "UDP", "ICMP", "GRE", "ALL", "ICMPV6"].contains(&proto.as_str())
            && proto.parse::<u8>().is_err()
        {
            return Err(ApiError::bad(
                "InvalidIpProtocol.Malformed",
                format!("The IpProtocol `{proto}` is invalid."),
            ));
        }
        let range = get("PortRange");
        let ok_range = range.split_once('/').is_some_and(|(a, b)| {
            match (a.parse::<i32>(), b.parse::<i32>()) {
                (Ok(-1), Ok(-1)) => true,
                (Ok(a), Ok(b)) => (1..=65535).contains(&a) && (a..=65535).contains(&b),
                _ => false,
            }
        });
        if !ok_range {
            return Err(ApiError::bad(
                "InvalidPortRange.Malformed",
                format!("The PortRange `{range}` is invalid."),
            ));
        }
        let source = get("SourceCidrIp");
        if !source.is_empty()
            && source.parse::<crate::spec::Cidr>().is_err()
            && source.parse::<std::net::Ipv4Addr>().is_err()
        {
            return Err(ApiError::bad(
                "InvalidSourceCidrIp.Malformed",
                format!("The SourceCidrIp `{source}` is invalid."),
            ));
        }
        let policy = g
            .get("Policy")
            .cloned()
            .unwrap_or_else(|| "accept".into())
            .to_ascii_lowercase();
        if policy != "accept" && policy != "drop" {
            return Err(ApiError::invalid("Policy must be `accept` or `drop`."));
        }
        rules.push(Rule {
            ip_protocol: proto,
            port_range: range,
            source_cidr_ip: source,
            policy,
            priority: g.get("Priority").cloned().unwrap_or_else(|| "1".into()),
            description: get("Description"),
            created_ms: ctx.now,
            id: String::new(),
        });
    }
    Ok(rules)
}

fn describe_security_groups(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let mut ids = p.json_list("SecurityGroupIds")?;
    if ids.len() > 100 {
        return Err(ApiError::invalid(
            "At most 100 SecurityGroupIds may be given.",
        ));
    }
    if let Some(id) = p.get("SecurityGroupId") {
        ids.push(id.to_string());
    }
    let vpc = p.get("VpcId");
    let name = p.get("SecurityGroupName");
    let tags = p.tags()?;
    let rows: Vec<&super::world::SecurityGroup> = region
        .security_groups
        .values()
        .filter(|g| ctx.visible(g.created_ms))
        .filter(|g| ids.is_empty() || ids.contains(&g.id))
        .filter(|g| vpc.is_none_or(|v| v == g.vpc_id))
        .filter(|g| name.is_none_or(|n| n == g.name))
        .filter(|g| matches_tags(&g.tags, &tags))
        .collect();
    let render = |g: &super::world::SecurityGroup| {
        let ecs_count = region
            .instances
            .values()
            .filter(|i| i.security_group_ids.contains(&g.id))
            .count();
        json!({
            "SecurityGroupId": g.id,
            "SecurityGroupName": g.name,
            "Description": g.description,
            "VpcId": g.vpc_id,
            "SecurityGroupType": "normal",
            "CreationTime": seconds(g.created_ms),
            "RuleCount": g.rules.len(),
            "EcsCount": ecs_count,
            "AvailableInstanceAmount": 2000usize.saturating_sub(ecs_count),
            "ResourceGroupId": "",
            "ServiceManaged": false,
            "Tags": ecs_tags(&g.tags),
        })
    };
    let total = rows.len();
    let token_mode = p.get("NextToken").is_some() || p.get("MaxResults").is_some();
    if !token_mode && (p.get("PageNumber").is_some() || p.get("PageSize").is_some()) {
        let paging = NumberPaging::parse(p, 10, 50)?;
        let page: Vec<Value> = paging.page(rows).into_iter().map(render).collect();
        return Ok(json!({
            "SecurityGroups": { "SecurityGroup": page },
            "TotalCount": total, "PageNumber": paging.number, "PageSize": paging.size, "RegionId": region.id,
        }));
    }
    let paging = TokenPaging::parse(p, 10, 100)?;
    let (page, next) = paging.page(rows.into_iter().map(|g| (g.id.as_str(), g)));
    let page: Vec<Value> = page.into_iter().map(render).collect();
    let mut answer = json!({
        "SecurityGroups": { "SecurityGroup": page },
        "NextToken": next,
        "RegionId": region.id,
    });
    // A request that chose no paging style is page 1 of both: scripts that page by number
    // (the original tool) read `TotalCount` from it. Token paging alone has no total.
    if !token_mode {
        answer["TotalCount"] = json!(total);
        answer["PageNumber"] = json!(1);
        answer["PageSize"] = json!(paging.max);
    }
    Ok(answer)
}

fn describe_security_group_attribute(
    p: &Params,
    w: &World,
    ctx: &View<'_>,
) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let id = p.required("SecurityGroupId")?;
    let sg = region
        .security_groups
        .get(id)
        .ok_or_else(|| super::world::sg_not_found(id))?;
    let direction = p.get("Direction").unwrap_or("all");
    let rules: Vec<Value> = if direction == "egress" {
        Vec::new()
    } else {
        sg.rules
            .iter()
            .map(|r| {
                json!({
                    "SecurityGroupRuleId": r.id,
                    "Direction": "ingress",
                    "IpProtocol": r.ip_protocol,
                    "PortRange": r.port_range,
                    "SourceCidrIp": r.source_cidr_ip,
                    "SourcePortRange": "",
                    "DestCidrIp": "",
                    "Policy": if r.policy == "accept" { "Accept" } else { "Drop" },
                    "Priority": r.priority,
                    "NicType": "intranet",
                    "Description": r.description,
                    "CreateTime": seconds(r.created_ms),
                })
            })
            .collect()
    };
    Ok(json!({
        "SecurityGroupId": sg.id,
        "SecurityGroupName": sg.name,
        "Description": sg.description,
        "VpcId": sg.vpc_id,
        "RegionId": region.id,
        "InnerAccessPolicy": "Accept",
        "Permissions": { "Permission": rules },
    }))
}

fn import_key_pair(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let kp = w.import_key_pair(
        ctx.region,
        p.required("KeyPairName")?,
        p.required("PublicKeyBody")?,
        p.tags()?,
        ctx.now,
    )?;
    Ok(json!({ "KeyPairName": kp.name, "KeyPairFingerPrint": kp.fingerprint }))
}

fn describe_key_pairs(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let name = p.get("KeyPairName");
    let fingerprint = p.get("KeyPairFingerPrint");
    let tags = p.tags()?;
    let with_key = p.bool("IncludePublicKey")?.unwrap_or(false);
    let paging = NumberPaging::parse(p, 10, 50)?;
    let rows: Vec<Value> = region
        .key_pairs
        .values()
        .filter(|k| ctx.visible(k.created_ms))
        .filter(|k| name.is_none_or(|n| wildcard(n, &k.name)))
        .filter(|k| fingerprint.is_none_or(|f| f == k.fingerprint))
        .filter(|k| matches_tags(&k.tags, &tags))
        .map(|k| {
            let mut v = json!({
                "KeyPairName": k.name,
                "KeyPairFingerPrint": k.fingerprint,
                "CreationTime": seconds(k.created_ms),
                "ResourceGroupId": "",
                "Tags": ecs_tags(&k.tags),
            });
            if with_key {
                v["PublicKey"] = json!(k.public_key);
            }
            v
        })
        .collect();
    let total = rows.len();
    Ok(json!({
        "KeyPairs": { "KeyPair": paging.page(rows) },
        "TotalCount": total,
        "PageNumber": paging.number,
        "PageSize": paging.size,
    }))
}

fn delete_key_pairs(p: &Params, w: &mut World, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let names = p.json_list("KeyPairNames")?;
    if names.is_empty() {
        return Err(ApiError::missing("KeyPairNames"));
    }
    if names.len() > 100 {
        return Err(ApiError::invalid("At most 100 KeyPairNames may be given."));
    }
    w.delete_key_pairs(ctx.region, &names)?;
    Ok(json!({}))
}

fn run_instances(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let mut groups = p.list("SecurityGroupIds");
    if let Some(sg) = p.get("SecurityGroupId") {
        groups.insert(0, sg.to_string());
    }
    let amount = p.u64("Amount")?.unwrap_or(1);
    let min_amount = p.u64("MinAmount")?;
    let to_u32 = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let spot = p.get("SpotStrategy").unwrap_or("NoSpot");
    if !["NoSpot", "SpotAsPriceGo", "SpotWithPriceLimit"].contains(&spot) {
        return Err(ApiError::invalid(format!(
            "The SpotStrategy `{spot}` is invalid."
        )));
    }
    let bandwidth = p.u64("InternetMaxBandwidthOut")?.unwrap_or(0);
    if bandwidth > 100 {
        return Err(ApiError::bad(
            "InvalidInternetMaxBandwidthOut.Malformed",
            "InternetMaxBandwidthOut must be between 0 and 100.",
        ));
    }
    let disk_size = p.u64("SystemDisk.Size")?.unwrap_or(40);
    if !(20..=2048).contains(&disk_size) {
        return Err(ApiError::bad(
            "InvalidSystemDiskSize.ValueNotSupported",
            "SystemDisk.Size must be between 20 and 2048 GiB.",
        ));
    }
    let args = RunArgs {
        zone_id: p.get("ZoneId").map(str::to_string),
        image_id: p.required("ImageId")?.to_string(),
        instance_type: p.required("InstanceType")?.to_string(),
        security_group_ids: groups,
        vswitch_id: p.string("VSwitchId"),
        key_pair_name: p.get("KeyPairName").map(str::to_string),
        instance_name: p.get("InstanceName").map(str::to_string),
        host_name: p.get("HostName").map(str::to_string),
        unique_suffix: p.bool("UniqueSuffix")?.unwrap_or(false),
        amount: to_u32(amount),
        min_amount: min_amount.map(to_u32),
        tags: p.tags()?,
        bandwidth_out: to_u32(bandwidth),
        internet_charge_type: p
            .get("InternetChargeType")
            .unwrap_or("PayByTraffic")
            .to_string(),
        charge_type: p
            .get("InstanceChargeType")
            .unwrap_or("PostPaid")
            .to_string(),
        spot_strategy: spot.to_string(),
        disk_category: p
            .get("SystemDisk.Category")
            .unwrap_or("cloud_efficiency")
            .to_string(),
        disk_size_gb: to_u32(disk_size),
        dry_run: p.bool("DryRun")?.unwrap_or(false),
    };
    let ids = w.run_instances(ctx.region, args, ctx.now, ctx.knobs.delays(), ctx.rng)?;
    Ok(json!({
        "InstanceIdSets": { "InstanceIdSet": ids },
        "TradePrice": 0.0,
    }))
}

fn instance_json(i: &Instance, w: &World, region: &str, now: i64) -> Value {
    let t = w.types.get(&i.instance_type);
    let ips = |ip: Option<std::net::Ipv4Addr>| -> Vec<String> {
        ip.into_iter().map(|a| a.to_string()).collect()
    };
    let status = i.status(now);
    let mut head = json!({
        "InstanceId": i.id,
        "InstanceName": i.name,
        "HostName": i.host_name,
        "Description": "",
        "Status": status.as_str(),
        "RegionId": region,
        "ZoneId": i.zone_id,
        "InstanceType": i.instance_type,
        "InstanceTypeFamily": t.map(super::catalog::InstanceTypeDef::family).unwrap_or_default(),
        "Cpu": t.map_or(0, |t| t.cpu),
        "Memory": t.map_or(0, |t| (t.memory_gib * 1024.0) as u64),
        "GPUAmount": 0,
        "ImageId": i.image_id,
        "OSType": "linux",
        "OSName": "Ubuntu 22.04 64-bit",
        "OSNameEn": "Ubuntu 22.04 64 bit",
        "CreationTime": ecs_minutes(i.created_ms),
        "StartTime": if matches!(status, InstanceStatus::Running) { ecs_minutes(i.running_at) } else { String::new() },
        "ExpiredTime": "2099-12-31T15:59Z",
        "AutoReleaseTime": "",
        "InstanceChargeType": i.charge_type,
        "SpotStrategy": i.spot_strategy,
        "InternetChargeType": i.internet_charge_type,
        "InternetMaxBandwidthOut": i.bandwidth_out,
        "InternetMaxBandwidthIn": 100,
    });
    // Two halves: one `json!` of ~60 fields exceeds the macro's recursion limit.
    let rest = json!({
        "InstanceNetworkType": "vpc",
        "IoOptimized": true,
        "KeyPairName": i.key_pair_name,
        "PublicIpAddress": { "IpAddress": ips(i.public_ip) },
        "InnerIpAddress": { "IpAddress": [] },
        "EipAddress": { "IpAddress": "", "AllocationId": "", "InternetChargeType": "" },
        "VpcAttributes": {
            "VpcId": i.vpc_id,
            "VSwitchId": i.vswitch_id,
            "PrivateIpAddress": { "IpAddress": [i.private_ip.to_string()] },
            "NatIpAddress": "",
        },
        "SecurityGroupIds": { "SecurityGroupId": i.security_group_ids },
        "NetworkInterfaces": { "NetworkInterface": [{
            "NetworkInterfaceId": format!("eni-{}", i.id.trim_start_matches("i-")),
            "PrimaryIpAddress": i.private_ip.to_string(),
            "MacAddress": mac(&i.id),
            "Type": "Primary",
        }]},
        "OperationLocks": { "LockReason": [] },
        "Tags": ecs_tags(&i.tags),
        "StoppedMode": "Not-applicable",
        "DeletionProtection": false,
        "Recyclable": false,
        "DeviceAvailable": true,
        "SerialNumber": i.id.trim_start_matches("i-"),
        "ResourceGroupId": "",
        "VlanId": "",
        "DeploymentSetId": "",
        "CreditSpecification": "",
        "LocalStorageAmount": 0,
        "LocalStorageCapacity": 0,
    });
    if let (Value::Object(a), Value::Object(b)) = (&mut head, rest) {
        a.extend(b);
    }
    head
}

/// A stable, locally administered MAC derived from the id.
fn mac(id: &str) -> String {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let b = h.to_be_bytes();
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
}

/// The service shows at most this many resources matched by a tag filter; beyond it, the docs
/// say to enumerate with `ListTagResources` (aliyun-api.md §3.6).
pub const TAG_FILTER_CAP: usize = 1000;

/// The instances named by `ids` (looked up, in id order), or all of them when `ids` is empty.
fn by_ids<'a>(
    region: &'a super::world::Region,
    ids: &[String],
) -> Box<dyn Iterator<Item = &'a Instance> + 'a> {
    if ids.is_empty() {
        return Box::new(region.instances.values());
    }
    let wanted: std::collections::BTreeSet<String> = ids.iter().cloned().collect();
    Box::new(
        wanted
            .into_iter()
            .filter_map(|id| region.instances.get(&id)),
    )
}

fn describe_instances(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let ids = p.json_list("InstanceIds")?;
    if ids.len() > 100 {
        return Err(ApiError::invalid("At most 100 InstanceIds may be given."));
    }
    let tags = p.tags()?;
    let private = p.json_list("PrivateIpAddresses")?;
    let public = p.json_list("PublicIpAddresses")?;
    let status = p.get("Status");
    // Look every filter up once, not once per instance: a region may hold 10,000.
    let [vpc, vswitch, zone, sg, itype, image, key, charge, name] = [
        "VpcId",
        "VSwitchId",
        "ZoneId",
        "SecurityGroupId",
        "InstanceType",
        "ImageId",
        "KeyPairName",
        "InstanceChargeType",
        "InstanceName",
    ]
    .map(|k| p.get(k));
    let eq = |want: Option<&str>, have: &str| want.is_none_or(|w| w == have);
    let mut matched: Vec<&Instance> = by_ids(region, &ids)
        .filter(|i| ctx.visible(i.created_ms))
        .filter(|i| {
            eq(vpc, &i.vpc_id)
                && eq(vswitch, &i.vswitch_id)
                && eq(zone, &i.zone_id)
                && sg.is_none_or(|v| i.security_group_ids.iter().any(|s| s == v))
                && eq(itype, &i.instance_type)
                && eq(image, &i.image_id)
                && eq(key, &i.key_pair_name)
                && eq(charge, &i.charge_type)
                && name.is_none_or(|v| wildcard(v, &i.name))
        })
        .filter(|i| status.is_none_or(|s| s == i.status(ctx.now).as_str()))
        .filter(|i| private.is_empty() || private.contains(&i.private_ip.to_string()))
        .filter(|i| {
            public.is_empty()
                || i.public_ip
                    .is_some_and(|ip| public.contains(&ip.to_string()))
        })
        .filter(|i| matches_tags(&i.tags, &tags))
        .collect();
    if !tags.is_empty() {
        matched.truncate(TAG_FILTER_CAP);
    }
    let total = matched.len();
    let render = |page: Vec<&Instance>| -> Vec<Value> {
        page.into_iter()
            .map(|i| instance_json(i, w, &region.id, ctx.now))
            .collect()
    };
    let page_mode = p.get("NextToken").is_none()
        && p.get("MaxResults").is_none()
        && (p.get("PageNumber").is_some() || p.get("PageSize").is_some());
    if page_mode {
        let paging = NumberPaging::parse(p, 10, 100)?;
        let page = render(paging.page(matched));
        return Ok(json!({
            "Instances": { "Instance": page },
            "TotalCount": total, "PageNumber": paging.number, "PageSize": paging.size, "NextToken": "",
        }));
    }
    let paging = TokenPaging::parse(p, 10, 100)?;
    let (page, next) = paging.page(matched.into_iter().map(|i| (i.id.as_str(), i)));
    let page = render(page);
    Ok(json!({
        "Instances": { "Instance": page },
        "NextToken": next,
        "TotalCount": total,
        "PageNumber": 1,
        "PageSize": paging.max,
    }))
}

fn describe_instance_status(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let ids = p.list("InstanceId");
    if ids.len() > 100 {
        return Err(ApiError::invalid("At most 100 InstanceId.N may be given."));
    }
    let zone = p.get("ZoneId");
    let paging = NumberPaging::parse(p, 10, 50)?;
    let rows: Vec<&Instance> = by_ids(region, &ids)
        .filter(|i| ctx.visible(i.created_ms))
        .filter(|i| zone.is_none_or(|z| z == i.zone_id))
        .collect();
    let total = rows.len();
    Ok(json!({
        "InstanceStatuses": { "InstanceStatus": paging.page(rows).into_iter()
            .map(|i| json!({"InstanceId": i.id, "Status": i.status(ctx.now).as_str()}))
            .collect::<Vec<_>>() },
        "TotalCount": total,
        "PageNumber": paging.number,
        "PageSize": paging.size,
    }))
}

fn delete_instances(p: &Params, w: &mut World, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let ids = p.list("InstanceId");
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceId.1"));
    }
    if ids.len() > 100 {
        return Err(ApiError::invalid("At most 100 InstanceId.N may be given."));
    }
    let force = p.bool("Force")?.unwrap_or(false);
    if p.bool("DryRun")?.unwrap_or(false) {
        return Err(ApiError::bad(
            "DryRunOperation",
            "Request validation has been passed with DryRun flag set.",
        ));
    }
    w.delete_instances(ctx.region, &ids, force, ctx.now, ctx.knobs.delays())?;
    Ok(json!({}))
}

/// (id, tags, created) of every resource of one kind.
pub type TaggedRefs<'a> = Vec<(&'a String, &'a Vec<crate::provider::aliyun::Tag>, i64)>;

fn ecs_resource_tags<'a>(
    w: &'a World,
    region: &str,
    kind: &str,
) -> Result<TaggedRefs<'a>, ApiError> {
    let r = w.region(region)?;
    Ok(match kind {
        "instance" => r
            .instances
            .values()
            .map(|i| (&i.id, &i.tags, i.created_ms))
            .collect(),
        "securitygroup" => r
            .security_groups
            .values()
            .map(|g| (&g.id, &g.tags, g.created_ms))
            .collect(),
        "keypair" => r
            .key_pairs
            .values()
            .map(|k| (&k.name, &k.tags, k.created_ms))
            .collect(),
        "image" => r
            .images
            .values()
            .filter(|i| i.owner == "self")
            .map(|i| (&i.id, &i.tags, i.created_ms))
            .collect(),
        "disk" | "snapshot" | "eni" | "launchtemplate" => Vec::new(),
        other => return Err(unsupported_resource_type(other)),
    })
}

/// Shared by ECS and VPC `ListTagResources`: one row per (resource, tag), paged by token.
pub fn list_tag_rows(
    resources: TaggedRefs<'_>,
    kind: &str,
    p: &Params,
    ctx: &View<'_>,
    default_page: u64,
) -> Result<Value, ApiError> {
    let ids = p.list("ResourceId");
    if ids.len() > 50 {
        return Err(ApiError::invalid("At most 50 ResourceId.N may be given."));
    }
    let tags = p.tags()?;
    if tags.len() > 20 {
        return Err(ApiError::invalid("At most 20 Tag.N may be given."));
    }
    if ids.is_empty() && tags.is_empty() {
        return Err(ApiError::missing("ResourceId.1"));
    }
    let paging = TokenPaging::parse(p, default_page, 50)?;
    // Rows are keyed `id\ntag-key` (the page token); rendered only for the page.
    let mut rows: Vec<(String, (&String, &crate::provider::aliyun::Tag))> = Vec::new();
    for (id, rtags, created) in resources {
        if !ctx.visible(created)
            || (!ids.is_empty() && !ids.contains(id))
            || !matches_tags(rtags, &tags)
        {
            continue;
        }
        for t in rtags {
            rows.push((format!("{id}\n{}", t.key), (id, t)));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paging.page(rows);
    let page: Vec<Value> = page
        .into_iter()
        .map(|(id, t)| json!({"ResourceId": id, "ResourceType": kind, "TagKey": t.key, "TagValue": t.value}))
        .collect();
    Ok(json!({ "TagResources": { "TagResource": page }, "NextToken": next }))
}

fn list_tag_resources(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let kind = p.required("ResourceType")?.to_string();
    let resources = ecs_resource_tags(w, ctx.region, &kind)?;
    // ECS pages by `NextToken` alone, 50 rows at a time.
    list_tag_rows(resources, &kind, &Params::new(without_max(p)), ctx, 50)
}

fn without_max(p: &Params) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for k in ["NextToken"] {
        if let Some(v) = p.get(k) {
            pairs.push((k.to_string(), v.to_string()));
        }
    }
    for (i, id) in p.list("ResourceId").into_iter().enumerate() {
        pairs.push((format!("ResourceId.{}", i + 1), id));
    }
    if let Ok(tags) = p.tags() {
        for (i, t) in tags.into_iter().enumerate() {
            pairs.push((format!("Tag.{}.Key", i + 1), t.key));
            pairs.push((format!("Tag.{}.Value", i + 1), t.value));
        }
    }
    pairs
}

fn tag_resources(p: &Params, w: &mut World, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let kind = p.required("ResourceType")?;
    let ids = p.list("ResourceId");
    if ids.is_empty() {
        return Err(ApiError::missing("ResourceId.1"));
    }
    if ids.len() > 50 {
        return Err(ApiError::invalid("At most 50 ResourceId.N may be given."));
    }
    let tags = p.tags()?;
    if tags.is_empty() {
        return Err(ApiError::missing("Tag.1.Key"));
    }
    w.tag_ecs(ctx.region, kind, &ids, &tags)?;
    Ok(json!({}))
}
