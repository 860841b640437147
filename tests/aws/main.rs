//! The AWS area: the EC2 client (`cfxm::provider::aws`) against a real `moto_server` from the
//! test venv, with a fault-injecting proxy for the errors moto cannot produce, and moto's own
//! IAM signature checking for SigV4; then the built `cfxm` (plan, apply, destroy) on AWS alone
//! and beside the Aliyun emulator in one spec (`world` is that harness).

mod auth;
mod faults;
mod instances;
mod lifecycle;
mod mixed;
mod moto;
mod network;
mod placement;
mod proxy;
mod world;

use cfxm::provider::aws::{AwsClient, Credentials, Endpoint, Secret, Tags};
use cfxm::spec::{Cidr, RegionId};

pub const REGION: &str = "us-east-1";

/// An OpenSSH ed25519 public key (moto checks the format on import).
pub const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChI3YfmGrty57Hea29mYU2jrAZEwj4JWzB0CP5kzabT cfxm-test";

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client with throwaway credentials (moto does not check them unless told to).
pub fn client(url: &str) -> AwsClient {
    install_crypto();
    AwsClient::new(
        Credentials::new("AKIAIOSFODNN7EXAMPLE", Secret::new("test-secret")),
        Endpoint::fixed(url).unwrap(),
    )
    .unwrap()
}

pub fn region() -> RegionId {
    RegionId::new(REGION)
}

/// The three tags every cfxm resource carries (DESIGN §6).
pub fn cfxm_tags(owner: &str, spec: &str) -> Tags {
    [
        ("conflux-massive-test", "true"),
        ("user", owner),
        ("cfxm-spec", spec),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn cidr(s: &str) -> Cidr {
    s.parse().unwrap()
}
