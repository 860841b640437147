//! The Aliyun area: cfxm's own client against the emulator for every action, paging style and
//! error class; the emulator's knobs, persistence and control endpoints; `cfxm emulator serve`;
//! the official Alibaba Cloud Python SDK driving the emulator in both signing modes; and what
//! existing Aliyun tooling (the original tool) needs from it.

mod cli;
mod errors;
mod knobs;
mod paging;
mod roundtrip;
mod sdk;
mod tooling;

use cfxm::emulator::{CONFLUX_IMAGE, Emulator, EmulatorConfig, EmulatorHandle};
use cfxm::provider::aliyun::{
    Client, ClientConfig, CreateSecurityGroupRequest, CreateVSwitchRequest, CreateVpcRequest,
    Endpoints, ImageQuery, Permission, Signing, Tag,
};
use cfxm::spec::RegionId;

pub const REGION: &str = "ap-southeast-1";
pub const ZONE: &str = "ap-southeast-1a";
pub const TYPE: &str = "ecs.g8i.2xlarge";

pub struct Env {
    pub emu: EmulatorHandle,
    pub client: Client,
    pub region: RegionId,
}

pub async fn start(config: EmulatorConfig) -> EmulatorHandle {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Emulator::start(EmulatorConfig {
        seed: Some(42),
        ..config
    })
    .await
    .expect("the emulator starts")
}

pub fn client_for(emu: &EmulatorHandle, signing: Signing) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = ClientConfig::new(
        emu.credentials(),
        Endpoints::single(&emu.endpoint_url(), "the test").unwrap(),
    );
    config.signing = signing;
    Client::new(config).unwrap()
}

pub async fn env() -> Env {
    env_with(EmulatorConfig::default()).await
}

pub async fn env_with(config: EmulatorConfig) -> Env {
    let emu = start(config).await;
    let client = client_for(&emu, Signing::V3);
    Env {
        emu,
        client,
        region: RegionId::new(REGION),
    }
}

/// The tags every test resource carries.
pub fn tags() -> Vec<Tag> {
    vec![
        Tag::new("conflux-massive-test", "true"),
        Tag::new("user", "alice"),
        Tag::new("cfxm-spec", "t"),
    ]
}

/// A VPC, a vSwitch in `ZONE`, a security group with SSH open, and the conflux image.
pub struct Net {
    pub vpc: String,
    pub vswitch: String,
    pub sg: String,
    pub image: String,
}

pub async fn network(env: &Env) -> Net {
    let c = &env.client;
    let r = &env.region;
    let vpc = c
        .create_vpc(
            r,
            &CreateVpcRequest {
                cidr_block: "10.0.0.0/16".into(),
                name: "conflux-massive-test-alice".into(),
                tags: tags(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .vpc_id;
    let vswitch = c
        .create_vswitch(
            r,
            &CreateVSwitchRequest {
                vpc_id: vpc.clone(),
                zone_id: ZONE.into(),
                cidr_block: "10.0.0.0/20".into(),
                name: "conflux-massive-test-alice".into(),
                tags: tags(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let sg = c
        .create_security_group(
            r,
            &CreateSecurityGroupRequest {
                vpc_id: vpc.clone(),
                name: "conflux-massive-test-alice".into(),
                tags: tags(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    c.authorize_security_group(r, &sg, &[Permission::tcp(22, 22, "0.0.0.0/0")])
        .await
        .unwrap();
    let image = c
        .describe_images(
            r,
            &ImageQuery {
                image_name: Some(CONFLUX_IMAGE.into()),
                owner_alias: Some("self".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0)
        .image_id;
    Net {
        vpc,
        vswitch,
        sg,
        image,
    }
}

/// A RunInstances request for `amount` tagged hosts on `net`.
pub fn run_request(net: &Net, amount: u32) -> cfxm::provider::aliyun::RunInstancesRequest {
    cfxm::provider::aliyun::RunInstancesRequest {
        zone_id: Some(ZONE.into()),
        image_id: net.image.clone(),
        instance_type: TYPE.into(),
        security_group_id: net.sg.clone(),
        vswitch_id: net.vswitch.clone(),
        amount,
        min_amount: Some(1),
        tags: tags(),
        internet_max_bandwidth_out: 100,
        system_disk_category: Some("cloud_essd".into()),
        system_disk_size_gb: Some(40),
        ..Default::default()
    }
}

/// How many calls of `action` the emulator logged.
pub fn count(emu: &EmulatorHandle, action: &str) -> usize {
    emu.calls().iter().filter(|c| c.action == action).count()
}

/// The repository root.
pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
