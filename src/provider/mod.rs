//! Cloud providers: typed API clients for Aliyun (ECS/VPC) and AWS (EC2), and the one vocabulary
//! the reconciler uses to react to their failures.
//!
//! [`resource`] holds the cloud-neutral vocabulary the reconciler speaks (kinds, attributes, live
//! resources, tag scopes) and the [`resource::Provider`] trait each cloud implements.
//!
//! Every failed cloud call is classified exactly once, where its error code is parsed, into an
//! [`ErrorClass`]. The reconciler's retry policy looks only at the class, never at codes, so
//! resource code stays free of retry logic (STYLE §9, "Retry policy apart from resource code").

pub mod aws;
pub mod resource;

use std::time::Duration;

/// How the reconciler should react to a failed cloud call (aliyun-api.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Rate limited: retry the same request later, at or after `retry_after` when the cloud said.
    Throttled { retry_after: Option<Duration> },
    /// Server-side or transport failure (5xx, `ServiceUnavailable`, timeouts): retry with backoff.
    Transient,
    /// Stock-out or not sellable here (`OperationDenied.NoStock`, `Zone.NotOnSale`, ...): do not
    /// retry in place; re-plan placement on another zone, type or region.
    NoCapacity,
    /// The resource does not exist: "already gone" for a delete, "absent" for a read.
    NotFound,
    /// In progress or still in use (`DependencyViolation`, `Incorrect*Status`,
    /// `OperationConflict`, `LastTokenProcessing`): retry after a short wait, bounded.
    Conflict,
    /// Needs a human (auth, signature, quota, bad parameter, idempotency misuse): stop.
    Fatal,
}

impl ErrorClass {
    /// Whether retrying the same request can help.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Throttled { .. } | ErrorClass::Transient | ErrorClass::Conflict
        )
    }
}

pub mod aliyun;
