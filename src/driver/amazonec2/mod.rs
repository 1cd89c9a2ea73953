//! The `amazonec2` driver: docker-machine's EC2 driver, flag for flag (with GitLab's metadata,
//! encryption and launch-tag additions), over the EC2 Query API ([`api`]).
//!
//! What it makes is in the record from the moment it exists (through the record writer of
//! [`Driver::set_record_writer`]): the client token before RunInstances (the instance carries it
//! as a tag, so even a create killed while the call was in flight is found), the instance and spot
//! request IDs as soon as EC2 returns them, the imported key pair ([`launch`]). `remove` removes
//! exactly that, never a key pair or security group the user brought. `ls` asks EC2 once per
//! endpoint, region and credentials ([`fleet`]).

mod api;
mod calls;
mod credentials;
mod flags;
mod fleet;
mod launch;

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
use flags::{flags, parse_port};

/// The name of the security group hoist makes and keeps open for SSH and Docker.
pub const MACHINE_SECURITY_GROUP: &str = "docker-machine";
/// The Docker port.
const DOCKER_PORT: u16 = 2376;
/// How long a describe answer is reused within one command.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// How long an instance may take to run with an address, or a spot request to be fulfilled.
const LAUNCH_WAIT: Duration = Duration::from_secs(600);
/// How long an instance may still be reported stopped after it was started.
const STOPPED_GRACE: Duration = Duration::from_secs(60);
/// How often a wait asks EC2.
const POLL: Duration = Duration::from_secs(2);

/// The `amazonec2` entry of the table of drivers.
pub const BUILTIN: Builtin = Builtin {
    name: "amazonec2",
    flags,
    open,
    prefetch: Some(fleet::prefetch_boxed),
    runs_here: false,
};

fn open(config: &Map<String, Value>, env: &DriverEnv) -> Result<Box<dyn Driver>, DriverError> {
    let mut config: Ec2Config = typed_config(config)?;
    let seen = env
        .prefetched
        .as_ref()
        .and_then(|v| serde_json::from_value::<Described>(v.clone()).ok());
    // The live address of a running instance replaces the one the record has (`ls` writes it
    // back when it changed).
    let mut address_changed = false;
    if let Some(Described::Found(instance)) = &seen
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

/// What EC2 said of a machine's instance (asked by the driver, or prefetched by `ls`).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Described {
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
    seen: Mutex<Option<(Instant, Described)>>,
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

const MISSING_CREDENTIALS: &str = "amazonec2 driver requires AWS credentials configured with the --amazonec2-access-key and --amazonec2-secret-key options, environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), or ~/.aws/credentials (profile AWS_PROFILE, else default); the instance role is not asked (AWS_EC2_METADATA_DISABLED)";

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
                Described::Found(i) => Ok(i),
                Described::Gone => Err(self.gone()),
                Described::Failed(e) => Err(fail(e)),
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
            Some(i) => Described::Found(i),
            None => Described::Gone,
        };
        if let Ok(mut s) = self.seen.lock() {
            *s = Some((Instant::now(), seen.clone()));
        }
        match seen {
            Described::Found(i) => Ok(i),
            _ => Err(self.gone()),
        }
    }

    fn forget(&self) {
        if let Ok(mut s) = self.seen.lock() {
            *s = None;
        }
    }

    /// The address of the running instance (the live one: `ls` and `start` keep the record's).
    async fn running_address(&self) -> Result<String, DriverError> {
        let instance = self.instance().await?;
        if state_of(&instance.state) != State::Running {
            return Err(DriverError::NotRunning);
        }
        self.config.address_of(&instance)
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
            // Right after StartInstances EC2 may still say stopped for a while; an instance that
            // stays stopped did not start (no capacity, a bad volume).
            let stays_stopped = instance.state == "stopped" && started.elapsed() > STOPPED_GRACE;
            if stays_stopped || matches!(instance.state.as_str(), "terminated" | "shutting-down") {
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
            Described::Found(i) if i.state == "running" => self
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

#[cfg(test)]
mod tests;
