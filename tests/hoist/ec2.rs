//! The amazonec2 driver against a real EC2 API peer: moto's server on 127.0.0.1 (through
//! `lab/moto-ec2.py`, which hands out lab-host addresses as instances' public IPs, counts calls
//! and injects faults), checked with boto3 — AWS's own SDK — as an independent reader of moto's
//! state. Provisioning goes over SSH to a real lab host. No address but 127.0.0.1 and lab hosts is
//! ever contacted.

use crate::common;

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{self, LabHost, Variant};
use common::{Sandbox, shell_ok, stderr, stdout};

/// moto's EC2 API on a free port of 127.0.0.1, ended when dropped.
struct Moto {
    child: Child,
    port: u16,
    python: String,
}

impl Moto {
    /// Starts moto; instances get `public_ips` in turn (none: 127.0.0.1).
    fn start(public_ips: &[&str]) -> Moto {
        lab::require();
        let out = lab::lab(&["moto"]);
        assert!(out.status.success(), "lab moto failed: {}", stderr(&out));
        let python = stdout(&out).trim().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab/moto-ec2.py");
        let child = Command::new(&python)
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--public-ips",
                &public_ips.join(","),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            child,
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
            .output()
            .unwrap();
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
            .output()
            .unwrap();
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

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// Imports the lab's SSH key into moto as the key pair `lab` (what the hosts trust), and makes
/// the instance profile `runner`.
fn lab_key_pair(moto: &Moto, host: &LabHost) {
    let public = std::fs::read_to_string(format!("{}.pub", host.key_str())).unwrap();
    moto.boto(&format!(
        "ec2.import_key_pair(KeyName='lab', PublicKeyMaterial={:?})
iam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')
iam.create_instance_profile(InstanceProfileName='runner')
print('{{}}')",
        public.trim(),
        moto.endpoint()
    ));
}

#[test]
#[ignore = "lab: moto's EC2 API and a real lab host (HOIST_LAB=1, lab/test)"]
fn create_to_docker_run_every_flag_visible_lifecycle_ls_and_rm() {
    // `deploy` has passwordless sudo, as `ubuntu` on Ubuntu's AMIs.
    let host = LabHost::start(Variant::Docker, true);
    let moto = Moto::start(&[&host.ip]);
    lab_key_pair(&moto, &host);
    let sb = keyed_sandbox();
    let userdata = sb.dir.path().join("userdata");
    std::fs::write(&userdata, "#cloud-config\n").unwrap();
    let key = host.key_str();
    let out = run(
        &sb,
        &ec2_args(
            &moto,
            "m1",
            &[
                "--amazonec2-keypair-name",
                "lab",
                "--amazonec2-ssh-keypath",
                &key,
                "--amazonec2-ssh-user",
                "deploy",
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
            ],
        ),
    );
    common::assert_ok(&out, "hoist");

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

    // ls asks EC2 once; status once.
    moto.reset_calls();
    let ls = sb.ok(&[
        "ls",
        "--format",
        "{{.Name}} {{.State}} {{.URL}} {{.DockerVersion}}",
    ]);
    assert!(
        ls.starts_with(&format!("m1 Running tcp://{}:2376 v", host.ip)),
        "{ls}"
    );
    assert_eq!(
        moto.calls(),
        HashMap::from([("DescribeInstances".into(), 1)])
    );

    // The address cached in the record follows the instance's (as after a stop and start
    // outside hoist): ls uses the live one and writes it back.
    let config = sb.store_path().join("machines/m1/config.json");
    let stale = std::fs::read_to_string(&config).unwrap().replace(
        &format!("\"IPAddress\": \"{}\"", host.ip),
        "\"IPAddress\": \"127.0.0.9\"",
    );
    assert!(stale.contains("127.0.0.9"));
    std::fs::write(&config, stale).unwrap();
    let ls = sb.ok(&["ls", "--format", "{{.URL}}"]);
    assert_eq!(ls.trim(), format!("tcp://{}:2376", host.ip));
    assert_eq!(
        sb.ok(&["inspect", "m1", "-f", "{{.Driver.IPAddress}}"])
            .trim(),
        host.ip
    );

    // Throttling is retried with backoff (5 retries by default), and gives up after them.
    moto.reset_calls();
    moto.fault("DescribeInstances", "throttle", 3, "");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Running");
    assert_eq!(moto.calls()["DescribeInstances"], 4);
    moto.fault("DescribeInstances", "throttle", 6, "");
    let err = sb.fails(&["status", "m1"]);
    assert!(err.contains("RequestLimitExceeded"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Lifecycle through the API, states as docker-machine maps them.
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
    moto.reset_calls();
    sb.ok(&["restart", "m1"]);
    assert_eq!(
        power_calls(&moto),
        [("RebootInstances".to_string(), id.to_string(), String::new())]
    );
    assert_eq!(moto.live_instances()[id], "running");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Running");
    moto.reset_calls();
    sb.ok(&["kill", "m1"]);
    assert_eq!(
        power_calls(&moto),
        [(
            "StopInstances".to_string(),
            id.to_string(),
            "true".to_string()
        )]
    );
    assert_eq!(moto.live_instances()[id], "stopped");
    assert_eq!(sb.ok(&["status", "m1"]).trim(), "Stopped");
    sb.ok(&["start", "m1"]);
    moto.reset_calls();
    sb.ok(&["stop", "m1"]);
    assert_eq!(
        power_calls(&moto),
        [(
            "StopInstances".to_string(),
            id.to_string(),
            "false".to_string()
        )]
    );
    sb.ok(&["start", "m1"]);

    // 200 machines on EC2 (as a GitLab Runner store holds them): ls is one DescribeInstances.
    let ids = moto.boto(
        "r = ec2.run_instances(ImageId='ami-12c6146b', MinCount=199, MaxCount=199)\nprint(json.dumps([i['InstanceId'] for i in r['Instances']]))",
    );
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sb.store_path().join("machines/m1/config.json")).unwrap(),
    )
    .unwrap();
    for (n, id) in ids.as_array().unwrap().iter().enumerate() {
        let name = format!("fleet{n}");
        let mut r = record.clone();
        r["Name"] = name.clone().into();
        r["Driver"]["MachineName"] = name.clone().into();
        r["Driver"]["InstanceId"] = id.clone();
        let dir = sb.store_path().join("machines").join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r.to_string()).unwrap();
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

    // rm removes the instance, never the user's key pair or the shared group.
    sb.ok(&["rm", "-y", "m1"]);
    assert!(!moto.live_instances().contains_key(id));
    assert_eq!(moto.key_pairs(), ["lab"]);
}

#[test]
#[ignore = "lab: moto's EC2 API (HOIST_LAB=1, lab/test)"]
fn failed_and_killed_creates_leave_nothing_in_ec2() {
    let moto = Moto::start(&[]);
    let sb = keyed_sandbox();
    let before = sb.snapshot();

    // Bad input: one line, non-zero, the store as it was, nothing asked of EC2 that makes things.
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
    // No credentials anywhere: the instance role is asked — here a metadata service on a closed
    // port of 127.0.0.1 (never 169.254.169.254) — and the error says where credentials come from.
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
    assert!(moto.live_instances().is_empty());

    // A failure after RunInstances: the instance is terminated, the imported key pair deleted,
    // the record gone. The group the user named is used as it is; docker-machine's gets the
    // SSH and Docker ports.
    moto.boto(
        "vpc = ec2.describe_vpcs(Filters=[{'Name': 'isDefault', 'Values': ['true']}])['Vpcs'][0]['VpcId']\nec2.create_security_group(GroupName='corp', Description='the user', VpcId=vpc)\nprint('{}')",
    );
    let group_ports = |name: &str| {
        moto.boto(&format!(
            "g = ec2.describe_security_groups(Filters=[{{'Name': 'group-name', 'Values': ['{name}']}}])['SecurityGroups'][0]\nprint(json.dumps(sorted('%s/%s' % (p['FromPort'], p['IpProtocol']) for p in g['IpPermissions'])))"
        ))
    };
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
    assert!(
        moto.live_instances().is_empty(),
        "{:?}",
        moto.live_instances()
    );
    assert!(moto.key_pairs().is_empty());
    assert!(sb.ok(&["ls", "-q"]).trim().is_empty());
    assert_eq!(group_ports("corp"), serde_json::json!([]));
    assert_eq!(
        group_ports("docker-machine"),
        serde_json::json!(["22/tcp", "2376/tcp"])
    );

    // The same with --keep-on-failure: kept and listed as failed, then rm removes it all.
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
        group_ports("fresh"),
        serde_json::json!([]),
        "readonly: no rules"
    );
    assert_eq!(moto.live_instances().len(), 1);
    assert_eq!(moto.key_pairs(), ["f2"]);
    sb.ok(&["rm", "-y", "f2"]);
    assert!(moto.live_instances().is_empty());
    assert!(moto.key_pairs().is_empty());

    // A spot request that fails after it was made, kept: the request with its price and its
    // instance are there; rm cancels the request (moto then forgets it) and terminates the
    // instance.
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

    // A RunInstances whose answer is lost is retried with the same client token: one instance.
    moto.fault("RunInstances", "lost", 1, "");
    kept_failed_create(&sb, &moto, "t1", &[]);
    assert_eq!(moto.calls()["RunInstances"], 2);
    assert_eq!(
        moto.live_instances().len(),
        1,
        "a retried RunInstances started a second instance"
    );
    sb.ok(&["rm", "-y", "t1"]);
    assert!(moto.live_instances().is_empty());

    // Credentials and region from a profile's shared files (AWS_PROFILE): every call signed
    // with them, none of them in the record.
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
    moto.reset_calls();
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

    // A machine docker-machine 0.16.2 made on EC2 (its record as it writes it): listed, stopped
    // and removed by hoist — its instance terminated and the key pair it imported deleted.
    let id = moto.boto(
        "ec2.create_key_pair(KeyName='dm-web')\nr = ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, KeyName='dm-web')\nprint(json.dumps(r['Instances'][0]['InstanceId']))",
    );
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dm-store/machines/dev/config.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    record["Name"] = "dm-web".into();
    record["DriverName"] = "amazonec2".into();
    let driver = r#"{
        "IPAddress": "127.0.0.1", "MachineName": "dm-web", "SSHUser": "ubuntu", "SSHPort": 22,
        "SSHKeyPath": "/home/u/.docker/machine/machines/dm-web/id_rsa",
        "StorePath": "/home/u/.docker/machine", "SwarmMaster": false, "SwarmHost": "",
        "SwarmDiscovery": "", "Id": "7d1c", "AccessKey": "testing", "SecretKey": "testing",
        "SessionToken": "", "Region": "us-east-1", "AMI": "ami-12c6146b", "SSHKeyID": 0,
        "ExistingKey": false, "KeyName": "dm-web", "InstanceId": "INSTANCE", "InstanceType": "t2.micro",
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
        .replace("INSTANCE", id.as_str().unwrap())
        .replace("ENDPOINT", &moto.endpoint());
    record["Driver"] = serde_json::from_str(&driver).unwrap();
    let dir = sb.store_path().join("machines/dm-web");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), record.to_string()).unwrap();
    let id = id.as_str().unwrap();
    assert_eq!(
        sb.ok(&["ls", "--format", "{{.Name}} {{.DriverName}} {{.State}}"])
            .trim(),
        "dm-web amazonec2 Running"
    );
    sb.ok(&["stop", "dm-web"]);
    assert_eq!(moto.live_instances()[id], "stopped");
    sb.ok(&["rm", "-y", "dm-web"]);
    assert!(!moto.live_instances().contains_key(id));
    assert!(!moto.key_pairs().contains(&"dm-web".to_string()));

    // The instance role's credentials from the metadata service (IMDSv2), here moto's own.
    let mut role = Sandbox::new();
    role.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", &moto.endpoint());
    moto.reset_calls();
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

    // hoist SIGKILLed while RunInstances is in flight (the instance exists, its ID never came
    // back), and while it waits for the instance: rm finds and removes everything.
    for (action, name, extra) in [
        ("RunInstances", "k1", &[][..]),
        ("DescribeInstances", "k2", &[][..]),
        (
            "RequestSpotInstances",
            "k3",
            &["--amazonec2-request-spot-instance"][..],
        ),
    ] {
        moto.reset_calls();
        moto.fault(action, "slow", 1, "&seconds=4");
        let child = sb.spawn(
            &ec2_args(&moto, name, extra)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            false,
        );
        let started = Instant::now();
        while moto.calls().get(action).copied().unwrap_or(0) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{action} never called"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Killed while moto holds the call: the instance (or spot request) exists once moto
        // answers, and hoist never saw the answer.
        common::kill9(child);
        let started = Instant::now();
        while moto.live_instances().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{action}: moto never made the instance"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(moto.live_instances().len(), 1, "{action}");
        let ls = sb.ok(&["ls", "--format", "{{.Name}} {{.State}} {{.Error}}"]);
        assert!(
            ls.contains(&format!("{name} Error create was interrupted")),
            "{ls}"
        );
        sb.ok(&["rm", "-y", name]);
        assert!(moto.live_instances().is_empty(), "{action}");
        assert_eq!(
            moto.boto("print(json.dumps([r['State'] for r in ec2.describe_spot_instance_requests()['SpotInstanceRequests'] if r['State'] != 'cancelled']))"),
            serde_json::json!([]),
            "{action}"
        );
        assert!(moto.key_pairs().is_empty(), "{action}");
    }
    assert!(sb.ok(&["ls", "-q"]).trim().is_empty());
}
