//! The `amazonec2` driver: docker-machine's EC2 driver, flag for flag (with GitLab's metadata,
//! encryption and launch-tag additions), over the EC2 Query API ([`api`]).
//!
//! What it makes is in the record from the moment it exists (through [`DriverEnv::record`]): the
//! client token before RunInstances (the instance carries it as a tag, so even a create killed
//! while the call was in flight is found), the instance and spot request IDs as soon as EC2
//! returns them, the imported key pair. `remove` removes exactly that, never a key pair or
//! security group the user brought. `ls` asks EC2 once per endpoint, region and credentials
//! ([`prefetch`]).

mod api;
mod calls;
mod credentials;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    BaseDriver, Builtin, Driver, DriverEnv, DriverError, DriverFuture, Flag, FlagValues,
    NamedConfig, RecordWriter, SshEndpoint, State, ready, typed_config, untyped_config,
};
use api::{ApiError, Client, Params};
use calls::{Instance, tag_specification};

/// The name of the security group hoist makes and keeps open for SSH and Docker.
pub const MACHINE_SECURITY_GROUP: &str = "docker-machine";
/// The Docker port.
const DOCKER_PORT: u16 = 2376;
/// The tag that carries a create's client token (finds an instance whose ID was never recorded).
pub const TOKEN_TAG: &str = "hoist-client-token";
/// How long a describe answer is reused within one command.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// How often a wait asks EC2.
const POLL: Duration = Duration::from_secs(2);
/// How long an instance may take to run with an address, or a spot request to be fulfilled.
const LAUNCH_WAIT: Duration = Duration::from_secs(600);

/// docker-machine 0.16.2's default AMIs (Ubuntu 16.04, `region.go`).
const DEFAULT_AMIS: &[(&str, &str)] = &[
    ("ap-northeast-1", "ami-bcb7f6da"),
    ("ap-northeast-2", "ami-5073de3e"),
    ("ap-southeast-1", "ami-41e4af3d"),
    ("ap-southeast-2", "ami-c1498fa3"),
    ("ap-south-1", "ami-1083dc7f"),
    ("ca-central-1", "ami-8d9e19e9"),
    ("cn-north-1", "ami-cc4499a1"),
    ("cn-northwest-1", "ami-fd0e1a9f"),
    ("eu-north-1", "ami-017ff17f"),
    ("eu-central-1", "ami-bc4925d3"),
    ("eu-west-1", "ami-0b541372"),
    ("eu-west-2", "ami-ff46a298"),
    ("eu-west-3", "ami-9465d3e9"),
    ("sa-east-1", "ami-b5501bd9"),
    ("us-east-1", "ami-927185ef"),
    ("us-east-2", "ami-b9daeddc"),
    ("us-west-1", "ami-264c4646"),
    ("us-west-2", "ami-78a22900"),
    ("us-gov-west-1", "ami-2561ea44"),
];
const DEFAULT_REGION: &str = "us-east-1";

/// The `amazonec2` entry of the table of drivers.
pub const BUILTIN: Builtin = Builtin {
    name: "amazonec2",
    flags,
    open,
    prefetch: Some(prefetch_boxed),
};

fn flags() -> Vec<Flag> {
    let s = |name: &str, usage: &str, env: &str, default: &str| {
        Flag::string(&format!("amazonec2-{name}"), usage, env, default)
    };
    let b =
        |name: &str, usage: &str, env: &str| Flag::bool(&format!("amazonec2-{name}"), usage, env);
    let i = |name: &str, usage: &str, env: &str, default: i64| {
        Flag::int(&format!("amazonec2-{name}"), usage, env, default)
    };
    vec![
        s("access-key", "AWS Access Key", "AWS_ACCESS_KEY_ID", ""),
        s("secret-key", "AWS Secret Key", "AWS_SECRET_ACCESS_KEY", ""),
        s(
            "session-token",
            "AWS Session Token",
            "AWS_SESSION_TOKEN",
            "",
        ),
        s("ami", "AWS machine image", "AWS_AMI", ""),
        s("region", "AWS region", "AWS_DEFAULT_REGION", DEFAULT_REGION),
        s("vpc-id", "AWS VPC id", "AWS_VPC_ID", ""),
        s(
            "zone",
            "AWS zone for instance (i.e. a,b,c,d,e)",
            "AWS_ZONE",
            "a",
        ),
        s("subnet-id", "AWS VPC subnet id", "AWS_SUBNET_ID", ""),
        b(
            "security-group-readonly",
            "Skip adding default rules to security groups",
            "AWS_SECURITY_GROUP_READONLY",
        ),
        Flag::string_slice(
            "amazonec2-security-group",
            "AWS VPC security group",
            "AWS_SECURITY_GROUP",
            &[MACHINE_SECURITY_GROUP],
        ),
        Flag::string_slice(
            "amazonec2-open-port",
            "Make the specified port number accessible from the Internet",
            "",
            &[],
        ),
        s(
            "tags",
            "AWS Tags (e.g. key1,value1,key2,value2)",
            "AWS_TAGS",
            "",
        ),
        s(
            "instance-type",
            "AWS instance type",
            "AWS_INSTANCE_TYPE",
            "t2.micro",
        ),
        s(
            "device-name",
            "AWS root device name",
            "AWS_DEVICE_NAME",
            "/dev/sda1",
        ),
        i(
            "root-size",
            "AWS root disk size (in GB)",
            "AWS_ROOT_SIZE",
            16,
        ),
        s(
            "volume-type",
            "Amazon EBS volume type",
            "AWS_VOLUME_TYPE",
            "gp2",
        ),
        s(
            "iam-instance-profile",
            "AWS IAM Instance Profile",
            "AWS_INSTANCE_PROFILE",
            "",
        ),
        i("ssh-port", "SSH port", "AWS_SSH_PORT", 22),
        s("ssh-user", "SSH username", "AWS_SSH_USER", "ubuntu"),
        b(
            "request-spot-instance",
            "Set this flag to request spot instance",
            "",
        ),
        s(
            "spot-price",
            "AWS spot instance bid price (in dollar)",
            "",
            "0.50",
        ),
        i(
            "block-duration-minutes",
            "AWS spot instance duration in minutes (60, 120, 180, 240, 300, or 360)",
            "",
            0,
        ),
        b("private-address-only", "Only use a private IP address", ""),
        b(
            "use-private-address",
            "Force the usage of private IP address",
            "",
        ),
        b(
            "monitoring",
            "Set this flag to enable CloudWatch monitoring",
            "",
        ),
        b(
            "use-ebs-optimized-instance",
            "Create an EBS optimized instance",
            "",
        ),
        s("ssh-keypath", "SSH Key for Instance", "AWS_SSH_KEYPATH", ""),
        s(
            "keypair-name",
            "AWS keypair to use; requires --amazonec2-ssh-keypath",
            "AWS_KEYPAIR_NAME",
            "",
        ),
        i(
            "retries",
            "Set retry count for recoverable failures (use -1 to disable)",
            "",
            5,
        ),
        s(
            "endpoint",
            "Optional endpoint URL (hostname only or fully qualified URI)",
            "AWS_ENDPOINT",
            "",
        ),
        b(
            "insecure-transport",
            "Disable SSL when sending requests",
            "AWS_INSECURE_TRANSPORT",
        ),
        s(
            "userdata",
            "path to file with cloud-init user data",
            "AWS_USERDATA",
            "",
        ),
        s(
            "metadata-token",
            "Whether the metadata token is required or optional",
            "",
            "optional",
        ),
        i(
            "metadata-token-response-hop-limit",
            "The number of network hops that the metadata token can travel",
            "",
            1,
        ),
        b("volume-encrypted", "Encrypt the root volume", ""),
        s(
            "kms-key",
            "Custom KMS key for the encrypted root volume (default: the AWS managed key)",
            "",
            "",
        ),
    ]
}

fn open(config: &Map<String, Value>, env: &DriverEnv) -> Result<Box<dyn Driver>, DriverError> {
    let mut config: Ec2Config = typed_config(config)?;
    let seen = env
        .prefetched
        .as_ref()
        .and_then(|v| serde_json::from_value::<Prefetched>(v.clone()).ok());
    // The live address of a running instance replaces the one the record has (`ls` writes it
    // back when it changed).
    let mut address_changed = false;
    if let Some(Prefetched::Found(instance)) = &seen
        && instance.state == "running"
        && let Ok(ip) = config.address_of(instance)
        && ip != config.base.ip_address
    {
        config.base.ip_address = ip;
        config.private_ip_address = instance.private_ip.clone();
        address_changed = true;
    }
    Ok(Box::new(Ec2 {
        config,
        env: env.clone(),
        seen: Mutex::new(seen.map(|p| (Instant::now(), p))),
        record: None,
        address_changed,
    }))
}

/// `amazonec2`'s part of the record: docker-machine's fields (so its records open here and
/// hoist's open there), GitLab's additions, and what hoist records to remove what it made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ec2Config {
    #[serde(flatten)]
    pub base: BaseDriver,
    pub id: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: String,
    pub region: String,
    #[serde(rename = "AMI")]
    pub ami: String,
    #[serde(rename = "SSHKeyID")]
    pub ssh_key_id: i64,
    /// The key pair was the user's (`--amazonec2-keypair-name`): never deleted.
    pub existing_key: bool,
    pub key_name: String,
    pub instance_id: String,
    pub instance_type: String,
    #[serde(rename = "PrivateIPAddress")]
    pub private_ip_address: String,
    pub security_group_id: String,
    pub security_group_ids: Option<Vec<String>>,
    pub security_group_name: String,
    pub security_group_names: Option<Vec<String>>,
    pub security_group_read_only: bool,
    pub open_ports: Option<Vec<String>>,
    pub tags: String,
    pub reservation_id: String,
    pub device_name: String,
    pub root_size: i64,
    pub volume_type: String,
    pub iam_instance_profile: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub zone: String,
    pub request_spot_instance: bool,
    pub spot_price: String,
    pub block_duration_minutes: i64,
    #[serde(rename = "PrivateIPOnly")]
    pub private_ip_only: bool,
    #[serde(rename = "UsePrivateIP")]
    pub use_private_ip: bool,
    pub use_ebs_optimized_instance: bool,
    pub monitoring: bool,
    #[serde(rename = "SSHPrivateKeyPath")]
    pub ssh_private_key_path: String,
    pub retry_count: i64,
    pub endpoint: String,
    #[serde(rename = "DisableSSL")]
    pub disable_ssl: bool,
    pub user_data_file: String,
    /// GitLab's fork: `MetadataOptions.HttpTokens` and `HttpPutResponseHopLimit`.
    pub metadata_token: String,
    pub metadata_token_response_hop_limit: i64,
    /// GitLab's fork: root volume encryption and its KMS key.
    pub encrypt_ebs_volume: bool,
    pub kms_key_id: String,
    /// hoist: the create's client token (RunInstances / RequestSpotInstances, and a tag).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_token: String,
    /// hoist: the spot request (docker-machine kept it in memory only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spot_instance_request_id: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What `ls` learnt of one machine's instance before its driver was opened.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Prefetched {
    Found(Instance),
    /// EC2 does not know the instance (terminated and forgotten).
    Gone,
    Failed(String),
}

/// The amazonec2 driver of one machine.
pub struct Ec2 {
    config: Ec2Config,
    env: DriverEnv,
    /// The last answer about the instance, and when it came.
    seen: Mutex<Option<(Instant, Prefetched)>>,
    record: Option<RecordWriter>,
    /// What `ls` prefetched gave the instance another address than the record's.
    address_changed: bool,
}

fn fail(e: impl std::fmt::Display) -> DriverError {
    DriverError::Config(e.to_string())
}

fn api_fail(e: ApiError) -> DriverError {
    DriverError::Config(format!("EC2 {e}"))
}

impl Ec2Config {
    fn retries(&self) -> u32 {
        u32::try_from(self.retry_count).unwrap_or(0)
    }

    fn client(&self) -> Result<Client, DriverError> {
        let credentials =
            credentials::resolve(&self.access_key, &self.secret_key, &self.session_token)
                .ok_or_else(|| fail(MISSING_CREDENTIALS))?;
        Ok(Client {
            url: api::endpoint_url(&self.region, &self.endpoint, self.disable_ssl).map_err(fail)?,
            region: self.region.clone(),
            credentials,
            retries: self.retries(),
        })
    }

    /// `REGION` + `ZONE` for a zone letter; a full zone name as given.
    fn availability_zone(&self) -> String {
        if self.zone.len() <= 1 {
            format!("{}{}", self.region, self.zone)
        } else {
            self.zone.clone()
        }
    }

    /// Whether `KeyName` is a key pair the create imported (docker-machine's rule: not the
    /// user's `--amazonec2-keypair-name`); it is recorded before the import, which a name that
    /// existed before the create could not pass the pre-create check with.
    fn imported_key_pair(&self) -> bool {
        !self.existing_key && !self.key_name.is_empty()
    }

    fn security_group_names(&self) -> Vec<String> {
        merged(&self.security_group_name, &self.security_group_names)
    }

    fn security_group_ids(&self) -> Vec<String> {
        merged(&self.security_group_id, &self.security_group_ids)
    }

    /// The address hoist reaches the instance at.
    fn address_of(&self, instance: &Instance) -> Result<String, DriverError> {
        let (ip, which) = if self.private_ip_only || self.use_private_ip {
            (&instance.private_ip, "private ")
        } else {
            (&instance.public_ip, "")
        };
        if ip.is_empty() {
            return Err(fail(format!("No {which}IP for instance {}", instance.id)));
        }
        Ok(ip.clone())
    }

    /// Tags of the machine: `Name`, then `--amazonec2-tags`' pairs.
    fn tag_pairs(&self) -> Vec<(String, String)> {
        let mut tags = vec![("Name".to_string(), self.base.machine_name.clone())];
        let parts: Vec<&str> = self.tags.split(',').collect();
        if !self.tags.is_empty() {
            for pair in parts.chunks(2) {
                tags.push((pair[0].to_string(), pair.get(1).unwrap_or(&"").to_string()));
            }
        }
        tags
    }
}

/// docker-machine's migration of a single value into a list.
fn merged(one: &str, many: &Option<Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = Some(one.to_string())
        .filter(|s| !s.is_empty())
        .into_iter()
        .collect();
    all.extend(many.iter().flatten().cloned());
    all
}

const MISSING_CREDENTIALS: &str = "amazonec2 driver requires AWS credentials configured with the --amazonec2-access-key and --amazonec2-secret-key options, environment variables, ~/.aws/credentials, or an instance role";

/// docker-machine's state mapping.
fn state_of(instance_state: &str) -> State {
    match instance_state {
        "pending" => State::Starting,
        "running" => State::Running,
        "stopping" | "shutting-down" => State::Stopping,
        "stopped" => State::Stopped,
        _ => State::Error,
    }
}

/// `PORT[/PROTOCOL]` of `--amazonec2-open-port`.
fn parse_port(text: &str) -> Result<(u16, String), DriverError> {
    let (port, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    let protocol = protocol.to_ascii_lowercase();
    match (port.parse::<u16>(), protocol.as_str()) {
        (Ok(p), "tcp" | "udp") if p != 0 => Ok((p, protocol)),
        _ => Err(fail(format!(
            "--amazonec2-open-port {text:?} is not PORT or PORT/tcp or PORT/udp"
        ))),
    }
}

/// A region name as AWS spells them (`eu-west-1`, `us-gov-west-1`, `cn-north-1`).
fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric()))
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn random_token() -> Result<String, DriverError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(fail)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Ec2 {
    fn client(&self) -> Result<Client, DriverError> {
        self.config.client()
    }

    /// Writes the driver's config into the machine's record now (what was made so far).
    fn record(&self) -> Result<(), DriverError> {
        match &self.record {
            Some(write) => write(untyped_config(&self.config)?).map_err(|e| {
                fail(format!(
                    "cannot record instance {} of machine \"{}\" in the store: {e}",
                    self.config.instance_id, self.config.base.machine_name
                ))
            }),
            None => Ok(()),
        }
    }

    /// The instance as EC2 last described it (at most [`FRESH_FOR`] ago, or what `ls` prefetched),
    /// else asked now.
    async fn instance(&self) -> Result<Instance, DriverError> {
        let prefetched = self.env.prefetched.is_some();
        if let Some((at, seen)) = self.seen.lock().map(|s| s.clone()).ok().flatten()
            && (prefetched || at.elapsed() < FRESH_FOR)
        {
            return match seen {
                Prefetched::Found(i) => Ok(i),
                Prefetched::Gone => Err(self.gone()),
                Prefetched::Failed(e) => Err(fail(e)),
            };
        }
        self.describe().await
    }

    fn gone(&self) -> DriverError {
        fail(format!(
            "instance {} of machine \"{}\" does not exist in EC2 any more (region {}); '{} rm {}' removes the machine",
            self.config.instance_id,
            self.config.base.machine_name,
            self.config.region,
            crate::context::program_name(),
            self.config.base.machine_name
        ))
    }

    /// Asks EC2 about the instance now.
    async fn describe(&self) -> Result<Instance, DriverError> {
        if self.config.instance_id.is_empty() {
            return Err(fail(format!(
                "machine \"{}\" has no EC2 instance recorded (its create did not get that far)",
                self.config.base.machine_name
            )));
        }
        let found = self
            .client()?
            .describe_instances(std::slice::from_ref(&self.config.instance_id))
            .await;
        let seen = match found.map_err(api_fail)?.into_iter().next() {
            Some(i) => Prefetched::Found(i),
            None => Prefetched::Gone,
        };
        if let Ok(mut s) = self.seen.lock() {
            *s = Some((Instant::now(), seen.clone()));
        }
        match seen {
            Prefetched::Found(i) => Ok(i),
            _ => Err(self.gone()),
        }
    }

    fn forget(&self) {
        if let Ok(mut s) = self.seen.lock() {
            *s = None;
        }
    }

    /// The address of the running instance, kept in the record (written when it changed, as
    /// after a stop and start outside hoist).
    async fn running_address(&self) -> Result<String, DriverError> {
        let instance = self.instance().await?;
        if state_of(&instance.state) != State::Running {
            return Err(DriverError::NotRunning);
        }
        let ip = self.config.address_of(&instance)?;
        if ip != self.config.base.ip_address
            && let Some(write) = &self.record
        {
            let mut config = self.config.clone();
            config.base.ip_address = ip.clone();
            config.private_ip_address = instance.private_ip.clone();
            // Best effort: the live address is used either way.
            let _ = untyped_config(&config).map(|c| write(c));
        }
        Ok(ip)
    }

    /// Waits until the instance runs with an address; records it.
    async fn wait_running(&mut self) -> Result<(), DriverError> {
        let started = Instant::now();
        loop {
            self.forget();
            let instance = self.describe().await?;
            let state = state_of(&instance.state);
            if state == State::Running
                && let Ok(ip) = self.config.address_of(&instance)
            {
                self.config.base.ip_address = ip;
                self.config.private_ip_address = instance.private_ip;
                return Ok(());
            }
            if matches!(
                instance.state.as_str(),
                "terminated" | "shutting-down" | "stopped"
            ) {
                return Err(fail(format!(
                    "instance {} is {} instead of running",
                    instance.id, instance.state
                )));
            }
            if started.elapsed() > LAUNCH_WAIT {
                return Err(DriverError::Timeout(format!(
                    "waited {}s for instance {} to run with an address; it is {}",
                    LAUNCH_WAIT.as_secs(),
                    instance.id,
                    instance.state
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn set_from_flags(&mut self, flags: &FlagValues) -> Result<(), DriverError> {
        let f = |name: &str| flags.string(&format!("amazonec2-{name}"));
        let on = |name: &str| flags.bool(&format!("amazonec2-{name}"));
        let int = |name: &str| flags.int(&format!("amazonec2-{name}"));
        let c = &mut self.config;
        c.endpoint = f("endpoint");
        c.disable_ssl = on("insecure-transport");
        if c.disable_ssl && c.endpoint.is_empty() {
            return Err(fail(
                "using --amazonec2-insecure-transport also requires --amazonec2-endpoint",
            ));
        }
        c.region = f("region");
        if c.region == DEFAULT_REGION
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            && let Some(region) = credentials::configured_region()
        {
            c.region = region;
        }
        if !valid_region(&c.region) {
            return Err(fail(format!(
                "Invalid region specified: {:?} (a region such as us-east-1)",
                c.region
            )));
        }
        c.ami = f("ami");
        if c.ami.is_empty() {
            c.ami = DEFAULT_AMIS
                .iter()
                .find(|(r, _)| *r == c.region)
                .map(|(_, ami)| ami.to_string())
                .ok_or_else(|| {
                    fail(format!(
                        "there is no default AMI for region {}: give one with --amazonec2-ami",
                        c.region
                    ))
                })?;
        }
        c.access_key = f("access-key");
        c.secret_key = f("secret-key");
        c.session_token = f("session-token");
        c.request_spot_instance = on("request-spot-instance");
        c.spot_price = f("spot-price");
        c.block_duration_minutes = int("block-duration-minutes");
        if ![0, 60, 120, 180, 240, 300, 360].contains(&c.block_duration_minutes) {
            return Err(fail(format!(
                "--amazonec2-block-duration-minutes {} is not 60, 120, 180, 240, 300 or 360",
                c.block_duration_minutes
            )));
        }
        c.instance_type = f("instance-type");
        c.vpc_id = f("vpc-id");
        c.subnet_id = f("subnet-id");
        c.security_group_names =
            Some(flags.string_slice("amazonec2-security-group")).filter(|v| !v.is_empty());
        c.security_group_read_only = on("security-group-readonly");
        c.tags = f("tags");
        if !c.tags.is_empty() && !c.tags.split(',').count().is_multiple_of(2) {
            return Err(fail(format!(
                "--amazonec2-tags {:?} is not key,value pairs (key1,value1,key2,value2)",
                c.tags
            )));
        }
        c.zone = f("zone");
        c.device_name = f("device-name");
        c.root_size = int("root-size");
        if c.root_size <= 0 {
            return Err(fail(format!(
                "--amazonec2-root-size {} is not a size in GB",
                c.root_size
            )));
        }
        c.volume_type = f("volume-type");
        c.iam_instance_profile = f("iam-instance-profile");
        c.base.ssh_user = f("ssh-user");
        c.base.ssh_port = u16::try_from(int("ssh-port"))
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| fail("--amazonec2-ssh-port is not a TCP port (1-65535)"))?;
        c.private_ip_only = on("private-address-only");
        c.use_private_ip = on("use-private-address");
        c.monitoring = on("monitoring");
        c.use_ebs_optimized_instance = on("use-ebs-optimized-instance");
        c.ssh_private_key_path = f("ssh-keypath");
        c.key_name = f("keypair-name");
        c.existing_key = !c.key_name.is_empty();
        if c.existing_key && c.ssh_private_key_path.is_empty() {
            return Err(fail(
                "using --amazonec2-keypair-name also requires --amazonec2-ssh-keypath",
            ));
        }
        c.retry_count = int("retries").max(0);
        c.open_ports = Some(flags.string_slice("amazonec2-open-port")).filter(|v| !v.is_empty());
        for port in c.open_ports.iter().flatten() {
            parse_port(port)?;
        }
        c.user_data_file = f("userdata");
        c.metadata_token = f("metadata-token");
        if !["optional", "required"].contains(&c.metadata_token.as_str()) {
            return Err(fail(format!(
                "--amazonec2-metadata-token {:?} is not optional or required",
                c.metadata_token
            )));
        }
        c.metadata_token_response_hop_limit = int("metadata-token-response-hop-limit");
        if !(1..=64).contains(&c.metadata_token_response_hop_limit) {
            return Err(fail(format!(
                "--amazonec2-metadata-token-response-hop-limit {} is not 1 to 64",
                c.metadata_token_response_hop_limit
            )));
        }
        c.encrypt_ebs_volume = on("volume-encrypted");
        c.kms_key_id = f("kms-key");
        if !c.kms_key_id.is_empty() && !c.encrypt_ebs_volume {
            return Err(fail(
                "--amazonec2-kms-key is the key of an encrypted volume: add --amazonec2-volume-encrypted",
            ));
        }
        c.base.set_swarm_config_from_flags(flags);
        let client = self.client()?;
        let c = &mut self.config;
        if c.vpc_id.is_empty() {
            match client.default_vpc().await {
                Ok(Some(vpc)) => c.vpc_id = vpc,
                Ok(None) => {}
                Err(e) => self.env.report.info(&format!(
                    "Couldn't determine your account Default VPC ID: {e}"
                )),
            }
        }
        if c.subnet_id.is_empty() && c.vpc_id.is_empty() {
            return Err(fail(
                "amazonec2 driver requires either the --amazonec2-subnet-id or --amazonec2-vpc-id option or an AWS Account with a default vpc-id",
            ));
        }
        if !c.subnet_id.is_empty() {
            let subnets = client
                .describe_subnets(&[("subnet-id", vec![c.subnet_id.clone()])])
                .await
                .map_err(api_fail)?;
            let subnet = subnets.first().ok_or_else(|| {
                fail("The desired subnet could not be located in this region. Is '--amazonec2-subnet-id' or AWS_SUBNET_ID configured correctly?")
            })?;
            if c.vpc_id.is_empty() {
                c.vpc_id = subnet.vpc_id.clone();
            } else if subnet.vpc_id != c.vpc_id {
                return Err(fail(format!(
                    "SubnetId: {} does not belong to VpcId: {}",
                    c.subnet_id, c.vpc_id
                )));
            }
        }
        Ok(())
    }

    /// docker-machine's `checkPrereqs`: the key pair (present if named, absent otherwise), the
    /// subnet of the zone, the user data file, the SSH key.
    async fn check(&mut self) -> Result<(), DriverError> {
        let client = self.client()?;
        let c = &mut self.config;
        let (key_name, should_exist) = if c.existing_key {
            (c.key_name.clone(), true)
        } else {
            (c.base.machine_name.clone(), false)
        };
        let exists = client.key_pair_exists(&key_name).await.map_err(api_fail)?;
        if should_exist && !exists {
            return Err(fail(format!(
                "There is no keypair with the name {key_name}. Please verify the key name provided."
            )));
        }
        if !should_exist && exists {
            return Err(fail(format!(
                "There is already a keypair with the name {key_name}.  Please either remove that keypair or use a different machine name."
            )));
        }
        if !c.ssh_private_key_path.is_empty() && !Path::new(&c.ssh_private_key_path).is_file() {
            return Err(fail(format!(
                "SSH key does not exist: {:?}",
                c.ssh_private_key_path
            )));
        }
        if !c.user_data_file.is_empty() && std::fs::metadata(&c.user_data_file).is_err() {
            return Err(fail(format!(
                "unable to read --amazonec2-userdata file {:?}",
                c.user_data_file
            )));
        }
        if c.subnet_id.is_empty() {
            let zone = c.availability_zone();
            let subnets = client
                .describe_subnets(&[
                    ("availability-zone", vec![zone.clone()]),
                    ("vpc-id", vec![c.vpc_id.clone()]),
                ])
                .await
                .map_err(api_fail)?;
            let chosen = subnets
                .iter()
                .find(|s| s.default_for_az)
                .or(subnets.first())
                .ok_or_else(|| {
                    fail(format!(
                        "unable to find a subnet that is both in the zone {zone} and belonging to VPC ID {}",
                        c.vpc_id
                    ))
                })?;
            c.subnet_id = chosen.id.clone();
        }
        Ok(())
    }

    /// The key pair: the user's (its key copied into the machine directory), else a new key
    /// imported under the machine's name.
    async fn key_pair(&mut self, client: &Client) -> Result<(), DriverError> {
        let dir = self.config.base.machine_dir();
        crate::fsutil::create_dir_all(&dir, 0o700)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        let key_path = dir.join("id_rsa");
        let public = if self.config.ssh_private_key_path.is_empty() {
            let comment = format!("hoist-{}", self.config.base.machine_name);
            crate::ssh::make_key(&key_path, &comment).map_err(fail)?
        } else {
            let source = &self.config.ssh_private_key_path;
            let private = std::fs::read(source)
                .map_err(|e| fail(format!("cannot read SSH key {source:?}: {e}")))?;
            crate::fsutil::write_atomic(&key_path, &private, 0o600).map_err(fail)?;
            let public = std::fs::read_to_string(format!("{source}.pub")).unwrap_or_default();
            if !public.is_empty() {
                let mut public_path = key_path.clone().into_os_string();
                public_path.push(".pub");
                crate::fsutil::write_atomic(Path::new(&public_path), public.as_bytes(), 0o644)
                    .map_err(fail)?;
            }
            public
        };
        self.config.base.ssh_key_path = key_path.to_string_lossy().into_owned();
        if self.config.existing_key {
            return Ok(());
        }
        if public.trim().is_empty() {
            return Err(fail(format!(
                "no public key {}.pub beside --amazonec2-ssh-keypath to import",
                self.config.ssh_private_key_path
            )));
        }
        let name = self.config.base.machine_name.clone();
        self.config.key_name = name.clone();
        self.record()?;
        client
            .import_key_pair(&name, &public, &self.config.tag_pairs())
            .await
            .map_err(|e| fail(format!("unable to create key pair: {e}")))
    }

    /// The security groups: found by name in the VPC; a missing one is made. Only the groups hoist
    /// made and `docker-machine` get rules (SSH, Docker, `--amazonec2-open-port`), and not with
    /// `--amazonec2-security-group-readonly`.
    async fn security_groups(&mut self, client: &Client) -> Result<(), DriverError> {
        let names = self.config.security_group_names();
        if names.is_empty() {
            return Ok(());
        }
        let mut filters = vec![("group-name", names.clone())];
        if !self.config.vpc_id.is_empty() {
            filters.push(("vpc-id", vec![self.config.vpc_id.clone()]));
        }
        let found = client
            .describe_security_groups(&filters, &[])
            .await
            .map_err(api_fail)?;
        let mut ids = Vec::new();
        for name in &names {
            let (group, made) = match found.iter().find(|g| &g.name == name) {
                Some(g) => (g.clone(), false),
                None => {
                    let id = client
                        .create_security_group(name, "Docker Machine", &self.config.vpc_id)
                        .await
                        .map_err(api_fail)?;
                    self.wait_for_group(client, &id).await?;
                    let group = calls::SecurityGroup {
                        id,
                        name: name.clone(),
                        open: Default::default(),
                    };
                    (group, true)
                }
            };
            ids.push(group.id.clone());
            if self.config.security_group_read_only || !(made || name == MACHINE_SECURITY_GROUP) {
                continue;
            }
            let mut wanted = vec![
                (self.config.base.ssh_port, "tcp".to_string()),
                (DOCKER_PORT, "tcp".to_string()),
            ];
            for port in self.config.open_ports.iter().flatten() {
                wanted.push(parse_port(port)?);
            }
            wanted.dedup();
            let missing: Vec<(u16, String)> = wanted
                .into_iter()
                .filter(|(port, protocol)| !group.open.contains(&format!("{port}/{protocol}")))
                .collect();
            if !missing.is_empty() {
                client
                    .authorize_ingress(&group.id, &missing)
                    .await
                    .map_err(api_fail)?;
            }
        }
        self.config.security_group_ids = Some(ids);
        Ok(())
    }

    /// Waits until a new group can be described (EC2's eventual consistency).
    async fn wait_for_group(&self, client: &Client, id: &str) -> Result<(), DriverError> {
        let started = Instant::now();
        loop {
            match client
                .describe_security_groups(&[], &[id.to_string()])
                .await
            {
                Ok(groups) if !groups.is_empty() => return Ok(()),
                Err(e) if !e.is_transient() && e.code() != Some("InvalidGroup.NotFound") => {
                    return Err(api_fail(e));
                }
                _ if started.elapsed() > Duration::from_secs(60) => {
                    return Err(fail(format!(
                        "security group {id} did not become available within 60s"
                    )));
                }
                _ => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    /// The launch parameters shared by RunInstances and a spot request's `LaunchSpecification`.
    fn launch_params(&self, p: &str) -> Result<Params, DriverError> {
        let c = &self.config;
        let mut params = Params::default();
        params
            .set(format!("{p}ImageId"), &c.ami)
            .set(format!("{p}InstanceType"), &c.instance_type)
            .set(
                format!("{p}Placement.AvailabilityZone"),
                c.availability_zone(),
            )
            .set(format!("{p}KeyName"), &c.key_name)
            .set(format!("{p}Monitoring.Enabled"), c.monitoring.to_string())
            .set(
                format!("{p}EbsOptimized"),
                c.use_ebs_optimized_instance.to_string(),
            );
        let nic = format!("{p}NetworkInterface.1");
        params
            .set(format!("{nic}.DeviceIndex"), "0")
            .set(format!("{nic}.SubnetId"), &c.subnet_id)
            .set(
                format!("{nic}.AssociatePublicIpAddress"),
                (!c.private_ip_only).to_string(),
            )
            .list(&format!("{nic}.SecurityGroupId"), &c.security_group_ids());
        if !c.iam_instance_profile.is_empty() {
            params.set(
                format!("{p}IamInstanceProfile.Name"),
                &c.iam_instance_profile,
            );
        }
        let disk = format!("{p}BlockDeviceMapping.1");
        params
            .set(format!("{disk}.DeviceName"), &c.device_name)
            .set(format!("{disk}.Ebs.VolumeSize"), c.root_size.to_string())
            .set(format!("{disk}.Ebs.VolumeType"), &c.volume_type)
            .set(format!("{disk}.Ebs.DeleteOnTermination"), "true");
        if c.encrypt_ebs_volume {
            params.set(format!("{disk}.Ebs.Encrypted"), "true");
            if !c.kms_key_id.is_empty() {
                params.set(format!("{disk}.Ebs.KmsKeyId"), &c.kms_key_id);
            }
        }
        if !c.user_data_file.is_empty() {
            use base64::Engine;
            let data = std::fs::read(&c.user_data_file).map_err(|e| {
                fail(format!(
                    "unable to read --amazonec2-userdata file {:?}: {e}",
                    c.user_data_file
                ))
            })?;
            params.set(
                format!("{p}UserData"),
                base64::engine::general_purpose::STANDARD.encode(data),
            );
        }
        Ok(params)
    }

    /// The tags of everything the launch makes: the machine's, and the client token.
    fn launch_tags(&self) -> Vec<(String, String)> {
        let mut tags = self.config.tag_pairs();
        tags.push((TOKEN_TAG.into(), self.config.client_token.clone()));
        tags
    }

    /// RunInstances with the client token recorded first; the instance ID recorded at once.
    async fn run_instance(&mut self, client: &Client) -> Result<(), DriverError> {
        let mut params = self.launch_params("")?;
        let c = &self.config;
        params
            .set("MinCount", "1")
            .set("MaxCount", "1")
            .set("ClientToken", &c.client_token)
            .set("MetadataOptions.HttpEndpoint", "enabled")
            .set("MetadataOptions.HttpTokens", &c.metadata_token)
            .set(
                "MetadataOptions.HttpPutResponseHopLimit",
                c.metadata_token_response_hop_limit.to_string(),
            );
        let tags = self.launch_tags();
        for (n, kind) in ["instance", "volume", "network-interface"]
            .iter()
            .enumerate()
        {
            tag_specification(&mut params, "TagSpecification", n + 1, kind, &tags);
        }
        let (reservation, instance) = client
            .run_instance(&params)
            .await
            .map_err(|e| fail(format!("Error launching instance: {e}")))?;
        self.config.instance_id = instance.id;
        self.config.reservation_id = reservation;
        self.record()
    }

    /// A spot request (recorded at once), its fulfilment, then the instance's tags and
    /// metadata options (a spot launch takes neither).
    async fn run_spot_instance(&mut self, client: &Client) -> Result<(), DriverError> {
        let mut params = self.launch_params("LaunchSpecification.")?;
        let c = &self.config;
        params
            .set("InstanceCount", "1")
            .set("SpotPrice", &c.spot_price)
            .set("ClientToken", &c.client_token);
        if c.block_duration_minutes > 0 {
            params.set("BlockDurationMinutes", c.block_duration_minutes.to_string());
        }
        let id = client
            .request_spot_instance(&params)
            .await
            .map_err(|e| fail(format!("Error request spot instance: {e}")))?;
        self.config.spot_instance_request_id = id.clone();
        self.record()?;
        self.env.report.info("Waiting for spot instance...");
        let started = Instant::now();
        let instance = loop {
            match client.spot_request(&id).await {
                Ok((_, instance)) if !instance.is_empty() => break instance,
                Ok((state, _)) if matches!(state.as_str(), "cancelled" | "failed" | "closed") => {
                    return Err(fail(format!("spot request {id} is {state}")));
                }
                Err(e) if e.code() != Some("InvalidSpotInstanceRequestID.NotFound") => {
                    return Err(fail(format!("Error fulfilling spot request: {e}")));
                }
                _ if started.elapsed() > LAUNCH_WAIT => {
                    return Err(DriverError::Timeout(format!(
                        "spot request {id} was not fulfilled within {}s",
                        LAUNCH_WAIT.as_secs()
                    )));
                }
                _ => tokio::time::sleep(POLL).await,
            }
        };
        self.env
            .report
            .info(&format!("Created spot instance request {id}"));
        self.config.instance_id = instance.clone();
        self.record()?;
        client
            .create_tags(std::slice::from_ref(&instance), &self.launch_tags())
            .await
            .map_err(|e| fail(format!("Unable to tag instance {instance}: {e}")))?;
        let mut options = Params::default();
        options
            .set("InstanceId", &instance)
            .set("HttpTokens", &self.config.metadata_token)
            .set(
                "HttpPutResponseHopLimit",
                self.config.metadata_token_response_hop_limit.to_string(),
            )
            .set("HttpEndpoint", "enabled");
        client
            .call("ModifyInstanceMetadataOptions", &options)
            .await
            .map_err(api_fail)
            .map(drop)
    }

    /// docker-machine's create after its pre-create check (which hoist always runs first).
    async fn make(&mut self) -> Result<(), DriverError> {
        let client = self.client()?;
        self.env.report.info("Launching instance...");
        self.config.client_token = random_token()?;
        self.key_pair(&client).await?;
        self.security_groups(&client).await?;
        self.record()?;
        if self.config.request_spot_instance {
            self.run_spot_instance(&client).await?;
        } else {
            self.run_instance(&client).await?;
        }
        self.wait_running().await?;
        self.record()
    }

    /// Removes what hoist made: the instance (by ID, or by its token tag when the create was
    /// cut off before the ID came back), the spot request, the imported key pair.
    async fn unmake(&mut self) -> Result<(), DriverError> {
        let c = &self.config;
        let nothing_made = c.instance_id.is_empty()
            && c.spot_instance_request_id.is_empty()
            && !c.imported_key_pair()
            && c.client_token.is_empty();
        if nothing_made {
            return Ok(());
        }
        let client = self.client()?;
        let mut errors = Vec::new();
        let mut instances: Vec<String> = Some(c.instance_id.clone())
            .filter(|i| !i.is_empty())
            .into_iter()
            .collect();
        if instances.is_empty() && !c.client_token.is_empty() {
            match client
                .find_instances(&[("tag:hoist-client-token", vec![c.client_token.clone()])])
                .await
            {
                Ok(found) => instances.extend(
                    found
                        .into_iter()
                        .filter(|i| i.state != "terminated")
                        .map(|i| i.id),
                ),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !c.spot_instance_request_id.is_empty() {
            // Cancelled first, so that it cannot start an instance after the terminate.
            if let Err(e) = client
                .cancel_spot_request(&c.spot_instance_request_id)
                .await
            {
                errors.push(e.to_string());
            }
            if instances.is_empty()
                && let Ok((_, id)) = client.spot_request(&c.spot_instance_request_id).await
                && !id.is_empty()
            {
                instances.push(id);
            }
        }
        for id in &instances {
            match client.instance_action("TerminateInstances", id, &[]).await {
                Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => {}
                Err(e) => errors.push(format!("unable to terminate instance: {e}")),
                Ok(()) => {}
            }
        }
        if c.imported_key_pair()
            && let Err(e) = client.delete_key_pair(&c.key_name).await
        {
            errors.push(format!("unable to remove key pair: {e}"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(fail(errors.join("; ")))
        }
    }

    async fn power(&mut self, action: &str, extra: &[(&str, &str)]) -> Result<(), DriverError> {
        self.forget();
        if self.config.instance_id.is_empty() {
            return self.describe().await.map(drop);
        }
        self.client()?
            .instance_action(action, &self.config.instance_id, extra)
            .await
            .map_err(api_fail)
    }
}

impl Driver for Ec2 {
    typed_config_methods!("amazonec2");
    fn set_config_from_flags<'a>(&'a mut self, flags: &'a FlagValues) -> DriverFuture<'a, ()> {
        Box::pin(self.set_from_flags(flags))
    }
    fn pre_create_check(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.check())
    }
    fn create(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.make())
    }
    fn remove(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.unmake())
    }
    fn start(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(async {
            self.power("StartInstances", &[]).await?;
            self.wait_running().await
        })
    }
    fn stop(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.power("StopInstances", &[("Force", "false")]))
    }
    fn restart(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.power("RebootInstances", &[]))
    }
    fn kill(&mut self) -> DriverFuture<'_, ()> {
        Box::pin(self.power("StopInstances", &[("Force", "true")]))
    }
    fn state(&self) -> DriverFuture<'_, State> {
        Box::pin(async {
            let instance = self.instance().await?;
            Ok(state_of(&instance.state))
        })
    }
    fn ip(&self) -> DriverFuture<'_, String> {
        Box::pin(async {
            let instance = self.instance().await?;
            self.config.address_of(&instance)
        })
    }
    fn url(&self) -> DriverFuture<'_, String> {
        Box::pin(async {
            let ip = self.running_address().await?;
            Ok(format!(
                "tcp://{}",
                crate::netaddr::join_host_port(&ip, DOCKER_PORT)
            ))
        })
    }
    fn ssh_endpoint(&self) -> DriverFuture<'_, Option<SshEndpoint>> {
        Box::pin(async {
            let host = match self.running_address().await {
                Ok(ip) => ip,
                Err(_) if !self.config.base.ip_address.is_empty() => {
                    self.config.base.ip_address.clone()
                }
                Err(e) => return Err(e),
            };
            Ok(Some(SshEndpoint {
                host,
                port: self.config.base.ssh_port,
                user: self.config.base.ssh_user.clone(),
                key: Some(&self.config.base.ssh_key_path)
                    .filter(|k| !k.is_empty())
                    .map(Into::into),
                key_origin: None,
            }))
        })
    }
    /// What `ls` prefetched: the URL of a running instance (its daemon is asked straight away).
    fn known_url(&self) -> Option<String> {
        self.env.prefetched.as_ref()?;
        let seen = self.seen.lock().ok()?.clone()?;
        match seen.1 {
            Prefetched::Found(i) if i.state == "running" => self
                .config
                .address_of(&i)
                .ok()
                .map(|ip| format!("tcp://{}", crate::netaddr::join_host_port(&ip, DOCKER_PORT))),
            _ => None,
        }
    }
    fn removes_failed_create(&self) -> bool {
        true
    }
    fn set_record_writer(&mut self, writer: RecordWriter) {
        self.record = Some(writer);
    }
    fn changed_config(&self) -> Option<Map<String, Value>> {
        self.address_changed
            .then(|| untyped_config(&self.config).ok())
            .flatten()
    }
}

/// `ls`: one DescribeInstances per endpoint, region and credentials for all their machines.
fn prefetch_boxed(
    machines: Vec<NamedConfig>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = HashMap<String, Value>> + Send>> {
    Box::pin(prefetch(machines))
}

/// The machines (name, instance ID) that one client asks about.
type Group = (Client, Vec<(String, String)>);

/// Asks EC2 about many machines' instances with one call per account and region.
pub async fn prefetch(machines: Vec<NamedConfig>) -> HashMap<String, Value> {
    let mut groups: HashMap<(String, String, api::Credentials), Group> = HashMap::new();
    let mut seen = HashMap::new();
    for (name, config) in machines {
        let Ok(config) = typed_config::<Ec2Config>(&config) else {
            continue;
        };
        if config.instance_id.is_empty() {
            continue;
        }
        match config.client() {
            Ok(client) => {
                let key = (
                    client.url.text(),
                    client.region.clone(),
                    client.credentials.clone(),
                );
                groups
                    .entry(key)
                    .or_insert_with(|| (client, Vec::new()))
                    .1
                    .push((name, config.instance_id));
            }
            Err(e) => {
                seen.insert(name, Prefetched::Failed(e.to_string()));
            }
        }
    }
    let mut asks = tokio::task::JoinSet::new();
    for (client, members) in groups.into_values() {
        asks.spawn(async move {
            let ids: Vec<String> = members.iter().map(|(_, id)| id.clone()).collect();
            (client.describe_instances(&ids).await, members)
        });
    }
    while let Some(Ok((answer, members))) = asks.join_next().await {
        let found = answer.map(|list| {
            list.into_iter()
                .map(|i| (i.id.clone(), i))
                .collect::<HashMap<_, _>>()
        });
        for (name, id) in members {
            let one = match &found {
                Ok(by_id) => by_id
                    .get(&id)
                    .map_or(Prefetched::Gone, |i| Prefetched::Found(i.clone())),
                Err(e) => Prefetched::Failed(api_fail(e.clone()).to_string()),
            };
            seen.insert(name, one);
        }
    }
    seen.into_iter()
        .filter_map(|(name, one)| serde_json::to_value(one).ok().map(|v| (name, v)))
        .collect()
}

#[cfg(test)]
mod tests;
