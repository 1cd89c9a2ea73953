//! The amazonec2 driver against a real EC2 API peer: moto's server on 127.0.0.1 (through
//! `lab/moto-ec2.py`, which hands out lab-host addresses as instances' public IPs, counts calls
//! and injects faults), checked with boto3 — AWS's own SDK — as an independent reader of moto's
//! state. Provisioning goes over SSH to a real lab host. No address but 127.0.0.1 and lab hosts is
//! ever contacted.
//!
//! One moto server is shared by the tests, one claim each: a test takes its turn (the others
//! wait), and begins on a moto reset to nothing (`/_hoist/reset`), so a failed test cannot leave
//! instances or faults to the next.

use crate::common;
use common::Bounded;

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use common::lab::{self, LabHost, Variant};
use common::{Sandbox, shell_ok, stderr, stdout};

/// moto's EC2 API on a free port of 127.0.0.1; it ends with the test process (its stdin closes).
struct Moto {
    _child: Child,
    _stdin: ChildStdin,
    port: u16,
    python: String,
}

/// The shared moto, for one test at a time.
struct Turn {
    _turn: MutexGuard<'static, ()>,
    moto: &'static Moto,
}

impl std::ops::Deref for Turn {
    type Target = Moto;
    fn deref(&self) -> &Moto {
        self.moto
    }
}

/// Waits for the shared moto (started by the first test that asks), reset to nothing;
/// instances get `public_ips` in turn (none: 127.0.0.1).
fn moto(public_ips: &[&str]) -> Turn {
    static TURN: Mutex<()> = Mutex::new(());
    static MOTO: OnceLock<Moto> = OnceLock::new();
    lab::require();
    // A test that failed holding the turn leaves nothing behind: the reset below.
    let turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    let moto = MOTO.get_or_init(Moto::start);
    moto.control(&format!("/_hoist/reset?ips={}", public_ips.join(",")));
    Turn { _turn: turn, moto }
}

impl Moto {
    fn start() -> Moto {
        let out = lab::lab(&["moto"]);
        assert!(out.status.success(), "lab moto failed: {}", stderr(&out));
        let python = stdout(&out).trim().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab/moto-ec2.py");
        let mut child = Command::new(&python)
            .arg(script)
            .args(["--port", &port.to_string(), "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        common::eventually(Duration::from_secs(60), "moto answers", || {
            TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        Moto {
            _child: child,
            _stdin: stdin,
            port,
            python,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs Python with `ec2` (a boto3 client of this moto) defined; its stdout as JSON.
    fn boto(&self, script: &str) -> serde_json::Value {
        let program = format!(
            "import boto3, json\nec2 = boto3.client('ec2', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{script}",
            self.endpoint()
        );
        let out = Command::new(&self.python)
            .args(["-c", &program])
            .output_bounded();
        assert!(out.status.success(), "boto3: {}\n{script}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
    }

    /// The instances that are not terminated: ID → state.
    fn live_instances(&self) -> HashMap<String, String> {
        let v = self.boto(
            "r = ec2.describe_instances()\nprint(json.dumps({i['InstanceId']: i['State']['Name'] for res in r['Reservations'] for i in res['Instances'] if i['State']['Name'] != 'terminated'}))",
        );
        serde_json::from_value(v).unwrap()
    }

    fn key_pairs(&self) -> Vec<String> {
        let v = self.boto(
            "print(json.dumps(sorted(k['KeyName'] for k in ec2.describe_key_pairs()['KeyPairs'])))",
        );
        serde_json::from_value(v).unwrap()
    }

    fn control(&self, path: &str) -> String {
        let out = Command::new("curl")
            .args(["-sf", "-X", "POST", &format!("{}{path}", self.endpoint())])
            .output_bounded();
        assert!(out.status.success(), "moto control {path} failed");
        stdout(&out)
    }

    /// The EC2 calls made since the last reset, by action.
    fn calls(&self) -> HashMap<String, u64> {
        serde_json::from_str(&self.control("/_hoist/calls")).unwrap()
    }

    /// The credential scopes (`ACCESS_KEY/REGION`) calls were signed with since the last reset.
    fn scopes(&self) -> HashMap<String, u64> {
        serde_json::from_str(&self.control("/_hoist/scopes")).unwrap()
    }

    /// The calls since the last reset, each with its parameters (`{"Action": …, "Force": …}`).
    fn requests(&self) -> Vec<HashMap<String, String>> {
        serde_json::from_str(&self.control("/_hoist/requests")).unwrap()
    }

    fn reset_calls(&self) {
        self.control("/_hoist/calls/reset");
    }

    /// Makes the next `count` calls of `action` fail with `kind` (see lab/moto-ec2.py).
    fn fault(&self, action: &str, kind: &str, count: u32, extra: &str) {
        self.control(&format!(
            "/_hoist/fault?action={action}&kind={kind}&count={count}{extra}"
        ));
    }
}

/// A sandbox whose hoist signs with moto's test keys (`AWS_ACCESS_KEY_ID`…, as the flags' env
/// vars).
fn keyed_sandbox() -> Sandbox {
    let mut sb = Sandbox::new();
    sb.set("AWS_ACCESS_KEY_ID", "testing")
        .set("AWS_SECRET_ACCESS_KEY", "testing");
    sb
}

/// `create -d amazonec2` against `moto`, plus `extra`, for `name` (credentials: the sandbox's).
fn ec2_args(moto: &Moto, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "create",
        "-d",
        "amazonec2",
        "--amazonec2-endpoint",
        &moto.endpoint(),
        "--amazonec2-ami",
        "ami-12c6146b",
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(name.into());
    args
}

fn run(sb: &Sandbox, args: &[String]) -> std::process::Output {
    sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A create of `name` that fails after RunInstances (EC2 refuses the DescribeInstances that
/// follows) with `--keep-on-failure`: what it made stays.
fn kept_failed_create(sb: &Sandbox, moto: &Moto, name: &str, extra: &[&str]) {
    moto.fault("DescribeInstances", "error", 1, "&code=AuthFailure");
    let mut args = ec2_args(moto, name, extra);
    args.insert(1, "--keep-on-failure".into());
    let out = run(sb, &args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("AuthFailure"), "{}", stderr(&out));
}

/// Imports the public half of the SSH key `key` into moto as the key pair `lab`, and makes the
/// instance profile `runner`.
fn lab_key_pair(moto: &Moto, key: &str) {
    let public = std::fs::read_to_string(format!("{key}.pub")).unwrap();
    moto.boto(&format!(
        "ec2.import_key_pair(KeyName='lab', PublicKeyMaterial={:?})
iam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')
iam.create_instance_profile(InstanceProfileName='runner')
print('{{}}')",
        public.trim(),
        moto.endpoint()
    ));
}

/// A new SSH key in the sandbox, for machines that are never logged in to.
fn sandbox_key(sb: &Sandbox) -> String {
    let key = sb.dir.path().join("id_ed25519");
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output_bounded();
    assert!(out.status.success(), "{}", stderr(&out));
    key.to_str().unwrap().to_string()
}

/// The flags of a create through the key pair `lab` and the private key `key`.
fn lab_login(key: &str, user: &str) -> Vec<String> {
    [
        "--amazonec2-keypair-name",
        "lab",
        "--amazonec2-ssh-keypath",
        key,
        "--amazonec2-ssh-user",
        user,
    ]
    .map(String::from)
    .to_vec()
}

/// Every create flag whose effect EC2 shows, with the key pair `lab` and `key`.
fn every_flag(sb: &Sandbox, key: &str) -> Vec<String> {
    let userdata = sb.dir.path().join("userdata");
    std::fs::write(&userdata, "#cloud-config\n").unwrap();
    let mut flags = lab_login(key, "deploy");
    flags.extend(
        [
            "--amazonec2-instance-type",
            "t3.small",
            "--amazonec2-zone",
            "b",
            "--amazonec2-root-size",
            "24",
            "--amazonec2-volume-type",
            "gp3",
            "--amazonec2-tags",
            "team,ci,cost-center,42",
            "--amazonec2-open-port",
            "8080",
            "--amazonec2-open-port",
            "53/udp",
            "--amazonec2-metadata-token",
            "required",
            "--amazonec2-metadata-token-response-hop-limit",
            "2",
            "--amazonec2-volume-encrypted",
            "--amazonec2-kms-key",
            "alias/hoist",
            "--amazonec2-monitoring",
            "--amazonec2-use-ebs-optimized-instance",
            "--amazonec2-iam-instance-profile",
            "runner",
            "--amazonec2-userdata",
            userdata.to_str().unwrap(),
        ]
        .map(String::from),
    );
    flags
}

/// Starts `count` instances in moto (outside hoist); their IDs.
fn run_instances(moto: &Moto, count: usize, key_name: Option<&str>) -> Vec<String> {
    let key = key_name.map_or(String::new(), |k| {
        format!("ec2.create_key_pair(KeyName='{k}')\n")
    });
    let key_arg = key_name.map_or(String::new(), |k| format!(", KeyName='{k}'"));
    let ids = moto.boto(&format!(
        "{key}r = ec2.run_instances(ImageId='ami-12c6146b', MinCount={count}, MaxCount={count}{key_arg})\nprint(json.dumps([i['InstanceId'] for i in r['Instances']]))"
    ));
    serde_json::from_value(ids).unwrap()
}

/// Writes the record docker-machine 0.16.2 writes for an amazonec2 machine `name` on instance
/// `id` (its key pair `name`, its address `ip`).
fn docker_machine_record(sb: &Sandbox, moto: &Moto, name: &str, id: &str, ip: &str) {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dm-store/machines/dev/config.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    record["Name"] = name.into();
    record["DriverName"] = "amazonec2".into();
    let driver = r#"{
        "IPAddress": "ADDRESS", "MachineName": "NAME", "SSHUser": "ubuntu", "SSHPort": 22,
        "SSHKeyPath": "/home/u/.docker/machine/machines/NAME/id_rsa",
        "StorePath": "/home/u/.docker/machine", "SwarmMaster": false, "SwarmHost": "",
        "SwarmDiscovery": "", "Id": "7d1c", "AccessKey": "testing", "SecretKey": "testing",
        "SessionToken": "", "Region": "us-east-1", "AMI": "ami-12c6146b", "SSHKeyID": 0,
        "ExistingKey": false, "KeyName": "NAME", "InstanceId": "INSTANCE", "InstanceType": "t2.micro",
        "PrivateIPAddress": "", "SecurityGroupId": "", "SecurityGroupIds": [],
        "SecurityGroupName": "", "SecurityGroupNames": ["docker-machine"],
        "SecurityGroupReadOnly": false, "OpenPorts": null, "Tags": "", "ReservationId": "",
        "DeviceName": "/dev/sda1", "RootSize": 16, "VolumeType": "gp2", "IamInstanceProfile": "",
        "VpcId": "", "SubnetId": "", "Zone": "a", "RequestSpotInstance": false,
        "SpotPrice": "0.50", "BlockDurationMinutes": 0, "PrivateIPOnly": false,
        "UsePrivateIP": false, "UseEbsOptimizedInstance": false, "Monitoring": false,
        "SSHPrivateKeyPath": "", "RetryCount": 5, "Endpoint": "ENDPOINT",
        "DisableSSL": false, "UserDataFile": ""
    }"#
    .replace("ADDRESS", ip)
    .replace("NAME", name)
    .replace("INSTANCE", id)
    .replace("ENDPOINT", &moto.endpoint());
    record["Driver"] = serde_json::from_str(&driver).unwrap();
    let dir = sb.store_path().join("machines").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), record.to_string()).unwrap();
}

#[test]
#[ignore = "lab: moto's EC2 API and a real lab host (HOIST_LAB=1, lab/test)"]
fn a_create_with_every_flag_runs_containers_over_tls() {
    // `deploy` has passwordless sudo, as `ubuntu` on Ubuntu's AMIs.
    let host = LabHost::start(Variant::Docker, true);
    let moto = moto(&[&host.ip]);
    lab_key_pair(&moto, &host.key_str());
    let sb = keyed_sandbox();
    let flags = every_flag(&sb, &host.key_str());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    common::assert_ok(&run(&sb, &ec2_args(&moto, "m1", &flags)), "hoist");

    // The real docker CLI through `env` reaches the daemon provisioned on the lab host.
    let dir = tempfile::tempdir().unwrap();
    let tar = lab::busybox_tarball(dir.path());
    let ran = shell_ok(
        &sb,
        &format!(
            "eval $(hoist env m1) && docker import {} bb:ec2 >/dev/null && docker run --rm bb:ec2 /bin/busybox echo ran-on-ec2",
            tar.display()
        ),
    );
    assert!(ran.contains("ran-on-ec2"), "{ran}");
    assert_eq!(sb.ok(&["ip", "m1"]).trim(), host.ip);

    // ls asks EC2 once, and the daemon for its version.
    moto.reset_calls();
    let ls = sb.ok(&[
        "ls",
        "--format",
        "{{.Name}} {{.State}} {{.URL}} {{.DockerVersion}}",
    ]);
    assert_eq!(
        ls,
        format!(
            "m1 Running tcp://{}:2376 {}\n",
            host.ip,
            host.docker_version()
        )
    );
    assert_eq!(
        moto.calls(),
        HashMap::from([("DescribeInstances".into(), 1)])
    );
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn every_create_flag_is_what_ec2_launched() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    let key = sandbox_key(&sb);
    lab_key_pair(&moto, &key);
    let flags = every_flag(&sb, &key);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    kept_failed_create(&sb, &moto, "m1", &flags);

    // Every flag's effect, as boto3 reads moto's state.
    let id = sb.ok(&["inspect", "m1", "-f", "{{.Driver.InstanceId}}"]);
    let id = id.trim();
    let state = moto.boto(&format!(
        r#"i = ec2.describe_instances(InstanceIds=['{id}'])['Reservations'][0]['Instances'][0]
tags = {{t['Key']: t['Value'] for t in i.get('Tags', [])}}
vol = i['BlockDeviceMappings'][0]['Ebs']['VolumeId']
v = ec2.describe_volumes(VolumeIds=[vol])['Volumes'][0]
sg = ec2.describe_security_groups(GroupIds=[g['GroupId'] for g in i['NetworkInterfaces'][0]['Groups']])['SecurityGroups'][0]
ports = sorted('%s/%s' % (p['FromPort'], p['IpProtocol']) for p in sg['IpPermissions'])
print(json.dumps({{'tags': tags, 'type': i['InstanceType'], 'zone': i['Placement']['AvailabilityZone'],
  'key': i['KeyName'], 'meta': i['MetadataOptions'], 'encrypted': v['Encrypted'], 'kms': v.get('KmsKeyId'),
  'size': v['Size'], 'voltype': v['VolumeType'], 'group': sg['GroupName'], 'ports': ports,
  'monitoring': i['Monitoring']['State'], 'ebs_optimized': i['EbsOptimized'],
  'profile': i.get('IamInstanceProfile', {{}}).get('Arn', ''),
  'voltags': {{t['Key']: t['Value'] for t in v.get('Tags', [])}}}}))"#
    ));
    assert_eq!(state["tags"]["Name"], "m1");
    assert_eq!(state["tags"]["team"], "ci");
    assert_eq!(state["tags"]["cost-center"], "42");
    assert!(state["tags"]["hoist-client-token"].as_str().unwrap().len() == 32);
    assert_eq!(
        state["voltags"]["Name"], "m1",
        "volumes are tagged at launch"
    );
    assert_eq!(state["type"], "t3.small");
    assert_eq!(state["zone"], "us-east-1b");
    assert_eq!(state["key"], "lab");
    assert_eq!(state["meta"]["HttpTokens"], "required");
    assert_eq!(state["meta"]["HttpPutResponseHopLimit"], 2);
    assert_eq!(state["encrypted"], true);
    assert_eq!(state["kms"], "alias/hoist");
    assert_eq!(state["size"], 24);
    assert_eq!(state["voltype"], "gp3");
    assert_eq!(state["group"], "docker-machine");
    assert_eq!(
        state["ports"],
        serde_json::json!(["22/tcp", "2376/tcp", "53/udp", "8080/tcp"])
    );
    assert_eq!(state["monitoring"], "enabled");
    assert_eq!(state["ebs_optimized"], true);
    assert!(state["profile"].as_str().unwrap().ends_with("/runner"));
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn rm_removes_the_instance_but_never_the_users_key_pair_or_group() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    let key = sandbox_key(&sb);
    lab_key_pair(&moto, &key);
    let flags = lab_login(&key, "root");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    kept_failed_create(&sb, &moto, "m1", &flags);
    let id = sb.ok(&["inspect", "m1", "-f", "{{.Driver.InstanceId}}"]);
    assert!(moto.live_instances().contains_key(id.trim()));
    sb.ok(&["rm", "-y", "m1"]);
    assert!(moto.live_instances().is_empty());
    assert_eq!(moto.key_pairs(), ["lab"]);
    let groups = moto.boto(
        "print(json.dumps(sorted(g['GroupName'] for g in ec2.describe_security_groups()['SecurityGroups'])))",
    );
    assert_eq!(groups, serde_json::json!(["default", "docker-machine"]));
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn ls_follows_an_instances_changed_address() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    let id = run_instances(&moto, 1, None).remove(0);
    // The record's address is not the instance's (127.0.0.1 here), as after a stop and start
    // outside hoist: ls uses the live one and writes it back.
    docker_machine_record(&sb, &moto, "m1", &id, "127.0.0.9");
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}} {{.URL}}"]);
    assert_eq!(ls, "m1 Running tcp://127.0.0.1:2376\n");
    assert_eq!(
        sb.ok(&["inspect", "m1", "-f", "{{.Driver.IPAddress}}"]),
        "127.0.0.1\n"
    );
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn ls_of_200_ec2_machines_is_one_describe_instances() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    // As a GitLab Runner store holds them.
    for (n, id) in run_instances(&moto, 200, None).iter().enumerate() {
        docker_machine_record(&sb, &moto, &format!("fleet{n}"), id, "127.0.0.1");
    }
    moto.reset_calls();
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}}"]);
    assert_eq!(
        ls.lines().filter(|l| l.ends_with(" Running")).count(),
        200,
        "{ls}"
    );
    assert_eq!(
        moto.calls(),
        HashMap::from([("DescribeInstances".into(), 1)])
    );
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn throttling_is_retried_with_backoff_then_given_up_in_one_line() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    let id = run_instances(&moto, 1, None).remove(0);
    docker_machine_record(&sb, &moto, "m1", &id, "127.0.0.1");
    // 5 retries by default.
    moto.fault("DescribeInstances", "throttle", 3, "");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Running");
    assert_eq!(moto.calls()["DescribeInstances"], 4);
    moto.fault("DescribeInstances", "throttle", 6, "");
    let err = sb.fails(&["status", "m1"]);
    assert!(err.contains("RequestLimitExceeded"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
#[ignore = "lab: moto's EC2 API and a real lab host (HOIST_LAB=1, lab/test)"]
fn power_commands_are_ec2_calls_and_states() {
    let host = LabHost::start(Variant::Docker, false);
    let moto = moto(&[&host.ip]);
    lab_key_pair(&moto, &host.key_str());
    let sb = keyed_sandbox();
    let flags = lab_login(&host.key_str(), "root");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    common::assert_ok(&run(&sb, &ec2_args(&moto, "m1", &flags)), "hoist");
    let id = sb.ok(&["inspect", "m1", "-f", "{{.Driver.InstanceId}}"]);
    let id = id.trim();

    // States as docker-machine maps them.
    sb.ok(&["stop", "m1"]);
    assert_eq!(moto.live_instances()[id], "stopped");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Stopped");
    assert!(sb.fails(&["url", "m1"]).contains("not running"));
    sb.ok(&["start", "m1"]);
    assert_eq!(moto.live_instances()[id], "running");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Running");
    // restart is a reboot (the instance stays running), kill a forced stop, stop a clean one.
    let power_calls = |moto: &Moto| -> Vec<(String, String, String)> {
        moto.requests()
            .into_iter()
            .filter(|r| {
                ["RebootInstances", "StopInstances", "StartInstances"]
                    .contains(&r["Action"].as_str())
            })
            .map(|r| {
                let get = |k: &str| r.get(k).cloned().unwrap_or_default();
                (get("Action"), get("InstanceId.1"), get("Force"))
            })
            .collect()
    };
    let call = |action: &str, force: &str| (action.to_string(), id.to_string(), force.to_string());
    moto.reset_calls();
    sb.ok(&["restart", "m1"]);
    assert_eq!(power_calls(&moto), [call("RebootInstances", "")]);
    assert_eq!(moto.live_instances()[id], "running");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Running");
    moto.reset_calls();
    sb.ok(&["kill", "m1"]);
    assert_eq!(power_calls(&moto), [call("StopInstances", "true")]);
    assert_eq!(moto.live_instances()[id], "stopped");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Stopped");
    sb.ok(&["start", "m1"]);
    moto.reset_calls();
    sb.ok(&["stop", "m1"]);
    assert_eq!(power_calls(&moto), [call("StopInstances", "false")]);
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn bad_input_is_one_line_and_makes_nothing() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    let before = sb.snapshot();
    for (extra, says) in [
        (vec!["--amazonec2-tags", "a,b,c"], "key,value pairs"),
        (vec!["--amazonec2-open-port", "99999"], "is not PORT"),
        (vec!["--amazonec2-region", "mars"], "Invalid region"),
        (
            vec!["--amazonec2-metadata-token", "sometimes"],
            "optional or required",
        ),
        (
            vec!["--amazonec2-keypair-name", "k"],
            "requires --amazonec2-ssh-keypath",
        ),
        (
            vec!["--amazonec2-subnet-id", "subnet-nope"],
            "subnet could not be located",
        ),
    ] {
        let out = run(&sb, &ec2_args(&moto, "bad", &extra));
        assert!(!out.status.success(), "{extra:?}");
        let err = stderr(&out);
        assert!(err.contains(says), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert_eq!(sb.snapshot(), before, "{extra:?}");
    }
    let out = sb.run(&[
        "create",
        "-d",
        "amazonec2",
        "--amazonec2-insecure-transport",
        "--amazonec2-access-key",
        "k",
        "--amazonec2-secret-key",
        "s",
        "bad",
    ]);
    assert!(
        stderr(&out).contains("requires --amazonec2-endpoint"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sb.snapshot(), before);
    // Nothing that makes things was asked of EC2.
    let calls = moto.calls();
    for making in [
        "RunInstances",
        "ImportKeyPair",
        "CreateKeyPair",
        "CreateSecurityGroup",
    ] {
        assert!(!calls.contains_key(making), "{calls:?}");
    }
    assert!(moto.live_instances().is_empty());
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn without_credentials_the_error_says_where_they_come_from() {
    let moto = moto(&[]);
    // The instance role is asked — here a metadata service on a closed port of 127.0.0.1 (never
    // 169.254.169.254).
    let mut no_keys = Sandbox::new();
    let closed_imds = format!("http://127.0.0.1:{}", common::closed_port());
    no_keys.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &closed_imds);
    let out = no_keys.run(&[
        "create",
        "-d",
        "amazonec2",
        "--amazonec2-endpoint",
        &moto.endpoint(),
        "bad",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("none from the instance role")
            && err.contains("refused")
            && err.contains("AWS_PROFILE"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    no_keys.set("AWS_EC2_METADATA_DISABLED", "true");
    let err = no_keys.fails(&["create", "-d", "amazonec2", "bad"]);
    assert!(err.contains("requires AWS credentials"), "{err}");
    assert!(no_keys.ok(&["ls", "-q"]).trim().is_empty());
    assert!(moto.calls().is_empty(), "{:?}", moto.calls());
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn an_endpoint_that_refuses_fails_the_create() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    let closed = format!("http://127.0.0.1:{}", common::closed_port());
    let out = run(
        &sb,
        &[
            "create",
            "-d",
            "amazonec2",
            "--amazonec2-endpoint",
            &closed,
            "--amazonec2-access-key",
            "k",
            "--amazonec2-secret-key",
            "s",
            "--amazonec2-retries",
            "1",
            "--amazonec2-vpc-id",
            "vpc-1",
            "x",
        ]
        .map(String::from),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    assert!(sb.ok(&["ls", "-q"]).trim().is_empty());
    assert!(moto.live_instances().is_empty());
}

/// The ports a security group opens (`22/tcp`…).
fn group_ports(moto: &Moto, name: &str) -> serde_json::Value {
    moto.boto(&format!(
        "g = ec2.describe_security_groups(Filters=[{{'Name': 'group-name', 'Values': ['{name}']}}])['SecurityGroups'][0]\nprint(json.dumps(sorted('%s/%s' % (p['FromPort'], p['IpProtocol']) for p in g['IpPermissions'])))"
    ))
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn a_failure_after_run_instances_removes_what_the_create_made() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    // The group the user named is used as it is; docker-machine's gets the SSH and Docker ports.
    moto.boto(
        "vpc = ec2.describe_vpcs(Filters=[{'Name': 'isDefault', 'Values': ['true']}])['Vpcs'][0]['VpcId']\nec2.create_security_group(GroupName='corp', Description='the user', VpcId=vpc)\nprint('{}')",
    );
    moto.fault("DescribeInstances", "error", 1, "&code=AuthFailure");
    let out = run(
        &sb,
        &ec2_args(
            &moto,
            "f1",
            &[
                "--amazonec2-security-group",
                "corp",
                "--amazonec2-security-group",
                "docker-machine",
            ],
        ),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("AuthFailure") && err.contains("removed"),
        "{err}"
    );
    assert_eq!(moto.calls()["RunInstances"], 1);
    assert!(
        moto.live_instances().is_empty(),
        "{:?}",
        moto.live_instances()
    );
    assert!(moto.key_pairs().is_empty());
    assert!(sb.ok(&["ls", "-q"]).trim().is_empty());
    assert_eq!(group_ports(&moto, "corp"), serde_json::json!([]));
    assert_eq!(
        group_ports(&moto, "docker-machine"),
        serde_json::json!(["22/tcp", "2376/tcp"])
    );
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn keep_on_failure_keeps_the_instance_until_rm() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    kept_failed_create(
        &sb,
        &moto,
        "f2",
        &[
            "--amazonec2-security-group",
            "fresh",
            "--amazonec2-security-group-readonly",
        ],
    );
    assert_eq!(
        group_ports(&moto, "fresh"),
        serde_json::json!([]),
        "readonly: no rules"
    );
    assert_eq!(moto.live_instances().len(), 1);
    assert_eq!(moto.key_pairs(), ["f2"]);
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}}"]);
    assert_eq!(ls, "f2 Running\n");
    sb.ok(&["rm", "-y", "f2"]);
    assert!(moto.live_instances().is_empty());
    assert!(moto.key_pairs().is_empty());
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn a_kept_spot_request_is_cancelled_by_rm() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    // The request with its price and its instance are there; rm cancels the request (moto
    // then forgets it) and terminates the instance.
    kept_failed_create(
        &sb,
        &moto,
        "s1",
        &[
            "--amazonec2-request-spot-instance",
            "--amazonec2-spot-price",
            "0.07",
        ],
    );
    let spot_requests = || {
        moto.boto(
            "r = ec2.describe_spot_instance_requests()['SpotInstanceRequests']\nprint(json.dumps([[s['State'], s['SpotPrice'], s.get('InstanceId', '')] for s in r]))",
        )
    };
    let spot = spot_requests();
    assert_eq!(spot[0][1], "0.070000", "{spot}");
    assert!(
        moto.live_instances()
            .contains_key(spot[0][2].as_str().unwrap())
    );
    moto.reset_calls();
    sb.ok(&["rm", "-y", "s1"]);
    assert_eq!(moto.calls()["CancelSpotInstanceRequests"], 1);
    assert_eq!(spot_requests(), serde_json::json!([]));
    assert!(moto.live_instances().is_empty());
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn a_lost_run_instances_answer_is_retried_with_the_same_client_token() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    moto.fault("RunInstances", "lost", 1, "");
    kept_failed_create(&sb, &moto, "t1", &[]);
    assert_eq!(moto.calls()["RunInstances"], 2);
    let tokens: Vec<String> = moto
        .requests()
        .into_iter()
        .filter(|r| r["Action"] == "RunInstances")
        .map(|r| r["ClientToken"].clone())
        .collect();
    assert!(
        tokens[0].len() == 32 && tokens[0] == tokens[1],
        "{tokens:?}"
    );
    assert_eq!(
        moto.live_instances().len(),
        1,
        "a retried RunInstances started a second instance"
    );
    sb.ok(&["rm", "-y", "t1"]);
    assert!(moto.live_instances().is_empty());
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn a_profiles_shared_files_sign_every_call_and_stay_out_of_the_record() {
    let moto = moto(&[]);
    let mut profiled = Sandbox::new();
    let aws = profiled.dir.path().join("home/.aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        "[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = x\n[ci]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = secret-of-ci\n",
    )
    .unwrap();
    std::fs::write(aws.join("config"), "[profile ci]\nregion = eu-west-1\n").unwrap();
    profiled.set("AWS_PROFILE", "ci");
    kept_failed_create(&profiled, &moto, "p1", &[]);
    assert_eq!(
        profiled
            .ok(&[
                "inspect",
                "p1",
                "-f",
                "{{.Driver.Region}} [{{.Driver.AccessKey}}]"
            ])
            .trim(),
        "eu-west-1 []"
    );
    let record =
        std::fs::read_to_string(profiled.store_path().join("machines/p1/config.json")).unwrap();
    assert!(!record.contains("secret-of-ci") && !record.contains("AKIAPROFILE"));
    profiled.ok(&["rm", "-y", "p1"]);
    let scopes = moto.scopes();
    assert_eq!(
        scopes.keys().collect::<Vec<_>>(),
        ["AKIAPROFILE/eu-west-1"],
        "{scopes:?}"
    );
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn a_machine_docker_machine_made_is_listed_stopped_and_removed() {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    // Its instance terminated and the key pair it imported deleted.
    let id = run_instances(&moto, 1, Some("dm-web")).remove(0);
    docker_machine_record(&sb, &moto, "dm-web", &id, "127.0.0.1");
    assert_eq!(
        sb.ok(&["ls", "--format", "{{.Name}} {{.DriverName}} {{.State}}"]),
        "dm-web amazonec2 Running\n"
    );
    sb.ok(&["stop", "dm-web"]);
    assert_eq!(moto.live_instances()[&id], "stopped");
    sb.ok(&["rm", "-y", "dm-web"]);
    assert!(!moto.live_instances().contains_key(&id));
    assert!(moto.key_pairs().is_empty());
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn the_instance_roles_credentials_come_from_the_metadata_service() {
    let moto = moto(&[]);
    // IMDSv2, here moto's own.
    let mut role = Sandbox::new();
    role.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &moto.endpoint());
    kept_failed_create(&role, &moto, "r1", &[]);
    role.ok(&["rm", "-y", "r1"]);
    let scopes = moto.scopes();
    assert_eq!(
        scopes
            .keys()
            .filter(|k| *k != "unsigned")
            .collect::<Vec<_>>(),
        ["test-key/us-east-1"],
        "{scopes:?}"
    );
}

/// hoist SIGKILLed while moto holds its call of `action` (the instance, or spot request, exists
/// once moto answers, and hoist never saw the answer): `ls` says the create was interrupted, and
/// `rm` finds and removes everything.
fn killed_during(action: &str, extra: &[&str]) {
    let moto = moto(&[]);
    let sb = keyed_sandbox();
    moto.fault(action, "slow", 1, "&seconds=4");
    let child = sb.spawn(
        &ec2_args(&moto, "k1", extra)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        false,
    );
    common::eventually(
        Duration::from_secs(30),
        &format!("{action} called"),
        || match moto.calls().get(action).copied().unwrap_or(0) {
            0 => Err("not yet".into()),
            _ => Ok(()),
        },
    );
    common::kill9(child);
    common::eventually(
        Duration::from_secs(30),
        &format!("{action}: moto made the instance"),
        || match moto.live_instances().is_empty() {
            true => Err("no live instance".into()),
            false => Ok(()),
        },
    );
    assert_eq!(moto.live_instances().len(), 1);
    let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}} {{.Error}}"]);
    assert!(ls.contains("k1 Error create was interrupted"), "{ls}");
    sb.ok(&["rm", "-y", "k1"]);
    assert!(moto.live_instances().is_empty());
    assert_eq!(
        moto.boto("print(json.dumps([r['State'] for r in ec2.describe_spot_instance_requests()['SpotInstanceRequests'] if r['State'] != 'cancelled']))"),
        serde_json::json!([])
    );
    assert!(moto.key_pairs().is_empty());
    assert!(sb.ok(&["ls", "-q"]).trim().is_empty());
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn killed_while_run_instances_is_in_flight_rm_removes_everything() {
    killed_during("RunInstances", &[]);
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn killed_while_waiting_for_the_instance_rm_removes_everything() {
    killed_during("DescribeInstances", &[]);
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn killed_while_a_spot_request_is_in_flight_rm_removes_everything() {
    killed_during(
        "RequestSpotInstances",
        &["--amazonec2-request-spot-instance"],
    );
}
