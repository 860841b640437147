//! The harness for driving the built `cfxm` against AWS: a `moto_server` behind the recording,
//! fault-injecting proxy, a temporary directory with the spec's key and state, and the standard
//! AWS variables pointing the binary at the proxy (`AWS_ENDPOINT_URL_EC2`). Direct reads and
//! the test's own setup (images, decoys) go to moto itself, so the proxy's record holds only
//! what cfxm sent.

use std::path::{Path, PathBuf};
use std::process::Command;

use cfxm::provider::aws::sigv4::{self, SignableRequest};
use cfxm::provider::aws::{
    AwsClient, ClientToken, Credentials, Ec2, Endpoint, Filter, InstanceQuery, KeyName,
    LaunchRequest, RootVolume, Secret, Tags,
};
use cfxm::spec::{InstanceType, RegionId, ZoneId};

use crate::moto::Moto;
use crate::proxy::Proxy;
use crate::{PUBLIC_KEY, cidr, install_crypto};

/// The key id and secret cfxm gets (moto checks them only when told to).
pub const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET: &str = "cfxm-test-secret";

/// The image every spec boots from (the examples' `image:`).
pub const IMAGE: &str = "conflux-docker-registry";

/// moto without its catalogue of ~1,300 public AMIs per region: loading it made the first call
/// to each region slow, and discovery reads every region (cfxm boots from the account's own
/// images, registered by the tests).
pub const MOTO_ENV: &[(&str, &str)] = &[("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")];

/// Flags every command gets: fast polls; moto answers at once.
pub const FAST: [&str; 2] = ["--poll-interval", "100ms"];

pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn transcript(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn ok(self) -> Outcome {
        assert_eq!(self.code, Some(0), "{}", self.transcript());
        self
    }
}

pub struct AwsWorld {
    pub moto: Moto,
    pub proxy: Proxy,
    pub dir: tempfile::TempDir,
    /// Extra environment for every command (the emulator's, in mixed tests).
    pub env: Vec<(String, String)>,
    pub key_id: String,
    pub secret: String,
}

impl AwsWorld {
    pub async fn start() -> AwsWorld {
        Self::with_moto(Moto::start_with(MOTO_ENV), KEY_ID, SECRET).await
    }

    pub async fn with_moto(moto: Moto, key_id: &str, secret: &str) -> AwsWorld {
        install_crypto();
        let proxy = Proxy::start(&moto.url()).await;
        let dir = tempfile::tempdir().unwrap();
        write_key(&dir.path().join("keys/ssh-key.pem"));
        AwsWorld {
            moto,
            proxy,
            dir,
            env: Vec::new(),
            key_id: key_id.into(),
            secret: secret.into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `name.yaml` and returns its path.
    pub fn spec(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.path().join(format!("{name}.yaml"));
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// The built `cfxm`, pointed at the proxy by the standard variables, in the test directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cfxm"));
        c.args(args)
            .current_dir(self.path())
            .env("AWS_ENDPOINT_URL_EC2", &self.proxy.url)
            .env("AWS_ACCESS_KEY_ID", &self.key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.path().join("no-such-file"),
            )
            .env("AWS_CONFIG_FILE", self.path().join("no-such-file"))
            .env("CFXM_STATE_DIR", self.path().join("state"))
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("RUST_LOG");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `cfxm args` to completion (on a blocking thread: the proxy serves from this
    /// test's runtime meanwhile).
    pub async fn cfxm(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.command(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("cfxm runs"))
            .await
            .unwrap();
        Outcome {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `cfxm <verb> -f <spec> <FAST> <extra>`.
    pub async fn run(&self, verb: &str, spec: &Path, extra: &[&str]) -> Outcome {
        let spec = spec.to_str().unwrap().to_owned();
        let mut args = vec![verb, "-f", spec.as_str()];
        args.extend(FAST);
        args.extend(extra);
        self.cfxm(&args).await
    }

    /// A client straight to moto (not through the proxy), with the world's credentials.
    pub fn ec2(&self, region: &str) -> Ec2 {
        AwsClient::new(
            Credentials::new(&self.key_id, Secret::new(&self.secret)),
            Endpoint::fixed(&self.moto.url()).unwrap(),
        )
        .unwrap()
        .ec2(RegionId::new(region))
    }

    /// Registers an image called `name` owned by the account in `region`, as a user would
    /// have (the client has no RegisterImage: cfxm never makes images).
    pub async fn register_image(&self, region: &str, name: &str) -> String {
        let text = self
            .raw(
                region,
                &[
                    ("Action", "RegisterImage"),
                    ("Name", name),
                    ("Architecture", "x86_64"),
                    ("RootDeviceName", "/dev/sda1"),
                    ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
                    ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
                ],
            )
            .await;
        let start = text.find("<imageId>").expect("an image id") + "<imageId>".len();
        let end = text[start..].find('<').unwrap() + start;
        text[start..end].to_owned()
    }

    /// One signed EC2 Query call to moto, for what the client does not do.
    pub async fn raw(&self, region: &str, params: &[(&str, &str)]) -> String {
        let mut body = "Version=2016-11-15".to_string();
        for (k, v) in params {
            body.push_str(&format!("&{}={}", sigv4::encode(k), sigv4::encode(v)));
        }
        let url = self.moto.url();
        let host = url.trim_start_matches("http://").to_owned();
        let form = "application/x-www-form-urlencoded; charset=utf-8";
        let creds = Credentials::new(&self.key_id, Secret::new(&self.secret));
        let signed = sigv4::sign(
            &SignableRequest {
                method: "POST",
                host: &host,
                path: "/",
                query: &[],
                content_type: Some(form),
                body: body.as_bytes(),
                region,
                service: "ec2",
            },
            &creds,
            chrono::Utc::now(),
        );
        let resp = reqwest::Client::new()
            .post(format!("{url}/"))
            .header("content-type", form)
            .header("x-amz-date", signed.x_amz_date)
            .header("authorization", signed.authorization)
            .body(body)
            .send()
            .await
            .expect("moto answers");
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(status.is_success(), "{params:?}: {status} {text}");
        text
    }

    /// Instances in `region` carrying all of `tags` (not terminated).
    pub async fn instances(&self, region: &str, tags: &Tags) -> Vec<cfxm::provider::aws::Instance> {
        self.ec2(region)
            .describe_instances(&InstanceQuery::tagged(tags))
            .await
            .unwrap()
    }

    /// A VPC, subnet, security group and `count` instances carrying `tags` (none: untagged),
    /// made directly (as another tool or person would). Returns the instance ids.
    pub async fn decoy(&self, region: &str, zone: &str, tags: &Tags, block: &str) -> Vec<String> {
        let ec2 = self.ec2(region);
        let vpc = ec2.create_vpc(&cidr(block), tags).await.unwrap();
        let subnet = ec2
            .create_subnet(
                &vpc.id,
                &cidr(&block.replace("/16", "/20")),
                &ZoneId::new(zone),
                tags,
            )
            .await
            .unwrap();
        let sg = ec2
            .create_security_group(&vpc.id, &format!("decoy-{block}"), "decoy", tags)
            .await
            .unwrap();
        let key = KeyName::new(format!("decoy-{}", uuid::Uuid::new_v4()));
        ec2.import_key_pair(&key, PUBLIC_KEY, tags).await.unwrap();
        let image = ec2
            .describe_images(&["self"], &[], &[Filter::new("name", [IMAGE])])
            .await
            .unwrap()
            .remove(0);
        let launched = ec2
            .run_instances(&LaunchRequest {
                image: image.id,
                instance_type: InstanceType::new("m6i.2xlarge"),
                zone: ZoneId::new(zone),
                subnet: subnet.id,
                security_group: sg,
                key_name: key,
                count: 1,
                min_count: 1,
                client_token: ClientToken::new(uuid::Uuid::new_v4().to_string()),
                root_volume: RootVolume {
                    device_name: "/dev/sda1".into(),
                    size_gb: 8,
                    volume_type: "gp3".into(),
                    iops: None,
                    throughput_mbps: None,
                },
                public_ip: true,
                spot: false,
                tags: tags.clone(),
            })
            .await
            .unwrap();
        launched.into_iter().map(|i| i.id.to_string()).collect()
    }
}

/// A deterministic ed25519 key.
pub fn write_key(path: &Path) {
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::LineEnding;
    use russh::keys::ssh_key::private::Ed25519Keypair;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&[42; 32]));
    std::fs::write(path, key.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
}

/// An example spec from `examples/`, as text.
pub fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name),
    )
    .unwrap()
}

/// Whether `tags` carry the three cfxm tags of (owner, spec) exactly.
pub fn tagged_for(tags: &Tags, owner: &str, spec: &str) -> bool {
    tags.get("conflux-massive-test").map(String::as_str) == Some("true")
        && tags.get("user").map(String::as_str) == Some(owner)
        && tags.get("cfxm-spec").map(String::as_str) == Some(spec)
}
