use super::flags::valid_region;
use super::*;
use crate::driver::FlagValue;

#[test]
fn flags_are_docker_machines_with_gitlabs_additions() {
    let flags = flags();
    let find = |name: &str| {
        flags
            .iter()
            .find(|f| f.name == format!("amazonec2-{name}"))
            .unwrap_or_else(|| panic!("{name}"))
    };
    let expect = [
        (
            "access-key",
            "AWS_ACCESS_KEY_ID",
            FlagValue::String("".into()),
        ),
        (
            "region",
            "AWS_DEFAULT_REGION",
            FlagValue::String("us-east-1".into()),
        ),
        ("zone", "AWS_ZONE", FlagValue::String("a".into())),
        (
            "instance-type",
            "AWS_INSTANCE_TYPE",
            FlagValue::String("t2.micro".into()),
        ),
        ("root-size", "AWS_ROOT_SIZE", FlagValue::Int(16)),
        (
            "volume-type",
            "AWS_VOLUME_TYPE",
            FlagValue::String("gp2".into()),
        ),
        (
            "device-name",
            "AWS_DEVICE_NAME",
            FlagValue::String("/dev/sda1".into()),
        ),
        (
            "ssh-user",
            "AWS_SSH_USER",
            FlagValue::String("ubuntu".into()),
        ),
        ("ssh-port", "AWS_SSH_PORT", FlagValue::Int(22)),
        (
            "security-group",
            "AWS_SECURITY_GROUP",
            FlagValue::StringSlice(vec!["docker-machine".into()]),
        ),
        ("spot-price", "", FlagValue::String("0.50".into())),
        ("retries", "", FlagValue::Int(5)),
        ("metadata-token", "", FlagValue::String("optional".into())),
        ("metadata-token-response-hop-limit", "", FlagValue::Int(1)),
        ("volume-encrypted", "", FlagValue::Bool(false)),
        (
            "insecure-transport",
            "AWS_INSECURE_TRANSPORT",
            FlagValue::Bool(false),
        ),
        ("userdata", "AWS_USERDATA", FlagValue::String("".into())),
    ];
    for (name, env, default) in expect {
        let flag = find(name);
        assert_eq!(flag.env_var, env, "{name}");
        assert_eq!(flag.default_value(), default, "{name}");
    }
    // docker-machine 0.16.2's 32 flags and GitLab's 4.
    assert_eq!(flags.len(), 36);
}

#[test]
fn docker_machine_record_reads_and_writes_back() {
    let json: serde_json::Value = serde_json::from_str(
        r#"{
        "IPAddress": "203.0.113.7", "MachineName": "runner-1", "SSHUser": "ubuntu", "SSHPort": 22,
        "SSHKeyPath": "/root/.docker/machine/machines/runner-1/id_rsa",
        "StorePath": "/root/.docker/machine", "SwarmMaster": false, "SwarmHost": "",
        "SwarmDiscovery": "", "Id": "0d5b", "AccessKey": "", "SecretKey": "", "SessionToken": "",
        "Region": "eu-west-1", "AMI": "ami-1", "SSHKeyID": 0, "ExistingKey": false,
        "KeyName": "runner-1", "InstanceId": "i-0abc", "InstanceType": "t3.micro",
        "PrivateIPAddress": "10.0.0.7", "SecurityGroupId": "", "SecurityGroupIds": ["sg-1"],
        "SecurityGroupName": "", "SecurityGroupNames": ["docker-machine"],
        "SecurityGroupReadOnly": false, "OpenPorts": null, "Tags": "", "ReservationId": "r-1",
        "DeviceName": "/dev/sda1", "RootSize": 16, "VolumeType": "gp2", "IamInstanceProfile": "",
        "VpcId": "vpc-1", "SubnetId": "subnet-1", "Zone": "a", "RequestSpotInstance": false,
        "SpotPrice": "0.50", "BlockDurationMinutes": 0, "PrivateIPOnly": false,
        "UsePrivateIP": false, "UseEbsOptimizedInstance": false, "Monitoring": false,
        "SSHPrivateKeyPath": "", "RetryCount": 5, "Endpoint": "", "DisableSSL": false,
        "UserDataFile": "", "MetadataToken": "optional", "MetadataTokenResponseHopLimit": 1,
        "EncryptEbsVolume": false, "KmsKeyId": ""
    }"#,
    )
    .unwrap();
    let config: Ec2Config = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(config.instance_id, "i-0abc");
    assert_eq!(config.security_group_ids(), ["sg-1"]);
    assert!(config.imported_key_pair());
    assert_eq!(serde_json::to_value(&config).unwrap(), json);
    // An older record with the single-value group fields.
    let old: Ec2Config = serde_json::from_value(serde_json::json!({
        "SecurityGroupId": "sg-0", "SecurityGroupName": "docker-machine"
    }))
    .unwrap();
    assert_eq!(old.security_group_ids(), ["sg-0"]);
    assert_eq!(old.security_group_names(), ["docker-machine"]);
}

#[test]
fn states_map_as_docker_machine() {
    for (name, state) in [
        ("pending", State::Starting),
        ("running", State::Running),
        ("stopping", State::Stopping),
        ("shutting-down", State::Stopping),
        ("stopped", State::Stopped),
        ("terminated", State::Error),
        ("strange", State::Error),
    ] {
        assert_eq!(state_of(name), state, "{name}");
    }
}

#[test]
fn inputs_are_checked() {
    assert_eq!(parse_port("8080").unwrap(), (8080, "tcp".into()));
    assert_eq!(parse_port("53/UDP").unwrap(), (53, "udp".into()));
    for bad in ["", "0", "x", "70000", "22/icmp", "22/"] {
        assert!(parse_port(bad).is_err(), "{bad}");
    }
    for good in [
        "us-east-1",
        "eu-central-2",
        "us-gov-west-1",
        "cn-northwest-1",
        "ap-southeast-5",
    ] {
        assert!(valid_region(good), "{good}");
    }
    for bad in [
        "",
        "us-east",
        "US-EAST-1",
        "us-east-1a",
        "us_east_1",
        "--1",
        "us-east-1/x",
    ] {
        assert!(!valid_region(bad), "{bad}");
    }
}

#[test]
fn zones_tags_and_addresses() {
    let mut c = Ec2Config {
        region: "eu-west-1".into(),
        zone: "b".into(),
        tags: "team,ci,cost,".into(),
        ..Default::default()
    };
    c.base.machine_name = "m".into();
    assert_eq!(c.availability_zone(), "eu-west-1b");
    c.zone = "us-east-1f".into();
    assert_eq!(c.availability_zone(), "us-east-1f");
    assert_eq!(
        c.tag_pairs(),
        [
            ("Name".to_string(), "m".to_string()),
            ("team".into(), "ci".into()),
            ("cost".into(), "".into())
        ]
    );
    let i = Instance {
        id: "i-1".into(),
        state: "running".into(),
        public_ip: "198.51.100.4".into(),
        private_ip: "10.0.0.4".into(),
    };
    assert_eq!(c.address_of(&i).unwrap(), "198.51.100.4");
    c.use_private_ip = true;
    assert_eq!(c.address_of(&i).unwrap(), "10.0.0.4");
    c.use_private_ip = false;
    let no_public = Instance {
        public_ip: String::new(),
        ..i
    };
    assert_eq!(
        c.address_of(&no_public).unwrap_err().to_string(),
        "No IP for instance i-1"
    );
}
