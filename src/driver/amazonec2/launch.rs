//! What a create makes, in docker-machine's order — key pair, security groups, the instance or a
//! spot request — each recorded before or as soon as EC2 makes it, and how `rm` removes it.

use super::*;
use crate::driver::generic::{KEY_COPY, import_key};

/// How long a new instance may take to answer SSH once it runs.
const SSH_BOOT_WAIT: Duration = Duration::from_secs(300);
/// The tag that carries a create's client token (finds an instance whose ID was never recorded).
pub const TOKEN_TAG: &str = "hoist-client-token";

fn random_token() -> Result<String, DriverError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(fail)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Ec2 {
    /// docker-machine's `checkPrereqs`: the key pair (present if named, absent otherwise), the
    /// subnet of the zone, the user data file, the SSH key.
    pub(super) async fn check(&mut self) -> Result<(), DriverError> {
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
        let (key_path, public) = if self.config.ssh_private_key_path.is_empty() {
            crate::fsutil::create_dir_all(&dir, 0o700)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
            let key_path = dir.join(KEY_COPY);
            let comment = format!("hoist-{}", self.config.base.machine_name);
            let public = crate::ssh::make_key(&key_path, &comment).map_err(fail)?;
            (key_path, public)
        } else {
            let key_path = import_key(&self.config.ssh_private_key_path, &dir)?;
            let public =
                std::fs::read_to_string(dir.join(format!("{KEY_COPY}.pub"))).unwrap_or_default();
            (key_path, public)
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
            wanted.sort();
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
        // The request carries the token too: found even if hoist dies before its ID comes back.
        tag_specification(
            &mut params,
            "TagSpecification",
            1,
            "spot-instances-request",
            &self.launch_tags(),
        );
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
                Ok(request) if !request.instance.is_empty() => break request.instance,
                Ok(request)
                    if matches!(request.state.as_str(), "cancelled" | "failed" | "closed") =>
                {
                    return Err(fail(format!("spot request {id} is {}", request.state)));
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
    pub(super) async fn make(&mut self) -> Result<(), DriverError> {
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
        self.record()?;
        self.wait_for_ssh().await
    }

    /// Waits until sshd answers on the new instance (it boots for a while after EC2 says
    /// running; provisioning then expects it up).
    async fn wait_for_ssh(&self) -> Result<(), DriverError> {
        let (ip, port) = (&self.config.base.ip_address, self.config.base.ssh_port);
        self.env.report.info(&format!(
            "Waiting for SSH on {}...",
            crate::netaddr::join_host_port(ip, port)
        ));
        let started = Instant::now();
        while !crate::ssh::answers(ip, port).await {
            if started.elapsed() > SSH_BOOT_WAIT {
                return Err(DriverError::Timeout(format!(
                    "instance {} runs but SSH on {ip}:{port} did not answer within {}s (its security groups must let this machine in)",
                    self.config.instance_id,
                    SSH_BOOT_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Removes what hoist made: the spot request and the instance (by their IDs, or by the token
    /// tag when the create was cut off before an ID came back), the imported key pair.
    pub(super) async fn unmake(&mut self) -> Result<(), DriverError> {
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
        let by_token = format!("tag:{TOKEN_TAG}");
        let token_filter = [(by_token.as_str(), vec![c.client_token.clone()])];
        let mut instances: Vec<String> = Some(c.instance_id.clone())
            .filter(|i| !i.is_empty())
            .into_iter()
            .collect();
        // Each spot request is read (for its instance) before it is cancelled: cancelled, it may
        // be forgotten, and it must be cancelled before the terminate so that it cannot start
        // another instance.
        let mut spot_requests = Vec::new();
        if !c.spot_instance_request_id.is_empty() {
            match client.spot_request(&c.spot_instance_request_id).await {
                Ok(request) if !request.id.is_empty() => spot_requests.push(request),
                Ok(_) => {}
                Err(e) => errors.push(e.to_string()),
            }
        } else if c.request_spot_instance && !c.client_token.is_empty() {
            match client.find_spot_requests(&token_filter).await {
                Ok(found) => spot_requests.extend(found),
                Err(e) => errors.push(e.to_string()),
            }
        }
        for request in &spot_requests {
            if let Err(e) = client.cancel_spot_request(&request.id).await {
                errors.push(e.to_string());
            }
            if !request.instance.is_empty() && !instances.contains(&request.instance) {
                instances.push(request.instance.clone());
            }
        }
        if instances.is_empty() && !c.client_token.is_empty() {
            match client.find_instances(&token_filter).await {
                Ok(found) => instances.extend(
                    found
                        .into_iter()
                        .filter(|i| i.state != "terminated")
                        .map(|i| i.id),
                ),
                Err(e) => errors.push(e.to_string()),
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
}
