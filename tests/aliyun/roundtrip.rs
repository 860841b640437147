//! Every typed action of cfxm's client against the emulator, checking what came back.

use cfxm::provider::aliyun::{
    AvailableResourceQuery, CopyImageRequest, CreateImageRequest, EcsResourceType, ImageQuery,
    InstanceQuery, InstanceStatus, KeyPairQuery, SecurityGroupQuery, Signing, Tag, VSwitchQuery,
    VpcQuery, VpcResourceType,
};
use cfxm::spec::RegionId;

use super::*;

/// An RSA key; its MD5 fingerprint from `ssh-keygen -l -E md5` is `FINGERPRINT`.
pub const PUBLIC_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDvgCa4/MJQ9WhiHDgwr8FiNE1NNsBQUBe2lhv4fvuHw0WdGx50GI+nZaRGfhYtPWqrY6sm/JIchaKuaxz/hdJ+zLbvJUC0pUzN5v2UNoN1XF4wb1t7Zwul9vEwuvr35agcwTjThJp+jPfLw8nCFyWUrMiSqtnYqLxRsNB8p3rdx4eA6q1LxD8RRmvfsCKMwdP93J1uefwrhw7iF4KJYROm9Y8h1VBvJ9XIVIrtg1ooS7pWn1GKsE5v6De9dkhZDd060gSl8ndhhweTqqCawu4bYPQ4YZtf0YGBoee2NxfSRMyLSv0FCM9DrqOsSvfbK920gKH6OG2CsD6WwrQa1gCP cfxm-test";
pub const FINGERPRINT: &str = "d38dda1c6489fabb4a0ffff166e12fdf";

#[tokio::test]
async fn discovery_actions() {
    let env = env().await;
    let c = &env.client;
    let regions = c.describe_regions().await.unwrap();
    assert!(regions.len() >= 8);
    let sg1 = regions.iter().find(|r| r.region_id == REGION).unwrap();
    assert_eq!(sg1.region_endpoint, "ecs.ap-southeast-1.aliyuncs.com");

    let zones = c.describe_zones(&env.region, true).await.unwrap();
    assert_eq!(
        zones.iter().map(|z| z.zone_id.as_str()).collect::<Vec<_>>(),
        ["ap-southeast-1a", "ap-southeast-1b", "ap-southeast-1c"]
    );
    assert!(zones[0].available_instance_types.iter().any(|t| t == TYPE));
    assert!(
        zones[0]
            .available_disk_categories
            .iter()
            .any(|d| d == "cloud_essd")
    );
    let terse = c.describe_zones(&env.region, false).await.unwrap();
    assert!(terse[0].available_instance_types.is_empty());

    // Stock reflects the world, and changes when it does.
    env.emu.set_stock("ap-southeast-1b", TYPE, Some(0)).unwrap();
    let stock = c
        .describe_available_resource(
            &env.region,
            &AvailableResourceQuery::instance_types(Some(TYPE)),
        )
        .await
        .unwrap();
    let row = |zone: &str| {
        stock
            .iter()
            .find(|z| z.zone_id == zone)
            .unwrap()
            .available_resources[0]
            .supported_resources[0]
            .clone()
    };
    assert!(row("ap-southeast-1a").has_stock());
    assert_eq!(row("ap-southeast-1b").status_category, "WithoutStock");
    assert_eq!(row("ap-southeast-1b").status, "SoldOut");
    let disks = c
        .describe_available_resource(
            &env.region,
            &AvailableResourceQuery {
                destination_resource: "SystemDisk".into(),
                zone_id: Some(ZONE.into()),
                instance_type: Some(TYPE.into()),
                instance_charge_type: None,
                spot_strategy: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(disks.len(), 1);
    assert!(
        disks[0].available_resources[0]
            .supported_resources
            .iter()
            .any(|r| r.value == "cloud_essd")
    );

    let all = c.describe_instance_types(&[]).await.unwrap();
    assert!(all.len() >= 10);
    // 12 names: sent 10 per call, as the API allows.
    let mut wanted: Vec<String> = all
        .iter()
        .take(11)
        .map(|t| t.instance_type_id.clone())
        .collect();
    wanted.push("ecs.nonexistent".into());
    let before = count(&env.emu, "DescribeInstanceTypes");
    let some = c.describe_instance_types(&wanted).await.unwrap();
    assert_eq!(some.len(), 11);
    assert_eq!(count(&env.emu, "DescribeInstanceTypes") - before, 2);
    let g8i = some.iter().find(|t| t.instance_type_id == TYPE).unwrap();
    assert_eq!(
        (
            g8i.cpu_core_count,
            g8i.memory_size,
            g8i.instance_type_family.as_str()
        ),
        (8, 32.0, "ecs.g8i")
    );

    let images = c
        .describe_images(&env.region, &ImageQuery::default())
        .await
        .unwrap();
    assert!(
        images
            .iter()
            .any(|i| i.image_name == CONFLUX_IMAGE && i.image_owner_alias == "self")
    );
    assert!(images.iter().any(|i| i.image_owner_alias == "system"));
    let mine = c
        .describe_images(
            &env.region,
            &ImageQuery {
                owner_alias: Some("self".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].status, "Available");
    env.emu.shutdown().await;
}

#[tokio::test]
async fn network_actions_and_vpc_tags() {
    let env = env().await;
    let c = &env.client;
    let r = &env.region;
    let net = network(&env).await;
    let vpcs = c
        .describe_vpcs(
            r,
            &VpcQuery {
                ids: vec![net.vpc.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(vpcs.len(), 1);
    assert_eq!(
        (vpcs[0].status.as_str(), vpcs[0].cidr_block.as_str()),
        ("Available", "10.0.0.0/16")
    );
    assert_eq!(vpcs[0].vswitch_ids, std::slice::from_ref(&net.vswitch));
    assert_eq!(vpcs[0].tags, tags());
    let by_tag = c
        .describe_vpcs(
            r,
            &VpcQuery {
                tags: vec![Tag::new("user", "alice")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_tag.len(), 1);
    let nobody = c
        .describe_vpcs(
            r,
            &VpcQuery {
                tags: vec![Tag::new("user", "bob")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(nobody.is_empty());
    let vsws = c
        .describe_vswitches(
            r,
            &VSwitchQuery {
                vpc_id: Some(net.vpc.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(vsws.len(), 1);
    assert_eq!(
        (vsws[0].zone_id.as_str(), vsws[0].status.as_str()),
        (ZONE, "Available")
    );
    assert_eq!(vsws[0].available_ip_address_count, 4096 - 4);
    assert_eq!(vsws[0].tags, tags());

    let vpc_rows = c
        .list_vpc_tag_resources(r, VpcResourceType::Vpc, std::slice::from_ref(&net.vpc), &[])
        .await
        .unwrap();
    assert_eq!(vpc_rows.len(), 3);
    assert!(
        vpc_rows
            .iter()
            .all(|t| t.resource_id == net.vpc && t.resource_type == "VPC")
    );
    let vsw_rows = c
        .list_vpc_tag_resources(
            r,
            VpcResourceType::VSwitch,
            &[],
            &[Tag::new("cfxm-spec", "t")],
        )
        .await
        .unwrap();
    assert_eq!(vsw_rows.len(), 3);

    let groups = c
        .describe_security_groups(
            r,
            &SecurityGroupQuery {
                vpc_id: Some(net.vpc.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].rule_count, groups[0].tags.clone()), (1, tags()));
    // Re-authorizing the same rule is a no-op; a new one is added.
    c.authorize_security_group(
        r,
        &net.sg,
        &[
            Permission::tcp(22, 22, "0.0.0.0/0"),
            Permission::tcp(1024, 49151, "10.0.0.0/16"),
        ],
    )
    .await
    .unwrap();
    let attr = c
        .describe_security_group_attribute(r, &net.sg)
        .await
        .unwrap();
    assert_eq!(attr.vpc_id, net.vpc);
    let rules: Vec<(&str, &str, &str)> = attr
        .permissions
        .iter()
        .map(|p| {
            (
                p.ip_protocol.as_str(),
                p.port_range.as_str(),
                p.source_cidr_ip.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("TCP", "22/22", "0.0.0.0/0"),
            ("TCP", "1024/49151", "10.0.0.0/16")
        ]
    );

    c.delete_security_group(r, &net.sg).await.unwrap();
    c.delete_vswitch(r, &net.vswitch).await.unwrap();
    c.delete_vpc(r, &net.vpc).await.unwrap();
    assert!(
        c.describe_vpcs(r, &VpcQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn key_pairs() {
    let env = env().await;
    let c = &env.client;
    let r = &env.region;
    let kp = c
        .import_key_pair(r, "conflux-massive-test-alice", PUBLIC_KEY, &tags())
        .await
        .unwrap();
    assert_eq!(kp.key_pair_finger_print, FINGERPRINT);
    assert_eq!(
        cfxm::provider::aliyun::key_fingerprint(PUBLIC_KEY).unwrap(),
        FINGERPRINT
    );
    let found = c
        .describe_key_pairs(
            r,
            &KeyPairQuery {
                name: Some("conflux-*".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (
            found[0].key_pair_finger_print.as_str(),
            found[0].tags.clone()
        ),
        (FINGERPRINT, tags())
    );
    let e = c
        .import_key_pair(r, "conflux-massive-test-alice", PUBLIC_KEY, &[])
        .await
        .unwrap_err();
    assert_eq!(e.code, "KeyPair.AlreadyExist");
    let e = c
        .import_key_pair(r, "junk", "not a key", &[])
        .await
        .unwrap_err();
    assert_eq!(e.code, "InvalidPublicKeyBody.Malformed");
    c.delete_key_pairs(
        r,
        &[
            "conflux-massive-test-alice".to_string(),
            "never-existed".to_string(),
        ],
    )
    .await
    .unwrap();
    assert!(
        c.describe_key_pairs(r, &KeyPairQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    env.emu.shutdown().await;
}

#[tokio::test]
async fn instances_from_run_to_release_with_both_signatures() {
    for signing in [Signing::V3, Signing::V1] {
        let mut env = env().await;
        env.client = client_for(&env.emu, signing);
        let c = &env.client;
        let r = &env.region;
        let net = network(&env).await;
        let stock_before = env.emu.world().stock_of(ZONE, TYPE).unwrap();
        let run = c.run_instances(r, &run_request(&net, 5)).await.unwrap();
        assert_eq!(run.instance_ids.len(), 5);
        assert_eq!(
            env.emu.world().stock_of(ZONE, TYPE).unwrap(),
            stock_before - 5
        );

        let listed = c
            .describe_instances(
                r,
                &InstanceQuery {
                    tags: tags(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.len(), 5);
        for i in &listed {
            assert_eq!(i.status, InstanceStatus::Running);
            assert_eq!((i.zone_id.as_str(), i.instance_type.as_str()), (ZONE, TYPE));
            assert_eq!(i.vpc_attributes.vswitch_id, net.vswitch);
            assert_eq!(i.security_group_ids, std::slice::from_ref(&net.sg));
            assert!(
                i.public_ip().is_some(),
                "bandwidth > 0 gives a public address"
            );
            assert!(i.private_ip().unwrap().starts_with("10.0."));
            assert_eq!(i.tag("user"), Some("alice"));
            assert_eq!((i.cpu, i.memory), (8, 32 * 1024));
        }
        let publics: std::collections::HashSet<_> =
            listed.iter().map(|i| i.public_ip().unwrap()).collect();
        assert_eq!(publics.len(), 5, "addresses are unique");

        let statuses = c
            .describe_instance_status(r, &run.instance_ids)
            .await
            .unwrap();
        assert_eq!(statuses.len(), 5);
        assert!(statuses.iter().all(|s| s.status == InstanceStatus::Running));

        // Tagging and listing tags (ECS shape), and a tag-only lookup.
        c.tag_resources(
            r,
            EcsResourceType::Instance,
            &run.instance_ids[..2],
            &[Tag::new("role", "seed")],
        )
        .await
        .unwrap();
        let rows = c
            .list_tag_resources(
                r,
                EcsResourceType::Instance,
                &[],
                &[Tag::new("role", "seed")],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2 * 4, "two instances × four tags");
        let seeds = c
            .describe_instances(
                r,
                &InstanceQuery {
                    tags: vec![Tag::new("role", "")],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(seeds.len(), 2, "a key-only tag filter matches any value");

        // Images: create from a running instance, copy to another region, delete.
        let image = c
            .create_image(
                r,
                &CreateImageRequest {
                    instance_id: run.instance_ids[0].clone(),
                    image_name: "cfxm-snapshot".into(),
                    tags: tags(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let dest = RegionId::new("me-east-1");
        let copy = c
            .copy_image(
                r,
                &CopyImageRequest {
                    image_id: image.clone(),
                    destination_region: dest.to_string(),
                    destination_image_name: Some("cfxm-snapshot-copy".into()),
                    tags: tags(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let there = c
            .describe_images(
                &dest,
                &ImageQuery {
                    image_id: Some(copy.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (there.len(), there[0].image_name.as_str()),
            (1, "cfxm-snapshot-copy")
        );
        let e = c.delete_image(r, &net.image, false).await.unwrap_err();
        assert_eq!(e.code, "InvalidImageId.IsUsed", "instances still use it");
        c.delete_image(r, &image, false).await.unwrap();
        c.delete_image(&dest, &copy, false).await.unwrap();
        c.delete_image(&dest, &copy, false).await.unwrap(); // a missing image is not an error

        c.delete_instances(r, &run.instance_ids, true)
            .await
            .unwrap();
        assert!(
            c.describe_instances(r, &InstanceQuery::default())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            env.emu.world().stock_of(ZONE, TYPE).unwrap(),
            stock_before,
            "release returns stock"
        );
        let calls = env.emu.calls();
        let scheme = if signing == Signing::V3 { "V3" } else { "V1" };
        assert!(
            calls.iter().all(|c| c.signature == scheme),
            "every call signed with {scheme}"
        );
        env.emu.shutdown().await;
    }
}

#[tokio::test]
async fn a_client_for_a_spec_uses_its_endpoint_and_credentials() {
    let emu = start(cfxm::emulator::EmulatorConfig::default()).await;
    let yaml = format!(
        "name: t\nowner: alice\ncloud:\n  aliyun:\n    instance_types: [{{ name: {TYPE} }}]\n    regions: [{{ name: {REGION}, nodes: 1 }}]\n    endpoint: {}\n    credentials: {{ access_key_id: cfxm-local, access_key_secret: cfxm-local-secret }}\n",
        emu.endpoint_url()
    );
    let spec = cfxm::spec::load_str(&yaml, "t.yaml", std::path::Path::new("t.yaml")).unwrap();
    let cfxm::spec::CloudSettings::Aliyun(settings) = &spec.clouds[0].settings else {
        panic!("an aliyun cloud")
    };
    let client = cfxm::provider::aliyun::Client::for_spec(settings).unwrap();
    assert_eq!(client.access_key_id(), "cfxm-local");
    assert!(!client.describe_regions().await.unwrap().is_empty());
    emu.shutdown().await;
}
