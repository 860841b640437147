//! Every pagination style, with more rows than one page, through cfxm's client: the client
//! must walk all pages (counted in the emulator's call log) and return every row once.

use std::collections::HashSet;

use cfxm::provider::aliyun::{
    Api, CreateImageRequest, CreateSecurityGroupRequest, CreateVSwitchRequest, CreateVpcRequest,
    EcsResourceType, ImageQuery, InstanceQuery, KeyPairQuery, Params, SecurityGroupQuery,
    VSwitchQuery, VpcQuery, VpcResourceType,
};
use serde_json::Value;

use super::roundtrip::PUBLIC_KEY;
use super::*;

fn unique<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> usize {
    items.into_iter().collect::<HashSet<_>>().len()
}

#[tokio::test]
async fn next_token_styles_walk_every_page() {
    let env = env().await;
    let c = &env.client;
    let r = &env.region;
    let net = network(&env).await;
    // 130 instances in two calls (Amount ≤ 100).
    let mut ids = c
        .run_instances(r, &run_request(&net, 100))
        .await
        .unwrap()
        .instance_ids;
    ids.extend(
        c.run_instances(r, &run_request(&net, 30))
            .await
            .unwrap()
            .instance_ids,
    );
    assert_eq!(unique(&ids), 130);

    // DescribeInstances: NextToken + MaxResults (100 per page by default here: 2 calls).
    let before = count(&env.emu, "DescribeInstances");
    let all = c
        .describe_instances(r, &InstanceQuery::default())
        .await
        .unwrap();
    assert_eq!(unique(all.iter().map(|i| &i.instance_id)), 130);
    assert_eq!(count(&env.emu, "DescribeInstances") - before, 2);
    // A small page size: ceil(130 / 7) = 19 pages.
    let before = count(&env.emu, "DescribeInstances");
    let small = c
        .describe_instances(
            r,
            &InstanceQuery {
                tags: tags(),
                page_size: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unique(small.iter().map(|i| &i.instance_id)), 130);
    assert_eq!(count(&env.emu, "DescribeInstances") - before, 19);
    // By ids: 130 ids go in two batches of at most 100.
    let before = count(&env.emu, "DescribeInstances");
    let by_id = c
        .describe_instances(
            r,
            &InstanceQuery {
                ids: ids.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_id.len(), 130);
    assert_eq!(count(&env.emu, "DescribeInstances") - before, 2);

    // DescribeInstanceStatus: PageNumber / PageSize ≤ 50 within batches of 100 ids: 2 + 1 calls.
    let before = count(&env.emu, "DescribeInstanceStatus");
    let statuses = c.describe_instance_status(r, &ids).await.unwrap();
    assert_eq!(unique(statuses.iter().map(|s| &s.instance_id)), 130);
    assert_eq!(count(&env.emu, "DescribeInstanceStatus") - before, 3);

    // ECS ListTagResources: NextToken only, 50 rows a page; 130 × 3 rows = 8 pages.
    let before = count(&env.emu, "ListTagResources");
    let rows = c
        .list_tag_resources(
            r,
            EcsResourceType::Instance,
            &[],
            &[cfxm::provider::aliyun::Tag::new("user", "alice")],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 390);
    assert_eq!(
        unique(rows.iter().map(|t| (&t.resource_id, &t.tag_key))),
        390
    );
    assert_eq!(count(&env.emu, "ListTagResources") - before, 8);

    // DeleteInstances: 130 ids in batches of 100.
    let before = count(&env.emu, "DeleteInstances");
    c.delete_instances(r, &ids, true).await.unwrap();
    assert_eq!(count(&env.emu, "DeleteInstances") - before, 2);

    // DescribeSecurityGroups: NextToken + MaxResults ≤ 100; 120 groups = 2 pages.
    for i in 0..119 {
        c.create_security_group(
            r,
            &CreateSecurityGroupRequest {
                vpc_id: net.vpc.clone(),
                name: format!("sg{i}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let before = count(&env.emu, "DescribeSecurityGroups");
    let groups = c
        .describe_security_groups(r, &SecurityGroupQuery::default())
        .await
        .unwrap();
    assert_eq!(unique(groups.iter().map(|g| &g.security_group_id)), 120);
    assert_eq!(count(&env.emu, "DescribeSecurityGroups") - before, 2);

    // DescribeInstanceTypes: NextToken + MaxResults (1600): one page holds the catalog, and
    // a raw call with MaxResults=3 shows the token chain.
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let v: Value = c
            .call(
                Api::Ecs,
                "DescribeInstanceTypes",
                None,
                Params::new()
                    .set("MaxResults", 3)
                    .non_empty("NextToken", &token),
            )
            .await
            .unwrap();
        for t in v["InstanceTypes"]["InstanceType"].as_array().unwrap() {
            seen.push(t["InstanceTypeId"].as_str().unwrap().to_string());
        }
        token = v["NextToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        c.describe_instance_types(&[]).await.unwrap().len()
    );
    assert_eq!(unique(&seen), seen.len());
    env.emu.shutdown().await;
}

#[tokio::test]
async fn page_number_styles_walk_every_page() {
    let env = env().await;
    let c = &env.client;
    let r = &env.region;
    // DescribeVpcs: PageNumber / PageSize ≤ 50; 60 VPCs = 2 pages.
    let mut vpcs = Vec::new();
    for i in 0..60 {
        let v = c
            .create_vpc(
                r,
                &CreateVpcRequest {
                    cidr_block: "10.0.0.0/16".into(),
                    name: format!("v{i}"),
                    tags: tags(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        vpcs.push(v.vpc_id);
    }
    let before = count(&env.emu, "DescribeVpcs");
    let listed = c.describe_vpcs(r, &VpcQuery::default()).await.unwrap();
    assert_eq!(unique(listed.iter().map(|v| &v.vpc_id)), 60);
    assert_eq!(count(&env.emu, "DescribeVpcs") - before, 2);
    // By ids: a comma list of at most 20 per call: 3 calls.
    let before = count(&env.emu, "DescribeVpcs");
    let by_id = c
        .describe_vpcs(
            r,
            &VpcQuery {
                ids: vpcs.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_id.len(), 60);
    assert_eq!(count(&env.emu, "DescribeVpcs") - before, 3);
    // VPC ListTagResources: NextToken + MaxResults 50; 60 × 3 rows = 4 pages.
    let before = count(&env.emu, "ListTagResources");
    let rows = c
        .list_vpc_tag_resources(
            r,
            VpcResourceType::Vpc,
            &[],
            &[cfxm::provider::aliyun::Tag::new("cfxm-spec", "t")],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 180);
    assert_eq!(count(&env.emu, "ListTagResources") - before, 4);

    // DescribeVSwitches: PageNumber / PageSize ≤ 50; 55 vSwitches (/24s) = 2 pages.
    for i in 0..55 {
        c.create_vswitch(
            r,
            &CreateVSwitchRequest {
                vpc_id: vpcs[0].clone(),
                zone_id: ZONE.into(),
                cidr_block: format!("10.0.{i}.0/24"),
                name: format!("s{i}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let before = count(&env.emu, "DescribeVSwitches");
    let vsws = c
        .describe_vswitches(r, &VSwitchQuery::default())
        .await
        .unwrap();
    assert_eq!(unique(vsws.iter().map(|s| &s.vswitch_id)), 55);
    assert_eq!(count(&env.emu, "DescribeVSwitches") - before, 2);

    // DescribeKeyPairs: PageNumber / PageSize ≤ 50; 51 key pairs = 2 pages.
    for i in 0..51 {
        c.import_key_pair(r, &format!("kp{i:02}"), PUBLIC_KEY, &[])
            .await
            .unwrap();
    }
    let before = count(&env.emu, "DescribeKeyPairs");
    let kps = c
        .describe_key_pairs(r, &KeyPairQuery::default())
        .await
        .unwrap();
    assert_eq!(unique(kps.iter().map(|k| &k.key_pair_name)), 51);
    assert_eq!(count(&env.emu, "DescribeKeyPairs") - before, 2);
    // DeleteKeyPairs takes at most 100 names a call.
    c.delete_key_pairs(
        r,
        &kps.iter()
            .map(|k| k.key_pair_name.clone())
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();

    // DescribeImages: PageNumber / PageSize ≤ 100; 1 + 101 account images = 2 pages.
    let net = network(&env).await;
    let id = c
        .run_instances(r, &run_request(&net, 1))
        .await
        .unwrap()
        .instance_ids
        .remove(0);
    for i in 0..101 {
        c.create_image(
            r,
            &CreateImageRequest {
                instance_id: id.clone(),
                image_name: format!("img{i}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let before = count(&env.emu, "DescribeImages");
    let images = c
        .describe_images(
            r,
            &ImageQuery {
                owner_alias: Some("self".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(unique(images.iter().map(|i| &i.image_id)), 102);
    assert_eq!(count(&env.emu, "DescribeImages") - before, 2);
    env.emu.shutdown().await;
}

#[tokio::test]
async fn tag_filters_show_at_most_1000_and_list_tag_resources_has_no_cap() {
    let env = env().await;
    let c = &env.client;
    let r = &env.region;
    let net = network(&env).await;
    for _ in 0..11 {
        c.run_instances(r, &run_request(&net, 100)).await.unwrap();
    }
    let by_tag = c
        .describe_instances(
            r,
            &InstanceQuery {
                tags: tags(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_tag.len(), 1000, "the service's tag-filter cap");
    let all = c
        .describe_instances(r, &InstanceQuery::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 1100, "no cap without a tag filter");
    let rows = c
        .list_tag_resources(
            r,
            EcsResourceType::Instance,
            &[],
            &[cfxm::provider::aliyun::Tag::new("cfxm-spec", "t")],
        )
        .await
        .unwrap();
    let ids: Vec<String> = rows
        .iter()
        .map(|t| t.resource_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 1100);
    let by_id = c
        .describe_instances(
            r,
            &InstanceQuery {
                ids,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1100);
    env.emu.shutdown().await;
}
