//! SigV4 against moto with signature checking on (`INITIAL_NO_AUTH_ACTION_COUNT=3`): the three
//! free requests create an IAM user, its `ec2:*` policy and an access key (raw IAM Query calls,
//! signed by cfxm's own signer); after that the right secret works, from explicit credentials
//! and from a profile, and a wrong secret or unknown key fails with a clear `AuthFailure`.

use std::collections::HashMap;

use cfxm::provider::ErrorClass;
use cfxm::provider::aws::sigv4::{self, SignableRequest};
use cfxm::provider::aws::{AwsClient, Credentials, Endpoint, Secret};
use serde::Deserialize;

use crate::moto::Moto;
use crate::world::{AwsWorld, IMAGE};
use crate::{install_crypto, region};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// One IAM Query call to moto (IAM is global; its scope region is us-east-1).
async fn iam(url: &str, params: &[(&str, &str)]) -> String {
    let mut body = "Version=2010-05-08".to_string();
    for (k, v) in params {
        body.push_str(&format!("&{}={}", sigv4::encode(k), sigv4::encode(v)));
    }
    let host = url.trim_start_matches("http://");
    // Before auth is on, any key signs; the request must still be SigV4-shaped for routing.
    let creds = Credentials::new("AKIDBOOTSTRAP", Secret::new("bootstrap"));
    let signed = sigv4::sign(
        &SignableRequest {
            method: "POST",
            host,
            path: "/",
            query: &[],
            content_type: Some(FORM),
            body: body.as_bytes(),
            region: "us-east-1",
            service: "iam",
        },
        &creds,
        chrono::Utc::now(),
    );
    let resp = reqwest::Client::new()
        .post(format!("{url}/"))
        .header("content-type", FORM)
        .header("x-amz-date", signed.x_amz_date)
        .header("authorization", signed.authorization)
        .body(body)
        .send()
        .await
        .expect("moto answers");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(
        status.is_success(),
        "IAM {params:?} failed: {status} {text}"
    );
    text
}

#[derive(Deserialize)]
struct CreateAccessKeyResponse {
    #[serde(rename = "CreateAccessKeyResult")]
    result: CreateAccessKeyResult,
}
#[derive(Deserialize)]
struct CreateAccessKeyResult {
    #[serde(rename = "AccessKey")]
    key: AccessKey,
}
#[derive(Deserialize)]
struct AccessKey {
    #[serde(rename = "AccessKeyId")]
    id: String,
    #[serde(rename = "SecretAccessKey")]
    secret: String,
}

/// Spends moto's three unauthenticated requests on an IAM user with an `ec2:*` policy and an
/// access key; returns the key (id, secret). Every later request must be signed with it.
pub async fn bootstrap_key(url: &str) -> (String, String) {
    iam(url, &[("Action", "CreateUser"), ("UserName", "cfxm")]).await;
    iam(
        url,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "cfxm"),
            ("PolicyName", "ec2-all"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#,
            ),
        ],
    )
    .await;
    let created = iam(url, &[("Action", "CreateAccessKey"), ("UserName", "cfxm")]).await;
    let key: CreateAccessKeyResponse = quick_xml::de::from_str(&created).unwrap();
    let AccessKey { id, secret } = key.result.key;
    (id, secret)
}

#[tokio::test]
async fn signatures_are_checked_and_a_wrong_secret_fails_clearly() {
    install_crypto();
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    let url = moto.url();
    let (id, secret) = bootstrap_key(&url).await;

    // The right secret works.
    let good = AwsClient::new(
        Credentials::new(&id, Secret::new(&secret)),
        Endpoint::fixed(&url).unwrap(),
    )
    .unwrap();
    let regions = good.ec2(region()).describe_regions().await.unwrap();
    assert!(!regions.is_empty());
    good.ec2(region()).describe_vpcs(&[], &[]).await.unwrap();

    // A wrong secret: AuthFailure, fatal, and the message says what to check.
    let bad = AwsClient::new(
        Credentials::new(&id, Secret::new("not-the-secret")),
        Endpoint::fixed(&url).unwrap(),
    )
    .unwrap();
    let err = bad.ec2(region()).describe_vpcs(&[], &[]).await.unwrap_err();
    assert_eq!(err.code, "AuthFailure", "{err}");
    assert_eq!(err.class, ErrorClass::Fatal);
    assert_eq!(err.status, Some(401));
    let text = err.to_string();
    assert!(
        text.starts_with("EC2 `DescribeVpcs` in us-east-1 failed with `AuthFailure`: AWS was not able to validate the provided access credentials"),
        "{text}"
    );
    assert!(
        text.contains(
            "check the AWS credentials (these came from credentials given by the caller)"
        ),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"), "{text}");

    // An unknown key id fails the same way.
    let stranger = AwsClient::new(
        Credentials::new("AKIAUNKNOWN000000000", Secret::new(&secret)),
        Endpoint::fixed(&url).unwrap(),
    )
    .unwrap();
    let err = stranger.ec2(region()).describe_regions().await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Fatal, "{err}");
    assert!(
        matches!(err.code.as_str(), "AuthFailure" | "InvalidClientTokenId"),
        "{err}"
    );

    // The standard chain and endpoint variables: a profile file and AWS_ENDPOINT_URL_EC2.
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = {id}\naws_secret_access_key = wrong\n\n\
             [lab]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
        ),
    )
    .unwrap();
    let env = |profile: &str| {
        let map: HashMap<&str, String> = [
            ("HOME", home.path().display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", file.display().to_string()),
            ("AWS_PROFILE", profile.to_string()),
            ("AWS_ENDPOINT_URL_EC2", url.clone()),
        ]
        .into_iter()
        .collect();
        move |k: &str| map.get(k).cloned()
    };
    let from_profile = AwsClient::from_lookup(env("lab")).unwrap();
    assert_eq!(from_profile.endpoint(), &Endpoint::fixed(&url).unwrap());
    from_profile
        .ec2(region())
        .describe_vpcs(&[], &[])
        .await
        .unwrap();
    let wrong_profile = AwsClient::from_lookup(env("default")).unwrap();
    let err = wrong_profile
        .ec2(region())
        .describe_vpcs(&[], &[])
        .await
        .unwrap_err();
    assert_eq!(err.code, "AuthFailure", "{err}");
    let text = err.to_string();
    let fix = format!(
        "check the AWS credentials (these came from profile `default` in {}) and that the clock \
         is correct",
        file.display()
    );
    assert!(text.ends_with(&fix), "{text}");
}

/// Through the binary: with signature checking on, `cfxm plan` works with the right secret and
/// fails with a wrong one, naming the cause and where the credentials came from, without the
/// secret, after reads only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cfxm_plan_with_a_wrong_secret_fails_with_a_clear_message() {
    install_crypto();
    let mut env = vec![("INITIAL_NO_AUTH_ACTION_COUNT", "3")];
    env.extend_from_slice(crate::world::MOTO_ENV);
    let moto = Moto::start_with(&env);
    let (id, secret) = bootstrap_key(&moto.url()).await;
    let mut w = AwsWorld::with_moto(moto, &id, &secret).await;
    w.register_image("us-east-1", IMAGE).await;
    let spec = w.spec(
        "signed",
        "name: signed
owner: alice
cloud:
  aws:
    ssh_key: keys/ssh-key.pem
    network: { ssh_from: [203.0.113.7/32] }
    instance_types:
      - { name: m6i.2xlarge, nodes_per_host: 1 }
    regions:
      - { name: us-east-1, nodes: 1 }
",
    );
    let good = w
        .run("plan", &spec, &["--only", "infra", "--detailed-exitcode"])
        .await;
    assert_eq!(good.code, Some(2), "{}", good.transcript());

    w.secret = "not-the-secret-0123".into();
    let bad = w.run("plan", &spec, &["--only", "infra"]).await;
    assert_eq!(bad.code, Some(1), "{}", bad.transcript());
    assert!(bad.stdout.is_empty(), "{}", bad.transcript());
    // miette wraps at the terminal width: compare the words.
    let words = bad
        .stderr
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needle in [
        "failed with `AuthFailure`",
        "AWS was not able to validate the provided access credentials",
        "check the AWS credentials (these came from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` from the environment)",
    ] {
        assert!(words.contains(needle), "{needle}: {}", bad.transcript());
    }
    assert!(!bad.stderr.contains("not-the-secret"), "{}", bad.stderr);
    assert!(!bad.stderr.contains(&secret), "{}", bad.stderr);
    // A failed plan changes nothing.
    assert!(
        w.proxy
            .recorded()
            .iter()
            .all(|r| r.action.starts_with("Describe")),
    );
}
