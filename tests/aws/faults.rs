//! The errors moto cannot produce, injected by the proxy with EC2's real shapes, each classified
//! into the shared vocabulary; and the type/zone fallback those classes make possible.

use cfxm::provider::ErrorClass;
use cfxm::provider::aws::{
    AwsClient, ClientToken, Credentials, Endpoint, KeyName, LaunchRequest, RootVolume, Secret,
    Shortage,
};
use cfxm::spec::{InstanceType, ZoneId};

use crate::moto::Moto;
use crate::proxy::{Fault, FaultBody, Proxy};
use crate::{PUBLIC_KEY, cfxm_tags, cidr, client, region};

const NO_CAPACITY: &str = "We currently do not have sufficient m6i.2xlarge capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. You can currently get m6i.2xlarge capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c, us-east-1d, us-east-1f.";
const UNSUPPORTED: &str = "Your requested instance type (m7i.2xlarge) is not supported in your requested Availability Zone (us-east-1a). Please retry your request by not specifying an Availability Zone or choosing us-east-1b, us-east-1c, us-east-1d, us-east-1f.";
// The original tool's zone heuristic exists for answers of this kind (its Bahrain case).
const ZONE_DOWN: &str = "The requested availability zone us-east-1c is currently unavailable. Please choose another zone.";

fn fault(
    action: &'static str,
    when: Vec<(&'static str, &'static str)>,
    status: u16,
    code: &'static str,
    message: &'static str,
) -> Fault {
    Fault {
        action,
        when,
        times: 1,
        status,
        body: FaultBody::Ec2 { code, message },
    }
}

#[tokio::test]
async fn capacity_throttling_and_server_errors_classify_and_drive_fallback() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url()).await;
    let ec2 = client(&proxy.url).ec2(region());
    let tags = cfxm_tags("alice", "faults");
    let zone_a = ZoneId::new("us-east-1a");

    // Throttling on a read, once: Throttled, then the same call succeeds.
    proxy.inject(fault(
        "DescribeVpcs",
        vec![],
        503,
        "RequestLimitExceeded",
        "Request limit exceeded.",
    ));
    let err = ec2.describe_vpcs(&[], &[]).await.unwrap_err();
    assert_eq!(
        err.class,
        ErrorClass::Throttled { retry_after: None },
        "{err}"
    );
    assert!(err.class.is_retryable());
    assert!(err.request_id.is_some());
    assert!(err.to_string().contains("rate-limiting"), "{err}");
    ec2.describe_vpcs(&[], &[]).await.unwrap();

    // 5xx from EC2 and a non-XML page from something in between: Transient.
    proxy.inject(fault(
        "DescribeSubnets",
        vec![],
        503,
        "Unavailable",
        "The service is unavailable. Please try again shortly.",
    ));
    let err = ec2.describe_subnets(&[], &[]).await.unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.class),
        ("Unavailable", ErrorClass::Transient)
    );
    proxy.inject(Fault {
        action: "DescribeSubnets",
        when: vec![],
        times: 1,
        status: 502,
        body: FaultBody::Raw("<html><body>502 Bad Gateway</body></html>"),
    });
    let err = ec2.describe_subnets(&[], &[]).await.unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.class),
        ("HTTP 502", ErrorClass::Transient)
    );

    // The infra for launches.
    let vpc = ec2.create_vpc(&cidr("10.0.0.0/16"), &tags).await.unwrap();
    // A zone that is down fails CreateSubnet with NoCapacity for that whole zone.
    proxy.inject(fault(
        "CreateSubnet",
        vec![("AvailabilityZone", "us-east-1c")],
        400,
        "InvalidParameterValue",
        ZONE_DOWN,
    ));
    let err = ec2
        .create_subnet(
            &vpc.id,
            &cidr("10.0.2.0/24"),
            &ZoneId::new("us-east-1c"),
            &tags,
        )
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::NoCapacity, "{err}");
    assert_eq!(err.shortage, Some(Shortage::Zone));
    assert_eq!(err.zone, Some(ZoneId::new("us-east-1c")));

    let subnet = ec2
        .create_subnet(&vpc.id, &cidr("10.0.0.0/24"), &zone_a, &tags)
        .await
        .unwrap();
    let sg = ec2
        .create_security_group(&vpc.id, "conflux-massive-test-alice", "cfxm", &tags)
        .await
        .unwrap();
    let key = KeyName::new("k");
    ec2.import_key_pair(&key, PUBLIC_KEY, &tags).await.unwrap();
    let image = ec2
        .describe_images(&["amazon"], &[], &[])
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.root_device_name.is_some())
        .unwrap();

    // Stock-out on the first type, "not offered here" on the second, in zone a.
    proxy.inject(fault(
        "RunInstances",
        vec![
            ("InstanceType", "m6i.2xlarge"),
            ("Placement.AvailabilityZone", "us-east-1a"),
        ],
        500,
        "InsufficientInstanceCapacity",
        NO_CAPACITY,
    ));
    proxy.inject(fault(
        "RunInstances",
        vec![
            ("InstanceType", "m7i.2xlarge"),
            ("Placement.AvailabilityZone", "us-east-1a"),
        ],
        400,
        "Unsupported",
        UNSUPPORTED,
    ));

    // A miniature of the placement loop: walk the type preference on NoCapacity, stop on
    // anything else. (The reconciler's real loop also walks zones and regions.)
    let preference = ["m6i.2xlarge", "m7i.2xlarge", "t3.micro"];
    let mut failures = Vec::new();
    let mut launched = None;
    for (n, ty) in preference.iter().enumerate() {
        let req = LaunchRequest {
            image: image.id.clone(),
            instance_type: InstanceType::new(*ty),
            zone: zone_a.clone(),
            subnet: subnet.id.clone(),
            security_group: sg.clone(),
            key_name: key.clone(),
            count: 2,
            min_count: 2,
            client_token: ClientToken::new(format!("cfxm-faults-{n}")),
            root_volume: RootVolume {
                device_name: image.root_device_name.clone().unwrap(),
                size_gb: 40,
                volume_type: "gp3".into(),
                iops: Some(3000),
                throughput_mbps: Some(300),
            },
            public_ip: true,
            spot: false,
            tags: tags.clone(),
        };
        match ec2.run_instances(&req).await {
            Ok(instances) => {
                launched = Some((*ty, instances));
                break;
            }
            Err(e) if e.class == ErrorClass::NoCapacity => failures.push(e),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    let (ty, instances) = launched.expect("the third type launches");
    assert_eq!(ty, "t3.micro");
    assert_eq!(instances.len(), 2);
    assert_eq!(failures.len(), 2);

    let stock = &failures[0];
    assert_eq!(stock.code, "InsufficientInstanceCapacity");
    assert_eq!(stock.shortage, Some(Shortage::Stock));
    assert_eq!(stock.zone, Some(zone_a.clone()));
    assert_eq!(stock.status, Some(500));
    assert!(!stock.class.is_retryable());
    let text = stock.to_string();
    assert!(text.starts_with("EC2 `RunInstances` in us-east-1 failed with `InsufficientInstanceCapacity` (zone us-east-1a): We currently do not have sufficient m6i.2xlarge capacity"), "{text}");
    assert!(text.contains("[request id "), "{text}");
    assert!(
        text.ends_with("try the next instance type or another zone"),
        "{text}"
    );

    let unsupported = &failures[1];
    assert_eq!(unsupported.code, "Unsupported");
    assert_eq!(unsupported.shortage, Some(Shortage::TypeNotOffered));
    assert!(
        unsupported.to_string().contains("not offered in this zone"),
        "{unsupported}"
    );

    // Throttled launches are retryable in place (and reuse the ClientToken).
    proxy.inject(fault(
        "RunInstances",
        vec![],
        503,
        "RequestLimitExceeded",
        "Request limit exceeded.",
    ));
    let mut req_again = LaunchRequest {
        image: image.id.clone(),
        instance_type: InstanceType::new("t3.micro"),
        zone: zone_a.clone(),
        subnet: subnet.id.clone(),
        security_group: sg.clone(),
        key_name: key.clone(),
        count: 1,
        min_count: 1,
        client_token: ClientToken::new("cfxm-faults-retry"),
        root_volume: RootVolume {
            device_name: image.root_device_name.clone().unwrap(),
            size_gb: 40,
            volume_type: "gp3".into(),
            iops: None,
            throughput_mbps: None,
        },
        public_ip: false,
        spot: false,
        tags: tags.clone(),
    };
    let err = ec2.run_instances(&req_again).await.unwrap_err();
    assert!(matches!(err.class, ErrorClass::Throttled { .. }), "{err}");
    req_again.public_ip = true;
    ec2.run_instances(&req_again).await.unwrap();
    let tokens: Vec<_> = proxy
        .recorded_actions("RunInstances")
        .iter()
        .filter_map(|r| r.get("ClientToken").map(str::to_string))
        .filter(|t| t == "cfxm-faults-retry")
        .collect();
    assert_eq!(tokens.len(), 2);
}

#[tokio::test]
async fn answers_that_are_not_ec2_are_refused_not_read_as_empty() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url()).await;
    let ec2 = client(&proxy.url).ec2(region());
    let ok_page = |body: &'static str| Fault {
        action: "DescribeVpcs",
        when: vec![],
        times: 2,
        status: 200,
        body: FaultBody::Raw(body),
    };

    // A 200 that is not EC2's (a captive portal, a wrong endpoint) must not read as "no VPCs".
    proxy.inject(ok_page("<html><body>Welcome</body></html>"));
    let err = ec2.describe_vpcs(&[], &[]).await.unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.class),
        ("MalformedResponse", ErrorClass::Fatal)
    );
    assert!(
        err.to_string()
            .contains("expected `<DescribeVpcsResponse>`"),
        "{err}"
    );
    assert!(err.to_string().contains("AWS_ENDPOINT_URL_EC2"), "{err}");
    ec2.describe_vpcs(&[], &[]).await.unwrap_err();

    // A server that hands out the same NextToken forever is stopped, not followed.
    proxy.inject(ok_page(
        "<DescribeVpcsResponse><vpcSet/><nextToken>again</nextToken></DescribeVpcsResponse>",
    ));
    let err = ec2.describe_vpcs(&[], &[]).await.unwrap_err();
    assert!(
        err.to_string().contains("the same NextToken `again` twice"),
        "{err}"
    );
    assert_eq!(proxy.recorded_actions("DescribeVpcs").len(), 4);

    // With the faults used up, moto answers again.
    ec2.describe_vpcs(&[], &[]).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_transient_transport_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ec2 = AwsClient::new(
        Credentials::new("AKIA", Secret::new("s")),
        Endpoint::fixed(&format!("http://127.0.0.1:{port}")).unwrap(),
    )
    .unwrap()
    .ec2(region());
    let err = ec2.describe_regions().await.unwrap_err();
    assert_eq!(err.code, "Transport");
    assert_eq!(err.class, ErrorClass::Transient);
    assert!(
        err.to_string()
            .contains("EC2 `DescribeRegions` in us-east-1 failed with `Transport`"),
        "{err}"
    );
}
