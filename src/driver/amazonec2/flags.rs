//! docker-machine's amazonec2 flags (with GitLab's additions) and how they become the record.

use super::*;

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

pub(super) fn flags() -> Vec<Flag> {
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

/// `PORT[/PROTOCOL]` of `--amazonec2-open-port`.
pub(super) fn parse_port(text: &str) -> Result<(u16, String), DriverError> {
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
pub(super) fn valid_region(region: &str) -> bool {
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

impl Ec2 {
    pub(super) async fn set_from_flags(&mut self, flags: &FlagValues) -> Result<(), DriverError> {
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
        // As docker-machine: no credentials is an error before anything is asked of EC2.
        client.credentials.credentials().await.map_err(fail)?;
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
}
