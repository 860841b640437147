//! Names that mean something: a region is a `RegionId`, not a bare `String`.
//!
//! These are checked once, when the spec is validated, and then passed around typed. They are
//! cheap to clone and order, so they serve as map keys in plans and inventories.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A string newtype with the usual impls (Display, AsRef, serde as a plain string). Used for
/// every typed name in cfxm (here, and for cloud resource ids in `provider`).
macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
            ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use name_type;

name_type!(
    /// A spec's name: the `cfxm-spec` tag value and its state directory.
    SpecName
);
name_type!(
    /// The owner: the `user` tag value and part of resource names.
    Owner
);
name_type!(
    /// A cloud region id, e.g. `ap-southeast-1`.
    RegionId
);
name_type!(
    /// A cloud zone id, e.g. `ap-southeast-1a` or `cn-hongkong-b`.
    ZoneId
);
name_type!(
    /// A cloud instance type, e.g. `ecs.g8i.2xlarge` or `m6i.2xlarge`.
    InstanceType
);

/// The kinds of cloud a spec can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudKind {
    Aliyun,
    Aws,
    Local,
    Static,
}

impl CloudKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CloudKind::Aliyun => "aliyun",
            CloudKind::Aws => "aws",
            CloudKind::Local => "local",
            CloudKind::Static => "static",
        }
    }

    /// Whether cfxm creates and deletes this cloud's hosts. A `static` inventory lists hosts
    /// that exist without cfxm: plan shows them as existing, destroy never deletes them.
    pub fn manages_hosts(self) -> bool {
        !matches!(self, CloudKind::Static)
    }
}

impl fmt::Display for CloudKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
