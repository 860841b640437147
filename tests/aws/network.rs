//! The network's whole life against moto: VPC, internet gateway, default route, a subnet per
//! zone, security group and key pair, each tagged in its create call, found by exact tags (and
//! only those), then deleted in reverse order.

use cfxm::provider::ErrorClass;
use cfxm::provider::aws::{Filter, IngressRule, KeyName};

use crate::moto::Moto;
use crate::proxy::Proxy;
use crate::{PUBLIC_KEY, cfxm_tags, cidr, client, region};

#[tokio::test]
async fn network_resources_live_and_die_by_their_tags() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url()).await;
    let ec2 = client(&proxy.url).ec2(region());
    let mine = cfxm_tags("alice", "net");
    let by_tags = Filter::tags(&mine);

    // Neighbours that must survive: another owner's VPC (same spec name) and an untagged one.
    let theirs = ec2
        .create_vpc(&cidr("10.1.0.0/16"), &cfxm_tags("bob", "net"))
        .await
        .unwrap();
    let untagged = ec2
        .create_vpc(&cidr("10.2.0.0/16"), &Default::default())
        .await
        .unwrap();

    // VPC, tagged at creation.
    let vpc = ec2.create_vpc(&cidr("10.0.0.0/16"), &mine).await.unwrap();
    assert_eq!(vpc.cidr_block, "10.0.0.0/16");
    let found = ec2.describe_vpcs(&[], &by_tags).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, vpc.id);
    assert_eq!(found[0].tags, mine);
    assert_eq!(
        ec2.describe_vpcs(std::slice::from_ref(&vpc.id), &[])
            .await
            .unwrap()
            .len(),
        1
    );

    // Internet gateway, attached, and the main route table's default route through it.
    let igw = ec2.create_internet_gateway(&mine).await.unwrap();
    ec2.attach_internet_gateway(&igw.id, &vpc.id).await.unwrap();
    let igws = ec2.describe_internet_gateways(&[], &by_tags).await.unwrap();
    assert_eq!(igws.len(), 1);
    assert_eq!(igws[0].tags, mine);
    assert_eq!(igws[0].attachments.len(), 1);
    assert_eq!(igws[0].attachments[0].vpc_id, vpc.id);
    let table = ec2
        .main_route_table(&vpc.id)
        .await
        .unwrap()
        .expect("a main route table");
    ec2.create_route(&table.id, "0.0.0.0/0", &igw.id)
        .await
        .unwrap();
    let table = ec2.main_route_table(&vpc.id).await.unwrap().unwrap();
    let default = table.route_to("0.0.0.0/0").expect("the default route");
    assert_eq!(default.gateway_id.as_deref(), Some(igw.id.as_str()));
    // The main route table comes with the VPC, untagged; CreateTags marks it as ours.
    assert!(
        ec2.describe_route_tables(&[], &by_tags)
            .await
            .unwrap()
            .is_empty()
    );
    ec2.create_tags(&[table.id.as_str()], &mine).await.unwrap();
    let tables = ec2.describe_route_tables(&[], &by_tags).await.unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!((&tables[0].id, &tables[0].tags), (&table.id, &mine));

    // One subnet per zone, in the region's usable zones.
    let zones: Vec<_> = ec2
        .describe_availability_zones()
        .await
        .unwrap()
        .into_iter()
        .filter(|z| z.is_usable())
        .take(2)
        .collect();
    assert_eq!(zones.len(), 2);
    let mut subnets = Vec::new();
    for (i, zone) in zones.iter().enumerate() {
        let block = cidr(&format!("10.0.{i}.0/24"));
        let subnet = ec2
            .create_subnet(&vpc.id, &block, &zone.name, &mine)
            .await
            .unwrap();
        assert_eq!(subnet.zone, zone.name);
        subnets.push(subnet);
    }
    let found = ec2.describe_subnets(&[], &by_tags).await.unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|s| s.tags == mine && s.vpc_id == vpc.id));

    // Security group: SSH from one address, node ports inside the VPC; re-applying converges.
    let sg = ec2
        .create_security_group(&vpc.id, "conflux-massive-test-alice", "cfxm net", &mine)
        .await
        .unwrap();
    let rules = [
        IngressRule::tcp(22, 22, vec![cidr("203.0.113.7/32")]),
        IngressRule::tcp(1024, 49151, vec![cidr("10.0.0.0/16")]),
    ];
    ec2.authorize_ingress(&sg, &rules).await.unwrap();
    ec2.authorize_ingress(&sg, &rules).await.unwrap();
    let groups = ec2.describe_security_groups(&[], &by_tags).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].id, sg);
    assert_eq!(groups[0].tags, mine);
    let mut seen: Vec<_> = groups[0]
        .ingress
        .iter()
        .map(|p| {
            let ranges: Vec<_> = p.ip_ranges.iter().map(|r| r.cidr.as_str()).collect();
            (p.from_port, p.to_port, ranges.join(","))
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (Some(22), Some(22), "203.0.113.7/32".to_string()),
            (Some(1024), Some(49151), "10.0.0.0/16".to_string())
        ]
    );

    // Key pair import.
    let key = KeyName::new("conflux-massive-test-alice");
    assert!(ec2.find_key_pair(&key).await.unwrap().is_none());
    let imported = ec2.import_key_pair(&key, PUBLIC_KEY, &mine).await.unwrap();
    assert_eq!(imported.name, key);
    assert!(!imported.fingerprint.is_empty());
    let found = ec2.find_key_pair(&key).await.unwrap().expect("imported");
    assert_eq!(found.tags, mine);
    assert_eq!(
        ec2.describe_key_pairs(&[], &by_tags).await.unwrap().len(),
        1
    );

    // Every create carried the tags in the call itself.
    for (action, kind) in [
        ("CreateVpc", "vpc"),
        ("CreateInternetGateway", "internet-gateway"),
        ("CreateSubnet", "subnet"),
        ("CreateSecurityGroup", "security-group"),
        ("ImportKeyPair", "key-pair"),
    ] {
        let calls = proxy.recorded_actions(action);
        let ours = calls
            .iter()
            .filter(|r| r.tag_spec(1) == (Some(kind.to_string()), mine.clone()))
            .count();
        assert!(ours >= 1, "{action} was sent without the tags: {calls:?}");
    }

    // DescribeTags sees every kind at once.
    let tagged = ec2
        .describe_tags(&[
            Filter::new("key", ["cfxm-spec"]),
            Filter::new("value", ["net"]),
        ])
        .await
        .unwrap();
    let mut kinds: Vec<_> = tagged
        .iter()
        .filter(|t| {
            [
                vpc.id.as_str(),
                igw.id.as_str(),
                sg.as_str(),
                subnets[0].id.as_str(),
            ]
            .contains(&t.resource_id.as_str())
        })
        .map(|t| t.resource_type.as_str())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["internet-gateway", "security-group", "subnet", "vpc"]
    );

    // Deleting the VPC first is refused while things depend on it: a Conflict to wait out.
    let early = ec2.delete_vpc(&vpc.id).await.unwrap_err();
    assert_eq!(early.class, ErrorClass::Conflict, "{early}");
    assert_eq!(early.code, "DependencyViolation");

    // Reverse order: SG, subnets, route, IGW detach + delete, VPC, key pair.
    ec2.delete_security_group(&sg).await.unwrap();
    for s in &subnets {
        ec2.delete_subnet(&s.id).await.unwrap();
    }
    ec2.delete_route(&table.id, "0.0.0.0/0").await.unwrap();
    ec2.detach_internet_gateway(&igw.id, &vpc.id).await.unwrap();
    ec2.delete_internet_gateway(&igw.id).await.unwrap();
    ec2.delete_vpc(&vpc.id).await.unwrap();
    ec2.delete_key_pair(&key).await.unwrap();

    assert!(ec2.describe_vpcs(&[], &by_tags).await.unwrap().is_empty());
    assert!(
        ec2.describe_internet_gateways(&[], &by_tags)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ec2.describe_subnets(&[], &by_tags)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ec2.describe_security_groups(&[], &by_tags)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ec2.find_key_pair(&key).await.unwrap().is_none());

    // Already gone is NotFound, which destroy treats as done.
    let again = ec2.delete_vpc(&vpc.id).await.unwrap_err();
    assert_eq!(again.class, ErrorClass::NotFound, "{again}");
    let gone = ec2.delete_subnet(&subnets[0].id).await.unwrap_err();
    assert_eq!(gone.class, ErrorClass::NotFound, "{gone}");

    // The neighbours are untouched.
    let left = ec2
        .describe_vpcs(&[theirs.id.clone(), untagged.id.clone()], &[])
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
}
