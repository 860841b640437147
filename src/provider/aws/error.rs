//! [`AwsError`]: one failed EC2 call, with its [`ErrorClass`] decided once, in [`classify`].
//!
//! EC2 error codes (aliyun-api.md §6.3) are mapped to the shared classes here and nowhere else,
//! so the reconciler's retry policy never looks at AWS codes. Logic keys on the code, not on the
//! HTTP status (statuses only decide for codes this table does not know). The original tool's
//! "zone unavailable" heuristic (original-tool.md §4.2) lives here too, as a capacity shortage of
//! the whole zone.

use std::fmt;

use serde::Deserialize;

use super::credentials::CredentialSource;
use crate::provider::ErrorClass;
use crate::spec::{RegionId, ZoneId};

/// What is short when a call fails with [`ErrorClass::NoCapacity`]; tells the placement which
/// alternatives are worth trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// `InsufficientInstanceCapacity` and kin: this type in this zone has no capacity right now;
    /// another type here, or this type in another zone, may work.
    Stock,
    /// `Unsupported`: the type is not offered in this zone (or the configuration is not).
    TypeNotOffered,
    /// The original tool's heuristic: the message says the zone or subnet is unavailable / not
    /// supported / not available. The whole zone is out for every type, for the rest of the run
    /// (added for AWS Bahrain's `mes1-az2`).
    Zone,
    /// `InsufficientFreeAddressesInSubnet`: the zone's subnet is full.
    SubnetAddresses,
}

/// A failed EC2 call: which action, where, what AWS said, and how to react. Its fields are those
/// of [`AwsErrorDetail`] (through `Deref`); boxed so `Result<T, AwsError>` stays small.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[diagnostic(code(cfxm::aws::ec2))]
#[error("{0}")]
pub struct AwsError(Box<AwsErrorDetail>);

impl std::ops::Deref for AwsError {
    type Target = AwsErrorDetail;
    fn deref(&self) -> &AwsErrorDetail {
        &self.0
    }
}

impl From<AwsErrorDetail> for AwsError {
    fn from(d: AwsErrorDetail) -> Self {
        AwsError(Box::new(d))
    }
}

/// The facts of one failed EC2 call.
#[derive(Debug, Clone)]
pub struct AwsErrorDetail {
    /// The EC2 action, e.g. `RunInstances`.
    pub action: &'static str,
    pub region: RegionId,
    /// AWS's error code (`InsufficientInstanceCapacity`), or `Transport` when no HTTP response
    /// came back, or `HTTP <status>` when the body carried no code.
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// The HTTP status, when a response came back.
    pub status: Option<u16>,
    pub class: ErrorClass,
    /// For [`ErrorClass::NoCapacity`]: what is short.
    pub shortage: Option<Shortage>,
    /// The zone the request named (`Placement.AvailabilityZone` or `AvailabilityZone`), so a
    /// capacity error can block exactly that zone.
    pub zone: Option<ZoneId>,
    /// For credential failures: where the rejected credentials came from, so the message can
    /// name the variable or profile to fix.
    pub credential_source: Option<CredentialSource>,
}

impl fmt::Display for AwsErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EC2 `{}` in {} failed with `{}`",
            self.action, self.region, self.code
        )?;
        if let Some(zone) = &self.zone {
            write!(f, " (zone {zone})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message.trim_end_matches('.'))?;
        }
        match &self.request_id {
            Some(id) => write!(f, " [request id {id}]")?,
            None => f.write_str(" [no request id]")?,
        }
        write!(f, "; {}", self.advice())
    }
}

impl AwsError {
    /// Builds the error for an HTTP response, classifying it.
    pub(crate) fn from_response(
        action: &'static str,
        region: RegionId,
        zone: Option<ZoneId>,
        status: u16,
        body: &str,
        header_request_id: Option<String>,
    ) -> Self {
        let parsed = ErrorBody::parse(body);
        let code = parsed.code.unwrap_or_else(|| format!("HTTP {status}"));
        let message = parsed.message.unwrap_or_else(|| {
            // A body with no EC2 error in it (a proxy's page, say): show its start, one line.
            let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
            line.chars().take(200).collect()
        });
        let (class, shortage) = classify(&code, &message, Some(status));
        AwsErrorDetail {
            action,
            region,
            code,
            message,
            request_id: parsed.request_id.or(header_request_id),
            status: Some(status),
            class,
            shortage,
            zone,
            credential_source: None,
        }
        .into()
    }

    /// Names where the credentials came from, when the failure is about them.
    pub(crate) fn with_credential_source(mut self, source: &CredentialSource) -> Self {
        if CREDENTIAL_CODES.contains(&self.code.as_str()) {
            self.0.credential_source = Some(source.clone());
        }
        self
    }

    /// Builds the error for a request that got no HTTP response (connect, timeout, reset).
    pub(crate) fn transport(action: &'static str, region: RegionId, err: &reqwest::Error) -> Self {
        // The chain carries the cause ("connection refused"); the URL holds no secret.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        AwsErrorDetail {
            action,
            region,
            code: "Transport".into(),
            message,
            request_id: None,
            status: None,
            class: ErrorClass::Transient,
            shortage: None,
            zone: None,
            credential_source: None,
        }
        .into()
    }

    /// Builds the error for a 2xx response whose body is not the expected XML.
    pub(crate) fn malformed(
        action: &'static str,
        region: RegionId,
        request_id: Option<String>,
        why: String,
    ) -> Self {
        AwsErrorDetail {
            action,
            region,
            code: "MalformedResponse".into(),
            message: why,
            request_id,
            status: None,
            class: ErrorClass::Fatal,
            shortage: None,
            zone: None,
            credential_source: None,
        }
        .into()
    }
}

impl AwsErrorDetail {
    /// What the user (or the reconciler) should do about it, in one clause.
    pub fn advice(&self) -> String {
        let code = self.code.as_str();
        match self.class {
            ErrorClass::Throttled { .. } => format!(
                "EC2 is rate-limiting this account in {}; retry later with backoff, or lower \
                 `--parallelism`",
                self.region
            ),
            ErrorClass::Transient => {
                "a temporary EC2 or network failure; retrying the same request usually helps".into()
            }
            ErrorClass::NoCapacity => match self.shortage {
                Some(Shortage::TypeNotOffered) => {
                    "this instance type is not offered in this zone; use another zone or the \
                     next instance type"
                        .into()
                }
                Some(Shortage::Zone) => {
                    "the zone is unavailable; cfxm places in the region's other zones, and the \
                     next plan leaves out a zone it chose whose subnet was refused (list the \
                     region's `zones:` to rule it out yourself)"
                        .into()
                }
                Some(Shortage::SubnetAddresses) => {
                    "the zone's subnet has no free addresses; use another zone or a larger \
                     `network.cidr`"
                        .into()
                }
                _ => "no capacity for this instance type in this zone right now; try the next \
                      instance type or another zone"
                    .into(),
            },
            ErrorClass::NotFound => "the resource does not exist (already deleted?)".into(),
            ErrorClass::Conflict => "the resource is still in use or changing state (e.g. \
                                     instances still terminating); retry once it settles"
                .into(),
            ErrorClass::Fatal => match &self.credential_source {
                Some(source) if CREDENTIAL_CODES.contains(&code) => format!(
                    "check the AWS credentials (these came from {source}) and that the clock is \
                     correct"
                ),
                _ => fatal_advice(code, self.action),
            },
        }
    }
}

/// Codes that mean the credentials themselves were rejected.
const CREDENTIAL_CODES: &[&str] = &[
    "AuthFailure",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "RequestExpired",
];

fn fatal_advice(code: &str, action: &str) -> String {
    match code {
        c if CREDENTIAL_CODES.contains(&c) => "check the AWS credentials (`AWS_ACCESS_KEY_ID`/\
             `AWS_SECRET_ACCESS_KEY`, or the profile named by `AWS_PROFILE` in \
             ~/.aws/credentials) and that the clock is correct"
            .into(),
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => {
            format!("grant `ec2:{action}` to this IAM identity")
        }
        "OptInRequired" | "Blocked" | "PendingVerification" => {
            "the account cannot use this region yet; enable it in the AWS console or remove it \
             from the spec"
                .into()
        }
        "IdempotentParameterMismatch" => {
            "a ClientToken was reused with different parameters; this is a bug in cfxm, please \
             report it"
                .into()
        }
        "MalformedResponse" => {
            "the endpoint did not answer like EC2; check `AWS_ENDPOINT_URL_EC2`/`AWS_ENDPOINT_URL`"
                .into()
        }
        c if c.ends_with("LimitExceeded") => {
            "an account quota was reached; raise it in Service Quotas or lower the spec's nodes"
                .into()
        }
        c if c.ends_with(".Duplicate") => {
            "it already exists; re-run `cfxm plan` to pick it up".into()
        }
        _ => "EC2 rejected the request; check the spec's values for this cloud (or report a \
              cfxm bug)"
            .into(),
    }
}

/// Codes that are always [`ErrorClass::Fatal`], whatever the message says: authentication,
/// permission, account state and idempotency misuse. Retrying cannot help; a human must act.
const NEVER_RETRY: &[&str] = &[
    "AuthFailure",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "RequestExpired",
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "OptInRequired",
    "Blocked",
    "PendingVerification",
    "IdempotentParameterMismatch",
];

/// Maps an EC2 error to its class, and for capacity errors to what is short. The one place AWS
/// codes are interpreted.
pub fn classify(code: &str, message: &str, status: Option<u16>) -> (ErrorClass, Option<Shortage>) {
    use ErrorClass::*;
    if NEVER_RETRY.contains(&code) {
        return (Fatal, None);
    }
    let class = match code {
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled"
        | "SlowDown" => Throttled { retry_after: None },
        "InsufficientInstanceCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientCapacityOnHost" => return (NoCapacity, Some(Shortage::Stock)),
        "Unsupported" => return (NoCapacity, Some(Shortage::TypeNotOffered)),
        "InsufficientFreeAddressesInSubnet" => {
            return (NoCapacity, Some(Shortage::SubnetAddresses));
        }
        "DependencyViolation"
        | "IncorrectState"
        | "IncorrectInstanceState"
        | "InvalidGroup.InUse"
        | "InvalidNetworkInterface.InUse"
        | "VolumeInUse" => Conflict,
        // Detaching a gateway that is not attached: the wanted end state already holds.
        "Gateway.NotAttached" => NotFound,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => Transient,
        c if c.ends_with(".NotFound") => NotFound,
        c if c.ends_with("LimitExceeded") => Fatal,
        _ if zone_unavailable(code, message) => return (NoCapacity, Some(Shortage::Zone)),
        _ if status.is_some_and(|s| s >= 500) => Transient,
        _ => Fatal,
    };
    (class, None)
}

/// The original tool's text heuristic (original-tool.md §4.2): the code or message mentions a
/// zone or subnet, and says it is unavailable, not supported or not available.
fn zone_unavailable(code: &str, message: &str) -> bool {
    let text = format!("{code} {message}").to_ascii_lowercase();
    let about_zone = ["zone", "subnet", "availability zone"]
        .iter()
        .any(|w| text.contains(w));
    let unavailable = ["unavailable", "not supported", "not available"]
        .iter()
        .any(|w| text.contains(w));
    about_zone && unavailable
}

/// The interesting parts of an error body. EC2 answers
/// `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`; IAM and
/// moto's auth layer answer `<ErrorResponse>` with `<Errors><Error>` or a bare `<Error>`, and
/// `<RequestId>`. Anything else (a proxy's HTML page) yields no fields.
#[derive(Debug, Default, PartialEq)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorDoc {
    #[serde(rename = "Errors")]
    errors: Option<ErrorList>,
    #[serde(rename = "Error")]
    error: Option<ErrorItem>,
    #[serde(rename = "RequestID")]
    request_id_ec2: Option<String>,
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorList {
    #[serde(rename = "Error", default)]
    error: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

impl ErrorBody {
    fn parse(body: &str) -> Self {
        let Ok(doc) = quick_xml::de::from_str::<ErrorDoc>(body) else {
            return ErrorBody::default();
        };
        let first = doc
            .errors
            .and_then(|e| e.error.into_iter().next())
            .or(doc.error);
        let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let (code, message) = match first {
            Some(e) => (clean(e.code), clean(e.message)),
            None => (None, None),
        };
        ErrorBody {
            code,
            message,
            request_id: clean(doc.request_id_ec2.or(doc.request_id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ErrorClass::*;

    fn class(code: &str, msg: &str, status: u16) -> (ErrorClass, Option<Shortage>) {
        classify(code, msg, Some(status))
    }

    #[test]
    fn codes_map_to_the_shared_classes() {
        assert_eq!(
            class("RequestLimitExceeded", "Request limit exceeded.", 503).0,
            Throttled { retry_after: None }
        );
        assert_eq!(
            class(
                "InsufficientInstanceCapacity",
                "We currently do not have sufficient m6i.2xlarge capacity in the Availability Zone you requested (us-east-1a).",
                500
            ),
            (NoCapacity, Some(Shortage::Stock))
        );
        assert_eq!(
            class(
                "Unsupported",
                "Your requested instance type (m6i.2xlarge) is not supported in your requested Availability Zone (us-east-1e).",
                400
            ),
            (NoCapacity, Some(Shortage::TypeNotOffered))
        );
        assert_eq!(
            class(
                "DependencyViolation",
                "The vpc 'vpc-1' has dependencies and cannot be deleted.",
                400
            )
            .0,
            Conflict
        );
        for nf in [
            "InvalidInstanceID.NotFound",
            "InvalidVpcID.NotFound",
            "InvalidKeyPair.NotFound",
            "InvalidSubnetID.NotFound",
            "InvalidRoute.NotFound",
            "InvalidGroup.NotFound",
        ] {
            assert_eq!(
                class(nf, "The ID 'x' does not exist", 400).0,
                NotFound,
                "{nf}"
            );
        }
        for fatal in [
            "AuthFailure",
            "SignatureDoesNotMatch",
            "UnauthorizedOperation",
            "InstanceLimitExceeded",
            "VcpuLimitExceeded",
            "VpcLimitExceeded",
            "IdempotentParameterMismatch",
            "InvalidParameterValue",
            "InvalidKeyPair.Duplicate",
        ] {
            assert_eq!(class(fatal, "nope", 400).0, Fatal, "{fatal}");
        }
        for transient in ["InternalError", "Unavailable", "ServiceUnavailable"] {
            assert_eq!(class(transient, "", 503).0, Transient, "{transient}");
        }
        assert_eq!(class("SomethingNew", "", 502).0, Transient);
        assert_eq!(class("SomethingNew", "", 400).0, Fatal);
        assert_eq!(class("Gateway.NotAttached", "", 400).0, NotFound);
    }

    #[test]
    fn the_zone_unavailable_heuristic_blocks_the_zone() {
        assert_eq!(
            class(
                "InvalidParameterValue",
                "The availability zone me-south-1b is currently unavailable.",
                400
            ),
            (NoCapacity, Some(Shortage::Zone))
        );
        assert_eq!(
            class(
                "InvalidInput",
                "Subnet creation is not supported in this zone",
                400
            ),
            (NoCapacity, Some(Shortage::Zone))
        );
        // Auth and exact codes win over the text.
        assert_eq!(class("AuthFailure", "zone unavailable", 401).0, Fatal);
        assert_eq!(
            class("InvalidSubnetID.NotFound", "subnet not available", 400).0,
            NotFound
        );
        // A zone mentioned without "unavailable" is just a bad parameter.
        assert_eq!(
            class(
                "InvalidParameterValue",
                "Value (us-east-1z) for parameter availabilityZone is invalid.",
                400
            )
            .0,
            Fatal
        );
    }

    #[test]
    fn both_error_body_shapes_parse() {
        let ec2 = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>The vpc ID 'vpc-1' does not exist</Message></Error></Errors><RequestID>59dbff89-35bd-4eac-99ed-be587EXAMPLE</RequestID></Response>"#;
        assert_eq!(
            ErrorBody::parse(ec2),
            ErrorBody {
                code: Some("InvalidVpcID.NotFound".into()),
                message: Some("The vpc ID 'vpc-1' does not exist".into()),
                request_id: Some("59dbff89-35bd-4eac-99ed-be587EXAMPLE".into()),
            }
        );
        let iam = r#"<ErrorResponse><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message><Type>Sender</Type></Error></Errors><RequestId>abc</RequestId></ErrorResponse>"#;
        let parsed = ErrorBody::parse(iam);
        assert_eq!(parsed.code.as_deref(), Some("AuthFailure"));
        assert_eq!(parsed.request_id.as_deref(), Some("abc"));
        assert_eq!(
            ErrorBody::parse("<html>Bad Gateway</html>"),
            ErrorBody::default()
        );
        assert_eq!(
            ErrorBody::parse("<Response><Errors><Error><Code>X</Code><Message>a &amp; b</Message></Error></Errors></Response>").message.as_deref(),
            Some("a & b")
        );
    }

    #[test]
    fn display_names_action_region_code_request_and_a_fix() {
        let e = AwsError::from_response(
            "RunInstances",
            RegionId::new("us-east-1"),
            Some(ZoneId::new("us-east-1a")),
            500,
            "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code><Message>We currently do not have sufficient m6i.2xlarge capacity.</Message></Error></Errors><RequestID>r-1</RequestID></Response>",
            None,
        );
        assert_eq!(
            e.to_string(),
            "EC2 `RunInstances` in us-east-1 failed with `InsufficientInstanceCapacity` (zone \
             us-east-1a): We currently do not have sufficient m6i.2xlarge capacity [request id \
             r-1]; no capacity for this instance type in this zone right now; try the next \
             instance type or another zone"
        );
        let html = AwsError::from_response(
            "DescribeVpcs",
            RegionId::new("eu-west-1"),
            None,
            502,
            "<html>\n Bad   Gateway</html>",
            Some("hdr-id".into()),
        );
        assert_eq!(html.code, "HTTP 502");
        assert_eq!(html.class, Transient);
        assert_eq!(html.request_id.as_deref(), Some("hdr-id"));
        assert!(
            html.to_string().contains("<html> Bad Gateway</html>"),
            "{html}"
        );
    }
}
