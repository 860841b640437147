//! The network actions: VPCs and vSwitches (created `Pending`, then `Available`), served twice
//! over one set of rules. The VPC API (`2016-04-28`) has them with its tags (`Key`/`Value`)
//! and `ListTagResources` (aliyun-api.md §3.4); the ECS API (`2014-05-26`) still carries the
//! legacy `CreateVpc`, `DescribeVpcs`, `DeleteVpc`, `CreateVSwitch`, `DescribeVSwitches` and
//! `DeleteVSwitch`, which existing tools (the original one among them) call through the ECS
//! client. Both go through the same [`World`] calls, parameter parsing and filters; only the
//! rendered fields differ, chosen by the [`Api`] the request named.

use serde_json::{Value, json};

use super::actions::{Ctx, NumberPaging, View, vpc_tags};
use super::clock::seconds;
use super::ecs::list_tag_rows;
use super::error::ApiError;
use super::params::Params;
use super::world::{VSwitch, Vpc, World, matches_tags, network_status, unsupported_resource_type};
use crate::provider::aliyun::Api;

/// Runs a read-only VPC-API action; `None` when not one the emulator has.
pub fn handle_read(
    action: &str,
    p: &Params,
    w: &World,
    v: &View<'_>,
) -> Option<Result<Value, ApiError>> {
    match action {
        "ListTagResources" => Some(list_tag_resources(p, w, v)),
        _ => network_read(Api::Vpc, action, p, w, v),
    }
}

/// Runs a VPC-API action that changes the world; `None` when not one the emulator has.
pub fn handle_write(
    action: &str,
    p: &Params,
    w: &mut World,
    ctx: &mut Ctx<'_>,
) -> Option<Result<Value, ApiError>> {
    network_write(Api::Vpc, action, p, w, ctx)
}

/// The read-only network actions, answered in `api`'s shape (both APIs have them).
pub fn network_read(
    api: Api,
    action: &str,
    p: &Params,
    w: &World,
    v: &View<'_>,
) -> Option<Result<Value, ApiError>> {
    let r = match action {
        "DescribeVpcs" => describe_vpcs(api, p, w, v),
        "DescribeVSwitches" => describe_vswitches(api, p, w, v),
        _ => return None,
    };
    Some(r)
}

/// The network actions that change the world, answered in `api`'s shape.
pub fn network_write(
    api: Api,
    action: &str,
    p: &Params,
    w: &mut World,
    ctx: &mut Ctx<'_>,
) -> Option<Result<Value, ApiError>> {
    let r = match action {
        "CreateVpc" => create_vpc(api, p, w, ctx),
        "DeleteVpc" => p
            .required("VpcId")
            .and_then(|id| w.delete_vpc(ctx.region, id, ctx.now))
            .map(|()| json!({})),
        "CreateVSwitch" => create_vswitch(p, w, ctx),
        "DeleteVSwitch" => p
            .required("VSwitchId")
            .and_then(|id| w.delete_vswitch(ctx.region, id, ctx.now))
            .map(|()| json!({})),
        _ => return None,
    };
    Some(r)
}

fn create_vpc(api: Api, p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    if p.bool("DryRun")?.unwrap_or(false) {
        return Err(ApiError::bad(
            "DryRunOperation",
            "Request validation has been passed with DryRun flag set.",
        ));
    }
    let vpc = w.create_vpc(
        ctx.region,
        p.get("CidrBlock"),
        &p.string("VpcName"),
        &p.string("Description"),
        p.tags()?,
        ctx.now,
        ctx.knobs.delays(),
        ctx.rng,
    )?;
    let mut answer = json!({
        "VpcId": vpc.id,
        "VRouterId": vpc.vrouter_id,
        "RouteTableId": vpc.route_table_id,
    });
    if api == Api::Vpc {
        answer["ResourceGroupId"] = json!("rg-acfmdefault");
    }
    Ok(answer)
}

/// A comma list parameter (`VpcId=vpc-a,vpc-b`), blanks dropped.
fn comma_list<'a>(p: &'a Params, k: &str) -> Vec<&'a str> {
    p.get(k)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// `Vpcs.Vpc[]` with `TotalCount`/`PageNumber`/`PageSize`, filtered the same for both APIs.
fn describe_vpcs(api: Api, p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let ids = comma_list(p, "VpcId");
    if ids.len() > 20 {
        return Err(ApiError::invalid(
            "At most 20 VPC ids may be given in VpcId.",
        ));
    }
    let name = p.get("VpcName");
    let tags = p.tags()?;
    let paging = NumberPaging::parse(p, 10, 50)?;
    // The emulated account has no default VPC.
    let default_only = p.bool("IsDefault")? == Some(true);
    let matched: Vec<&Vpc> = region
        .vpcs
        .values()
        .filter(|_| !default_only)
        .filter(|v| ctx.visible(v.created_ms))
        .filter(|v| ids.is_empty() || ids.contains(&v.id.as_str()))
        .filter(|v| name.is_none_or(|n| n == v.name))
        .filter(|v| matches_tags(&v.tags, &tags))
        .collect();
    let total = matched.len();
    let rows: Vec<Value> = paging
        .page(matched)
        .into_iter()
        .map(|v| {
            let vswitches: Vec<&String> = region
                .vswitches
                .values()
                .filter(|s| s.vpc_id == v.id)
                .map(|s| &s.id)
                .collect();
            let mut row = json!({
                "VpcId": v.id,
                "VpcName": v.name,
                "CidrBlock": v.cidr,
                "Status": network_status(v.available_at, ctx.now),
                "RegionId": region.id,
                "IsDefault": false,
                "CreationTime": seconds(v.created_ms),
                "Description": v.description,
                "VRouterId": v.vrouter_id,
                "VSwitchIds": { "VSwitchId": vswitches },
                "UserCidrs": { "UserCidr": [] },
            });
            if api == Api::Vpc {
                let more = json!({
                    "ResourceGroupId": "rg-acfmdefault",
                    "RouterTableIds": { "RouterTableIds": [v.route_table_id] },
                    "SecondaryCidrBlocks": { "SecondaryCidrBlock": [] },
                    "NatGatewayIds": { "NatGatewayIds": [] },
                    "Tags": vpc_tags(&v.tags),
                });
                extend(&mut row, more);
            }
            row
        })
        .collect();
    Ok(json!({
        "Vpcs": { "Vpc": rows },
        "TotalCount": total,
        "PageNumber": paging.number,
        "PageSize": paging.size,
    }))
}

fn extend(row: &mut Value, more: Value) {
    if let (Value::Object(a), Value::Object(b)) = (row, more) {
        a.extend(b);
    }
}

fn create_vswitch(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
    let vsw = w.create_vswitch(
        ctx.region,
        p.required("VpcId")?,
        p.required("ZoneId")?,
        p.required("CidrBlock")?,
        &p.string("VSwitchName"),
        &p.string("Description"),
        p.tags()?,
        ctx.now,
        ctx.knobs.delays(),
        ctx.rng,
    )?;
    Ok(json!({ "VSwitchId": vsw.id }))
}

/// `VSwitches.VSwitch[]` with `TotalCount`/`PageNumber`/`PageSize`. `VSwitchId` alone (no
/// `VpcId`) is enough, as the original tool's wait loop asks.
fn describe_vswitches(api: Api, p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let vpc = p.get("VpcId");
    let ids = comma_list(p, "VSwitchId");
    let zone = p.get("ZoneId");
    let name = p.get("VSwitchName");
    let tags = p.tags()?;
    let paging = NumberPaging::parse(p, 10, 50)?;
    let default_only = p.bool("IsDefault")? == Some(true);
    let matched: Vec<&VSwitch> = region
        .vswitches
        .values()
        .filter(|_| !default_only)
        .filter(|s| ctx.visible(s.created_ms))
        .filter(|s| vpc.is_none_or(|v| v == s.vpc_id))
        .filter(|s| ids.is_empty() || ids.contains(&s.id.as_str()))
        .filter(|s| zone.is_none_or(|z| z == s.zone_id))
        .filter(|s| name.is_none_or(|n| n == s.name))
        .filter(|s| matches_tags(&s.tags, &tags))
        .collect();
    let total = matched.len();
    let rows: Vec<Value> = paging
        .page(matched)
        .into_iter()
        .map(|s| {
            let mut row = json!({
                "VSwitchId": s.id,
                "VpcId": s.vpc_id,
                "ZoneId": s.zone_id,
                "CidrBlock": s.cidr,
                "Status": network_status(s.available_at, ctx.now),
                "AvailableIpAddressCount": s.ips.available(),
                "VSwitchName": s.name,
                "Description": s.description,
                "IsDefault": false,
                "CreationTime": seconds(s.created_ms),
                "ResourceGroupId": "rg-acfmdefault",
            });
            if api == Api::Vpc {
                let more = json!({
                    "ShareType": "Sharing",
                    "NetworkAclId": "",
                    "RouteTable": { "RouteTableId": "", "RouteTableType": "System" },
                    "Tags": vpc_tags(&s.tags),
                });
                extend(&mut row, more);
            }
            row
        })
        .collect();
    Ok(json!({
        "VSwitches": { "VSwitch": rows },
        "TotalCount": total,
        "PageNumber": paging.number,
        "PageSize": paging.size,
    }))
}

fn list_tag_resources(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let kind = p.required("ResourceType")?;
    let r = w.region(ctx.region)?;
    let resources = match kind {
        "VPC" => r
            .vpcs
            .values()
            .map(|v| (&v.id, &v.tags, v.created_ms))
            .collect(),
        "VSWITCH" => r
            .vswitches
            .values()
            .map(|s| (&s.id, &s.tags, s.created_ms))
            .collect(),
        "ROUTETABLE" | "EIP" | "NATGATEWAY" => Vec::new(),
        other => return Err(unsupported_resource_type(other)),
    };
    list_tag_rows(resources, kind, p, ctx, 50)
}
