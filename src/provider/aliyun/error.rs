//! A failed Aliyun call, and the one function that classifies it (aliyun-api.md §4).
//!
//! Codes, not HTTP statuses, decide the class: the vendor documents several codes with two
//! statuses. The status only decides for codes this table does not know (5xx → transient).

use std::fmt;
use std::time::Duration;

use crate::provider::ErrorClass;
use crate::spec::RegionId;

/// Pseudo-codes for failures that never reached the service's error model.
pub mod local_codes {
    /// The request did not get an HTTP response (connect, TLS, timeout, reset).
    pub const TRANSPORT: &str = "cfxm.Transport";
    /// The response was not the JSON the action returns.
    pub const BAD_RESPONSE: &str = "cfxm.BadResponse";
    /// cfxm refused to send the call (a batch limit, a missing parameter).
    pub const INVALID_REQUEST: &str = "cfxm.InvalidRequest";
}

/// One failed call: what was asked, where, and what the service (or the network) said. The
/// details are boxed so `Result<T, AliyunError>` stays one pointer wide (failures are rare;
/// `Ok` paths should not pay for them); fields read through `Deref` (`e.code`, `e.class`).
#[derive(Debug, Clone)]
pub struct AliyunError(Box<AliyunErrorDetail>);

/// The fields of an [`AliyunError`].
#[derive(Debug, Clone)]
pub struct AliyunErrorDetail {
    /// The API action, e.g. `RunInstances`.
    pub action: &'static str,
    /// The region the call was for (`None` for region-less calls such as `DescribeRegions`).
    pub region: Option<RegionId>,
    /// The service's error code, or one of [`local_codes`].
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The reaction the reconciler should take; carries `x-acs-retry-after` when throttled.
    pub class: ErrorClass,
}

impl AliyunError {
    /// An error the service returned.
    pub fn service(
        action: &'static str,
        region: Option<RegionId>,
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        let class = classify(&code, Some(status), retry_after);
        Self(Box::new(AliyunErrorDetail {
            action,
            region,
            code,
            message,
            request_id,
            status: Some(status),
            class,
        }))
    }

    /// A failure without a usable response.
    pub fn local(
        action: &'static str,
        region: Option<RegionId>,
        code: &str,
        message: String,
    ) -> Self {
        Self(Box::new(AliyunErrorDetail {
            action,
            region,
            code: code.to_string(),
            class: classify(code, None, None),
            message,
            request_id: None,
            status: None,
        }))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self.class {
            ErrorClass::Throttled { retry_after } => retry_after,
            _ => None,
        }
    }

    /// What the user (or the reconciler) should do about it, one line.
    pub fn advice(&self) -> String {
        let code = self.code.as_str();
        match self.class {
            ErrorClass::Throttled { .. } => {
                "the account's API rate limit was hit; retry later (cfxm backs off) or lower `--parallelism`".into()
            }
            ErrorClass::Transient if code == local_codes::TRANSPORT => {
                "check the network and the endpoint (`CFXM_ALIYUN_ENDPOINT`, the spec's `endpoint`); retrying may help".into()
            }
            ErrorClass::Transient => "a temporary service failure; retrying the same request should succeed".into(),
            ErrorClass::NoCapacity => {
                "this zone or type cannot supply the hosts now; try another zone, instance type or region (cfxm re-plans placement)".into()
            }
            ErrorClass::NotFound => "the resource does not exist (already deleted, or in another region)".into(),
            ErrorClass::Conflict => "the resource is busy or still in use; wait a little and retry".into(),
            ErrorClass::Fatal => fatal_advice(code).into(),
        }
    }
}

fn fatal_advice(code: &str) -> &'static str {
    if code.starts_with("InvalidAccessKeyId") || code.starts_with("Forbidden.AccessKey") {
        "the access key id is unknown or disabled; check `ALIBABA_CLOUD_ACCESS_KEY_ID` (or the spec's credentials)"
    } else if code == "SignatureDoesNotMatch" || code == "IncompleteSignature" {
        "the access key secret does not match the key id; check `ALIBABA_CLOUD_ACCESS_KEY_SECRET`"
    } else if code.starts_with("InvalidTimeStamp")
        || code == "IllegalTimestamp"
        || code == "SignatureNonceUsed"
    {
        "the request was stale or replayed; check this machine's clock (it must be within 15 minutes of UTC)"
    } else if code.starts_with("Forbidden") {
        "the account or RAM user lacks permission for this action; grant it in the RAM console"
    } else if code.starts_with("QuotaExceed") || code.contains("LimitExceed") {
        "an account quota was reached; raise it in the Quota Center or ask for fewer hosts here"
    } else if code.contains("Balance")
        || code.contains("Arrearage")
        || code.contains("AccountStatus")
    {
        "the account cannot pay for more resources; top it up"
    } else if code.contains("Idempotent") || code.contains("ClientToken") {
        "a client token was reused with different parameters; this is a cfxm bug, please report it"
    } else if code == local_codes::BAD_RESPONSE {
        "the endpoint did not answer like Aliyun; check `CFXM_ALIYUN_ENDPOINT` or the spec's `endpoint`"
    } else {
        "the request was rejected; the message says which parameter, fix it and re-run"
    }
}

impl std::ops::Deref for AliyunError {
    type Target = AliyunErrorDetail;
    fn deref(&self) -> &AliyunErrorDetail {
        &self.0
    }
}

impl fmt::Display for AliyunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.action)?;
        if let Some(r) = &self.region {
            write!(f, " in `{r}`")?;
        }
        write!(f, " failed with `{}`", self.code)?;
        match (self.status, &self.request_id) {
            (Some(s), Some(id)) => write!(f, " (HTTP {s}, request id {id})")?,
            (Some(s), None) => write!(f, " (HTTP {s})")?,
            (None, Some(id)) => write!(f, " (request id {id})")?,
            (None, None) => {}
        }
        let message = self.message.trim().trim_end_matches('.');
        if !message.is_empty() {
            write!(f, ": {message}")?;
        }
        write!(f, "; {}", self.advice())
    }
}

impl std::error::Error for AliyunError {}

impl miette::Diagnostic for AliyunError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("aliyun::{}", self.code)))
    }
}

/// The one classification of an Aliyun failure (aliyun-api.md §4.2). `status` is the HTTP
/// status when a response arrived; `retry_after` is `x-acs-retry-after`.
pub fn classify(code: &str, status: Option<u16>, retry_after: Option<Duration>) -> ErrorClass {
    const NO_CAPACITY: &[&str] = &[
        "OperationDenied.NoStock",
        "Zone.NotOnSale",
        "InvalidResourceType.NotSupported",
        "InstanceType.Offline",
        "InvalidInstanceType.ZoneNotSupported",
        "Zone.NotOpen",
        "OperationDenied.ZoneNotAllowed",
        "OperationDenied.ZoneSystemCategoryNotMatch",
        "OperationDenied.CloudSSDNotSupported",
        "CategoryNotSupported",
        "InvalidVpcZone.NotSupported",
        "ResourceNotAvailable",
        "InvalidInstanceType.ValueNotSupported",
        "OperationDenied.ResourceControl",
        "InvalidZoneId.NotSupportShareEncryptedImage",
    ];
    const TRANSIENT: &[&str] = &[
        "InternalError",
        "UnknownError",
        "SystemBusy",
        "NodeControllerUnavailable",
        local_codes::TRANSPORT,
    ];
    const CONFLICT: &[&str] = &[
        "OperationConflict",
        "LastTokenProcessing",
        "TaskConflict",
        "OperationFailed.LastTokenProcessing",
        "OperationFailed.IdempotentTokenProcessing",
        "IncorrectStatus",
        "IncorrectRouteEntryStatus",
    ];
    const NOT_FOUND: &[&str] = &["Forbidden.InstanceNotFound", "Forbidden.VpcNotFound"];

    if code.contains("Throttling") {
        return ErrorClass::Throttled { retry_after };
    }
    if NO_CAPACITY.contains(&code) {
        return ErrorClass::NoCapacity;
    }
    if code.starts_with("ServiceUnavailable") || TRANSIENT.contains(&code) {
        return ErrorClass::Transient;
    }
    if NOT_FOUND.contains(&code)
        || (code.starts_with("Invalid")
            && code.ends_with(".NotFound")
            && !code.starts_with("InvalidAccessKeyId"))
    {
        return ErrorClass::NotFound;
    }
    if CONFLICT.contains(&code)
        || code.starts_with("DependencyViolation")
        || (code.starts_with("Incorrect") && code.contains("Status"))
    {
        return ErrorClass::Conflict;
    }
    match status {
        // A code this table does not know, on a 5xx: the server's problem, worth a retry.
        Some(s) if s >= 500 => ErrorClass::Transient,
        // Everything else (auth, signing, quota, billing, bad parameters, idempotency misuse,
        // unknown 4xx) needs a human.
        _ => ErrorClass::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_reference_table() {
        let cases: &[(&str, u16, ErrorClass)] = &[
            (
                "Throttling.User",
                400,
                ErrorClass::Throttled { retry_after: None },
            ),
            (
                "Throttling",
                400,
                ErrorClass::Throttled { retry_after: None },
            ),
            (
                "Rejected.Throttling",
                400,
                ErrorClass::Throttled { retry_after: None },
            ),
            ("ServiceUnavailable", 503, ErrorClass::Transient),
            (
                "ServiceUnavailable.RegionMaintaining",
                503,
                ErrorClass::Transient,
            ),
            ("InternalError", 500, ErrorClass::Transient),
            ("UnknownError", 400, ErrorClass::Transient),
            ("SomethingNew", 502, ErrorClass::Transient),
            ("OperationDenied.NoStock", 403, ErrorClass::NoCapacity),
            ("Zone.NotOnSale", 403, ErrorClass::NoCapacity),
            (
                "InvalidResourceType.NotSupported",
                403,
                ErrorClass::NoCapacity,
            ),
            (
                "InvalidInstanceType.ValueNotSupported",
                400,
                ErrorClass::NoCapacity,
            ),
            ("InvalidInstanceId.NotFound", 404, ErrorClass::NotFound),
            ("InvalidVSwitchId.NotFound", 404, ErrorClass::NotFound),
            ("InvalidKeyPair.NotFound", 404, ErrorClass::NotFound),
            ("Forbidden.InstanceNotFound", 404, ErrorClass::NotFound),
            ("DependencyViolation", 400, ErrorClass::Conflict),
            ("DependencyViolation.VSwitch", 400, ErrorClass::Conflict),
            ("IncorrectVpcStatus", 400, ErrorClass::Conflict),
            (
                "IncorrectInstanceStatus.Initializing",
                403,
                ErrorClass::Conflict,
            ),
            ("OperationConflict", 409, ErrorClass::Conflict),
            ("LastTokenProcessing", 403, ErrorClass::Conflict),
            ("IdempotentParameterMismatch", 400, ErrorClass::Fatal),
            ("InvalidAccessKeyId.NotFound", 404, ErrorClass::Fatal),
            ("SignatureDoesNotMatch", 400, ErrorClass::Fatal),
            ("QuotaExceed.ElasticQuota", 403, ErrorClass::Fatal),
            ("InvalidParameter", 400, ErrorClass::Fatal),
            ("Forbidden.RAM", 403, ErrorClass::Fatal),
        ];
        for (code, status, want) in cases {
            assert_eq!(classify(code, Some(*status), None), *want, "{code}");
        }
        assert_eq!(
            classify(
                "Throttling.User",
                Some(400),
                Some(Duration::from_millis(250))
            ),
            ErrorClass::Throttled {
                retry_after: Some(Duration::from_millis(250))
            }
        );
        assert_eq!(
            classify(local_codes::TRANSPORT, None, None),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(local_codes::BAD_RESPONSE, None, None),
            ErrorClass::Fatal
        );
    }

    #[test]
    fn message_names_action_region_code_request_and_advice() {
        let e = AliyunError::service(
            "RunInstances",
            Some(RegionId::new("ap-southeast-1")),
            403,
            "OperationDenied.NoStock".into(),
            "The requested resource is sold out in the specified zone.".into(),
            Some("REQ-1".into()),
            None,
        );
        assert_eq!(
            e.to_string(),
            "`RunInstances` in `ap-southeast-1` failed with `OperationDenied.NoStock` (HTTP 403, request id REQ-1): \
             The requested resource is sold out in the specified zone; this zone or type cannot supply the hosts now; \
             try another zone, instance type or region (cfxm re-plans placement)"
        );
        assert_eq!(e.class, ErrorClass::NoCapacity);
    }
}
