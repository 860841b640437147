//! Discovery inputs (regions, zones, offerings, images) and instances: launched with tags at
//! creation, a ClientToken, a public IP on the primary interface and a gp3 root disk; found by
//! exact tags across several pages; terminated and then no longer listed.

use std::collections::BTreeSet;

use cfxm::provider::aws::{
    ClientToken, Filter, InstanceQuery, InstanceStateName, KeyName, LaunchRequest, RootVolume,
};
use cfxm::spec::{InstanceType, ZoneId};

use crate::moto::Moto;
use crate::proxy::Proxy;
use crate::{PUBLIC_KEY, cfxm_tags, cidr, client, region};

#[tokio::test]
async fn regions_zones_offerings_and_images_are_read() {
    let moto = Moto::start();
    let ec2 = client(&moto.url()).ec2(region());

    let regions = ec2.describe_regions().await.unwrap();
    assert!(regions.iter().any(|r| r.name.as_str() == "us-east-1"));
    assert!(
        regions.iter().any(|r| r.name.as_str() == "me-south-1"),
        "{regions:?}"
    );

    let zones = ec2.describe_availability_zones().await.unwrap();
    let names: Vec<_> = zones.iter().map(|z| z.name.as_str()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.contains(&"us-east-1a"));
    assert!(zones.iter().all(|z| z.is_usable() && !z.zone_id.is_empty()));

    // moto's static offering data: t3.micro is offered in 1a but not in 1e.
    let offers = ec2
        .describe_instance_type_offerings(&[InstanceType::new("t3.micro")])
        .await
        .unwrap();
    let offered: BTreeSet<_> = offers.iter().map(|o| o.location.as_str()).collect();
    assert!(offered.contains("us-east-1a"), "{offered:?}");
    assert!(!offered.contains("us-east-1e"), "{offered:?}");
    assert!(
        offers
            .iter()
            .all(|o| o.instance_type.as_str() == "t3.micro")
    );

    // Images by owner, then by name (how the spec's `image:` is resolved).
    let all = ec2.describe_images(&["amazon"], &[], &[]).await.unwrap();
    assert!(all.len() > 10, "{}", all.len());
    let pick = all.iter().find(|i| i.name.is_some()).unwrap();
    let name = pick.name.clone().unwrap();
    let named = ec2
        .describe_images(&["amazon"], &[], &[Filter::new("name", [name.as_str()])])
        .await
        .unwrap();
    assert!(
        named
            .iter()
            .all(|i| i.name.as_deref() == Some(name.as_str()))
    );
    assert!(named.iter().any(|i| i.id == pick.id));
    let by_id = ec2
        .describe_images(&[], std::slice::from_ref(&pick.id), &[])
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    assert!(by_id[0].root_device_name.is_some());
}

#[tokio::test]
async fn instances_launch_tagged_and_are_found_by_tag_across_pages() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url()).await;
    // Pages of 5 (EC2's smallest) so a dozen instances take several DescribeInstances calls.
    let ec2 = client(&proxy.url).with_page_size(5).ec2(region());
    let mine = cfxm_tags("alice", "fleet");
    let theirs = cfxm_tags("bob", "fleet");
    let zone = ZoneId::new("us-east-1a");

    let vpc = ec2.create_vpc(&cidr("10.0.0.0/16"), &mine).await.unwrap();
    let subnet = ec2
        .create_subnet(&vpc.id, &cidr("10.0.0.0/20"), &zone, &mine)
        .await
        .unwrap();
    let sg = ec2
        .create_security_group(&vpc.id, "conflux-massive-test-alice", "cfxm", &mine)
        .await
        .unwrap();
    let key = KeyName::new("conflux-massive-test-alice");
    ec2.import_key_pair(&key, PUBLIC_KEY, &mine).await.unwrap();
    let image = ec2
        .describe_images(&["amazon"], &[], &[])
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.root_device_name.is_some())
        .expect("an image with a root device");
    let device = image.root_device_name.clone().unwrap();

    let launch = |n: u32, tags: &cfxm::provider::aws::Tags, token: &str| LaunchRequest {
        image: image.id.clone(),
        instance_type: InstanceType::new("t3.micro"),
        zone: zone.clone(),
        subnet: subnet.id.clone(),
        security_group: sg.clone(),
        key_name: key.clone(),
        count: n,
        // All or nothing, so moto (which launches MinCount) and AWS agree on the count.
        min_count: n,
        client_token: ClientToken::new(token),
        root_volume: RootVolume {
            device_name: device.clone(),
            size_gb: 40,
            volume_type: "gp3".into(),
            iops: Some(3000),
            throughput_mbps: Some(300),
        },
        public_ip: true,
        spot: false,
        tags: tags.clone(),
    };

    // Seven launches of one and one of three: 10 instances in 8 reservations; plus bob's.
    let mut launched = Vec::new();
    for i in 0..7 {
        let got = ec2
            .run_instances(&launch(1, &mine, &format!("cfxm-t-{i}")))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        launched.extend(got);
    }
    let three = ec2
        .run_instances(&launch(3, &mine, "cfxm-t-big"))
        .await
        .unwrap();
    assert_eq!(three.len(), 3);
    launched.extend(three);
    let bobs = ec2
        .run_instances(&launch(1, &theirs, "cfxm-t-bob"))
        .await
        .unwrap();
    assert!(
        launched.iter().all(|i| i.tags == mine),
        "tags at creation: {launched:?}"
    );

    // The wire request: tags for instance and volume, token, public IP, gp3 disk.
    let sent = proxy.recorded_actions("RunInstances");
    let first = &sent[0];
    assert_eq!(first.tag_spec(1), (Some("instance".into()), mine.clone()));
    assert_eq!(first.tag_spec(2), (Some("volume".into()), mine.clone()));
    for (k, v) in [
        ("ClientToken", "cfxm-t-0"),
        ("MinCount", "1"),
        ("MaxCount", "1"),
        ("Placement.AvailabilityZone", "us-east-1a"),
        ("NetworkInterface.1.DeviceIndex", "0"),
        ("NetworkInterface.1.AssociatePublicIpAddress", "true"),
        ("NetworkInterface.1.SubnetId", subnet.id.as_str()),
        ("NetworkInterface.1.SecurityGroupId.1", sg.as_str()),
        ("BlockDeviceMapping.1.DeviceName", device.as_str()),
        ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
        ("BlockDeviceMapping.1.Ebs.VolumeSize", "40"),
        ("BlockDeviceMapping.1.Ebs.Iops", "3000"),
        ("BlockDeviceMapping.1.Ebs.Throughput", "300"),
        ("KeyName", key.as_str()),
    ] {
        assert_eq!(first.get(k), Some(v), "{k}");
    }

    // Found by exact tags, every page, nothing of bob's.
    let before = proxy.recorded_actions("DescribeInstances").len();
    let found = ec2
        .describe_instances(&InstanceQuery::tagged(&mine))
        .await
        .unwrap();
    let pages = proxy.recorded_actions("DescribeInstances");
    let pages = &pages[before..];
    assert!(
        pages.len() >= 2,
        "expected several pages, got {}",
        pages.len()
    );
    assert_eq!(pages[0].get("MaxResults"), Some("5"));
    assert!(pages[1].get("NextToken").is_some());
    let ids: BTreeSet<_> = found.iter().map(|i| i.id.clone()).collect();
    let want: BTreeSet<_> = launched.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, want);
    for i in &found {
        assert_eq!(i.tags, mine);
        assert_eq!(i.state.name, InstanceStateName::Running);
        assert_eq!(i.zone.as_ref(), Some(&zone));
        assert_eq!(i.subnet_id.as_ref(), Some(&subnet.id));
        assert_eq!(i.key_name.as_ref(), Some(&key));
        assert!(i.public_ip.is_some(), "no public IP: {i:?}");
        assert!(i.private_ip.is_some());
        assert!(
            i.client_token
                .as_deref()
                .is_some_and(|t| t.starts_with("cfxm-t-")),
            "{i:?}"
        );
    }

    // The root volumes carry the tags too.
    let volumes = ec2
        .describe_tags(&[
            Filter::new("resource-type", ["volume"]),
            Filter::new("key", ["user"]),
            Filter::new("value", ["alice"]),
        ])
        .await
        .unwrap();
    assert_eq!(volumes.len(), 10, "{volumes:?}");

    // By id (no MaxResults with ids).
    let two: Vec<_> = launched.iter().take(2).map(|i| i.id.clone()).collect();
    let q = InstanceQuery {
        ids: two.clone(),
        ..Default::default()
    };
    let by_id = ec2.describe_instances(&q).await.unwrap();
    assert_eq!(
        by_id.iter().map(|i| i.id.clone()).collect::<Vec<_>>().len(),
        2
    );
    let last = proxy.recorded_actions("DescribeInstances").pop().unwrap();
    assert!(last.get("MaxResults").is_none());

    // Terminate ours; they leave the listing (moto keeps them as `terminated`).
    let ids: Vec<_> = want.into_iter().collect();
    let changes = ec2.terminate_instances(&ids).await.unwrap();
    assert_eq!(changes.len(), 10);
    assert!(
        changes
            .iter()
            .all(|c| c.previous.name == InstanceStateName::Running)
    );
    assert!(
        ec2.describe_instances(&InstanceQuery::tagged(&mine))
            .await
            .unwrap()
            .is_empty()
    );
    let with_dead = InstanceQuery {
        include_terminated: true,
        ..InstanceQuery::tagged(&mine)
    };
    let dead = ec2.describe_instances(&with_dead).await.unwrap();
    assert_eq!(dead.len(), 10);
    assert!(
        dead.iter()
            .all(|i| i.state.name == InstanceStateName::Terminated)
    );

    // Bob's instance is untouched.
    let left = ec2
        .describe_instances(&InstanceQuery::tagged(&theirs))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, bobs[0].id);

    // An unknown id is NotFound.
    let q = InstanceQuery {
        ids: vec![cfxm::provider::aws::InstanceId::new("i-0123456789abcdef0")],
        ..Default::default()
    };
    let err = ec2.describe_instances(&q).await.unwrap_err();
    assert_eq!(err.class, cfxm::provider::ErrorClass::NotFound, "{err}");
}
