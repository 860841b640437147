//! The VPC actions (version `2016-04-28`): VPCs and vSwitches (created `Pending`, then
//! `Available`), and their tags in the VPC shape (`Key`/`Value`) (aliyun-api.md §3.4).

use serde_json::{Value, json};

use super::actions::{Ctx, NumberPaging, View, vpc_tags};
use super::clock::seconds;
use super::ecs::list_tag_rows;
use super::error::ApiError;
use super::params::Params;
use super::world::{World, matches_tags, network_status, unsupported_resource_type};

/// Runs a read-only VPC action; `None` when not one the emulator has.
pub fn handle_read(
    action: &str,
    p: &Params,
    w: &World,
    v: &View<'_>,
) -> Option<Result<Value, ApiError>> {
    let r = match action {
        "DescribeVpcs" => describe_vpcs(p, w, v),
        "DescribeVSwitches" => describe_vswitches(p, w, v),
        "ListTagResources" => list_tag_resources(p, w, v),
        _ => return None,
    };
    Some(r)
}

/// Runs a VPC action that changes the world; `None` when not one the emulator has.
pub fn handle_write(
    action: &str,
    p: &Params,
    w: &mut World,
    ctx: &mut Ctx<'_>,
) -> Option<Result<Value, ApiError>> {
    let r = match action {
        "CreateVpc" => create_vpc(p, w, ctx),
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

fn create_vpc(p: &Params, w: &mut World, ctx: &mut Ctx<'_>) -> Result<Value, ApiError> {
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
    Ok(json!({
        "VpcId": vpc.id,
        "VRouterId": vpc.vrouter_id,
        "RouteTableId": vpc.route_table_id,
        "ResourceGroupId": "rg-acfmdefault",
    }))
}

fn describe_vpcs(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let ids: Vec<&str> = p
        .get("VpcId")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.len() > 20 {
        return Err(ApiError::invalid(
            "At most 20 VPC ids may be given in VpcId.",
        ));
    }
    let name = p.get("VpcName");
    let tags = p.tags()?;
    if p.bool("IsDefault")? == Some(true) {
        // The emulated account has no default VPC.
        let paging = NumberPaging::parse(p, 10, 50)?;
        return Ok(
            json!({"Vpcs": {"Vpc": []}, "TotalCount": 0, "PageNumber": paging.number, "PageSize": paging.size}),
        );
    }
    let paging = NumberPaging::parse(p, 10, 50)?;
    let rows: Vec<Value> = region
        .vpcs
        .values()
        .filter(|v| ctx.visible(v.created_ms))
        .filter(|v| ids.is_empty() || ids.contains(&v.id.as_str()))
        .filter(|v| name.is_none_or(|n| n == v.name))
        .filter(|v| matches_tags(&v.tags, &tags))
        .map(|v| {
            let vswitches: Vec<&String> = region
                .vswitches
                .values()
                .filter(|s| s.vpc_id == v.id)
                .map(|s| &s.id)
                .collect();
            json!({
                "VpcId": v.id,
                "VpcName": v.name,
                "CidrBlock": v.cidr,
                "Status": network_status(v.available_at, ctx.now),
                "RegionId": region.id,
                "IsDefault": false,
                "CreationTime": seconds(v.created_ms),
                "Description": v.description,
                "VRouterId": v.vrouter_id,
                "ResourceGroupId": "rg-acfmdefault",
                "VSwitchIds": { "VSwitchId": vswitches },
                "RouterTableIds": { "RouterTableIds": [v.route_table_id] },
                "UserCidrs": { "UserCidr": [] },
                "SecondaryCidrBlocks": { "SecondaryCidrBlock": [] },
                "NatGatewayIds": { "NatGatewayIds": [] },
                "Tags": vpc_tags(&v.tags),
            })
        })
        .collect();
    let total = rows.len();
    Ok(json!({
        "Vpcs": { "Vpc": paging.page(rows) },
        "TotalCount": total,
        "PageNumber": paging.number,
        "PageSize": paging.size,
    }))
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

fn describe_vswitches(p: &Params, w: &World, ctx: &View<'_>) -> Result<Value, ApiError> {
    let region = w.region(ctx.region)?;
    let vpc = p.get("VpcId");
    let ids: Vec<&str> = p
        .get("VSwitchId")
        .map(|s| s.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let zone = p.get("ZoneId");
    let name = p.get("VSwitchName");
    let tags = p.tags()?;
    let paging = NumberPaging::parse(p, 10, 50)?;
    let rows: Vec<Value> = region
        .vswitches
        .values()
        .filter(|s| ctx.visible(s.created_ms))
        .filter(|s| vpc.is_none_or(|v| v == s.vpc_id))
        .filter(|s| ids.is_empty() || ids.contains(&s.id.as_str()))
        .filter(|s| zone.is_none_or(|z| z == s.zone_id))
        .filter(|s| name.is_none_or(|n| n == s.name))
        .filter(|s| matches_tags(&s.tags, &tags))
        .map(|s| {
            json!({
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
                "ShareType": "Sharing",
                "NetworkAclId": "",
                "RouteTable": { "RouteTableId": "", "RouteTableType": "System" },
                "Tags": vpc_tags(&s.tags),
            })
        })
        .collect();
    let total = rows.len();
    Ok(json!({
        "VSwitches": { "VSwitch": paging.page(rows) },
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
