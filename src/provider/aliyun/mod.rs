//! The Aliyun (Alibaba Cloud) provider: request signing, credentials, endpoints, the HTTP
//! client and the typed ECS/VPC actions cfxm needs, with every failure classified once.
//!
//! No SDK: cfxm speaks the RPC OpenAPI directly (aliyun-api.md). The same [`sign`] module
//! verifies requests in the emulator. This module does not decide what to create or when to
//! retry; the reconciler does, from the typed answers and each error's
//! [`crate::provider::ErrorClass`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cfxm::provider::aliyun::{Client, ClientConfig, Credentials, Endpoints, InstanceQuery};
//! let client = Client::new(ClientConfig::new(
//!     Credentials::new("cfxm-local", "cfxm-local-secret"),
//!     Endpoints::single("http://127.0.0.1:8080", "a test")?,
//! ))?;
//! let region = cfxm::spec::RegionId::new("ap-southeast-1");
//! let all = client.describe_instances(&region, &InstanceQuery::default()).await?;
//! # Ok(()) }
//! ```

mod client;
mod credentials;
mod ecs;
mod endpoint;
mod error;
mod reconcile;
pub mod sign;
mod types;
mod vpc;

pub use client::{Client, ClientBuildError, ClientConfig, Params, SetupError, Signing};
pub use credentials::{
    CredentialSource, Credentials, CredentialsError, Secret, resolve as resolve_credentials,
    resolve_from_env as resolve_credentials_from_env,
};
pub use ecs::{
    AvailableResourceQuery, CopyImageRequest, CreateImageRequest, CreateSecurityGroupRequest,
    EcsResourceType, ImageQuery, InstancePage, InstanceQuery, KeyPairQuery, MAX_IDS_PER_CALL,
    MAX_TAG_RESOURCES_PER_CALL, MAX_TAGS_PER_CALL, RunInstancesRequest, RunInstancesResponse,
    SecurityGroupQuery,
};
pub use endpoint::{Api, ENDPOINT_ENV, Endpoint, EndpointError, Endpoints};
pub use error::{AliyunError, AliyunErrorDetail, classify, local_codes};
pub use reconcile::{AliyunProvider, Timing};
pub use types::{
    AvailableResource, AvailableZone, EipAddress, ImageInfo, InstanceInfo, InstanceStatus,
    InstanceStatusInfo, InstanceTypeInfo, KeyPairInfo, Permission, RegionInfo,
    SecurityGroupAttribute, SecurityGroupInfo, SupportedResource, Tag, TagResource, VSwitchInfo,
    VpcAttributes, VpcInfo, ZoneInfo,
};
pub use vpc::{
    CreateVSwitchRequest, CreateVpcRequest, CreatedVpc, VSwitchQuery, VpcQuery, VpcResourceType,
};

/// The fingerprint Aliyun shows for a key pair: lowercase hex MD5 of the public key blob (the
/// base64 field of an OpenSSH public key line), no colons. `None` if the line is not one.
pub fn key_fingerprint(public_key_line: &str) -> Option<String> {
    use base64::Engine as _;
    let mut parts = public_key_line.split_whitespace();
    let _kind = parts.next()?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(parts.next()?)
        .ok()?;
    use md5::Digest as _;
    let digest = md5::Md5::digest(&blob);
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}
