//! AWS EC2: the original tool's legacy cloud, as a typed client over the EC2 Query API.
//!
//! - [`sigv4`]: request signing (pure, checked against AWS's published vectors);
//! - [`credentials`]: the standard credential chain and the redacting [`Secret`];
//! - `client`: [`AwsClient`] (shared HTTP pool, endpoint, credentials) and per-region [`Ec2`]
//!   handles that sign, send, decode XML and follow `NextToken`;
//! - `network`, `compute`, `tags`: the typed actions, as methods of [`Ec2`];
//! - `error`: [`AwsError`] and [`classify`], the one mapping of EC2 codes to [`ErrorClass`];
//! - `fingerprint`: [`key_fingerprint`], EC2's fingerprint of an imported public key;
//! - `reconcile`: [`AwsProvider`], the reconciler's `Provider` over all of the above (kinds,
//!   tags in every create, discovery by tags, placement fallbacks, journaled mutations).
//!
//! Endpoints: AWS by default, or one URL for every region from `AWS_ENDPOINT_URL_EC2` /
//! `AWS_ENDPOINT_URL` (moto in the tests). The client layer holds no retry logic and no
//! placement logic; it reports each call's outcome, classified; `reconcile` paces and retries
//! under the apply's policy, and the reconciler decides.
//!
//! [`ErrorClass`]: crate::provider::ErrorClass

mod client;
mod compute;
pub mod credentials;
mod error;
mod fingerprint;
mod network;
mod reconcile;
pub mod sigv4;
mod tags;
mod types;

pub use client::{AwsClient, AwsSetupError, EC2_VERSION, Ec2, Endpoint};
pub use compute::{
    AvailabilityZone, Image, Instance, InstanceQuery, InstanceState, InstanceStateChange,
    InstanceStateName, InstanceTypeOffering, KeyPair, LaunchRequest, Region, RootVolume,
};
pub use credentials::{CredentialSource, Credentials, CredentialsError, Secret};
pub use error::{AwsError, AwsErrorDetail, Shortage, classify};
pub use fingerprint::key_fingerprint;
pub use network::{
    GatewayAttachment, IngressRule, InternetGateway, IpPermission, IpRange, Route, RouteTable,
    RouteTableAssociation, SecurityGroup, Subnet, Vpc,
};
pub use reconcile::AwsProvider;
pub use tags::TagDescription;
pub use types::{
    ClientToken, Filter, ImageId, InstanceId, InternetGatewayId, KeyName, KeyPairId, RouteTableId,
    SecurityGroupId, SubnetId, Tags, VpcId,
};
