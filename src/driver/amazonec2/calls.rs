//! The EC2 actions the driver uses, typed: each builds its parameters and reads its answer.

use std::collections::HashSet;

use super::api::{ApiError, Client, Params, child, child_text, items, parse};

/// How many instance IDs one `DescribeInstances` asks about (EC2 takes 200 values per filter).
const DESCRIBE_CHUNK: usize = 200;

/// What hoist needs to know of an instance.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    pub id: String,
    /// EC2's state name (`pending`, `running`, …).
    pub state: String,
    pub public_ip: String,
    pub private_ip: String,
}

fn read_instance(node: roxmltree::Node) -> Instance {
    let text = |name: &str| child_text(node, name).unwrap_or_default();
    Instance {
        id: text("instanceId"),
        state: child(node, "instanceState")
            .and_then(|s| child_text(s, "name"))
            .unwrap_or_default(),
        public_ip: text("ipAddress"),
        private_ip: text("privateIpAddress"),
    }
}

fn instances_of(doc: &roxmltree::Document) -> Vec<Instance> {
    let root = doc.root_element();
    items(root, "reservationSet")
        .flat_map(|r| items(r, "instancesSet"))
        .map(read_instance)
        .collect()
}

impl Client {
    /// The instances with these IDs that EC2 knows (all pages; [`DESCRIBE_CHUNK`] IDs per call).
    /// They are a filter, not a list: an unknown ID is left out instead of failing the call.
    pub async fn describe_instances(&self, ids: &[String]) -> Result<Vec<Instance>, ApiError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(DESCRIBE_CHUNK) {
            found.extend(
                self.find_instances(&[("instance-id", chunk.to_vec())])
                    .await?,
            );
        }
        Ok(found)
    }

    /// The instances matching `filters` (all pages).
    pub async fn find_instances(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<Instance>, ApiError> {
        let mut params = Params::default();
        params.filters(filters);
        self.describe_pages(params).await
    }

    async fn describe_pages(&self, params: Params) -> Result<Vec<Instance>, ApiError> {
        const ACTION: &str = "DescribeInstances";
        let mut found = Vec::new();
        let mut token = String::new();
        loop {
            let mut page = params.clone();
            if !token.is_empty() {
                page.set("NextToken", &token);
            }
            let text = self.call(ACTION, &page).await?;
            let doc = parse(ACTION, &text)?;
            found.extend(instances_of(&doc));
            token = child_text(doc.root_element(), "nextToken").unwrap_or_default();
            if token.is_empty() {
                return Ok(found);
            }
        }
    }

    /// The account's default VPC in this region, if it has one.
    pub async fn default_vpc(&self) -> Result<Option<String>, ApiError> {
        const ACTION: &str = "DescribeAccountAttributes";
        let mut params = Params::default();
        params.set("AttributeName.1", "default-vpc");
        let text = self.call(ACTION, &params).await?;
        let doc = parse(ACTION, &text)?;
        let value = items(doc.root_element(), "accountAttributeSet")
            .filter(|a| child_text(*a, "attributeName").as_deref() == Some("default-vpc"))
            .flat_map(|a| items(a, "attributeValueSet"))
            .find_map(|v| child_text(v, "attributeValue"));
        if let Some(vpc) = value.filter(|v| !v.is_empty() && v != "none") {
            return Ok(Some(vpc));
        }
        // Some accounts (and EC2 look-alikes) leave the attribute at "none" but do have a VPC
        // marked as the default.
        const VPCS: &str = "DescribeVpcs";
        let mut params = Params::default();
        params.filters(&[("isDefault", vec!["true".into()])]);
        let text = self.call(VPCS, &params).await?;
        let doc = parse(VPCS, &text)?;
        Ok(items(doc.root_element(), "vpcSet")
            .find_map(|v| child_text(v, "vpcId"))
            .filter(|v| !v.is_empty()))
    }

    /// The subnets matching `filters`.
    pub async fn describe_subnets(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<Subnet>, ApiError> {
        const ACTION: &str = "DescribeSubnets";
        let mut params = Params::default();
        params.filters(filters);
        let text = self.call(ACTION, &params).await?;
        let doc = parse(ACTION, &text)?;
        Ok(items(doc.root_element(), "subnetSet")
            .map(|s| {
                let text = |name: &str| child_text(s, name).unwrap_or_default();
                Subnet {
                    id: text("subnetId"),
                    vpc_id: text("vpcId"),
                    default_for_az: text("defaultForAz") == "true",
                }
            })
            .collect())
    }

    /// Whether a key pair of this name exists.
    pub async fn key_pair_exists(&self, name: &str) -> Result<bool, ApiError> {
        let mut params = Params::default();
        params.set("KeyName.1", name);
        match self.call("DescribeKeyPairs", &params).await {
            Ok(text) => {
                let doc = parse("DescribeKeyPairs", &text)?;
                Ok(items(doc.root_element(), "keySet").next().is_some())
            }
            Err(e) if e.code() == Some("InvalidKeyPair.NotFound") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Imports a public key (an OpenSSH line) as the key pair `name`, tagged.
    pub async fn import_key_pair(
        &self,
        name: &str,
        public_key: &str,
        tags: &[(String, String)],
    ) -> Result<(), ApiError> {
        use base64::Engine;
        let mut params = Params::default();
        params.set("KeyName", name).set(
            "PublicKeyMaterial",
            base64::engine::general_purpose::STANDARD.encode(public_key.trim()),
        );
        tag_specification(&mut params, "TagSpecification", 1, "key-pair", tags);
        self.call("ImportKeyPair", &params).await.map(drop)
    }

    /// Deletes the key pair `name` (one that is already gone is no error).
    pub async fn delete_key_pair(&self, name: &str) -> Result<(), ApiError> {
        let mut params = Params::default();
        params.set("KeyName", name);
        match self.call("DeleteKeyPair", &params).await {
            Err(e) if e.code() == Some("InvalidKeyPair.NotFound") => Ok(()),
            other => other.map(drop),
        }
    }

    /// The security groups matching `filters`, with the `PORT/PROTOCOL`s they open.
    pub async fn describe_security_groups(
        &self,
        filters: &[(&str, Vec<String>)],
        ids: &[String],
    ) -> Result<Vec<SecurityGroup>, ApiError> {
        const ACTION: &str = "DescribeSecurityGroups";
        let mut params = Params::default();
        params.filters(filters).list("GroupId", ids);
        let text = self.call(ACTION, &params).await?;
        let doc = parse(ACTION, &text)?;
        Ok(items(doc.root_element(), "securityGroupInfo")
            .map(|g| SecurityGroup {
                id: child_text(g, "groupId").unwrap_or_default(),
                name: child_text(g, "groupName").unwrap_or_default(),
                open: items(g, "ipPermissions")
                    .filter_map(|p| {
                        let from = child_text(p, "fromPort")?;
                        let protocol = child_text(p, "ipProtocol")?;
                        Some(format!("{from}/{protocol}"))
                    })
                    .collect(),
            })
            .collect())
    }

    /// Creates a security group; its ID.
    pub async fn create_security_group(
        &self,
        name: &str,
        description: &str,
        vpc_id: &str,
    ) -> Result<String, ApiError> {
        const ACTION: &str = "CreateSecurityGroup";
        let mut params = Params::default();
        params
            .set("GroupName", name)
            .set("GroupDescription", description);
        if !vpc_id.is_empty() {
            params.set("VpcId", vpc_id);
        }
        let text = self.call(ACTION, &params).await?;
        let doc = parse(ACTION, &text)?;
        Ok(child_text(doc.root_element(), "groupId").unwrap_or_default())
    }

    /// Opens `PORT/PROTOCOL`s of a group to every address.
    pub async fn authorize_ingress(
        &self,
        group_id: &str,
        ports: &[(u16, String)],
    ) -> Result<(), ApiError> {
        let mut params = Params::default();
        params.set("GroupId", group_id);
        for (i, (port, protocol)) in ports.iter().enumerate() {
            let p = format!("IpPermissions.{}", i + 1);
            params
                .set(format!("{p}.IpProtocol"), protocol)
                .set(format!("{p}.FromPort"), port.to_string())
                .set(format!("{p}.ToPort"), port.to_string())
                .set(format!("{p}.IpRanges.1.CidrIp"), "0.0.0.0/0");
        }
        self.call("AuthorizeSecurityGroupIngress", &params)
            .await
            .map(drop)
    }

    /// RunInstances with `params`; the reservation ID and the instance.
    pub async fn run_instance(&self, params: &Params) -> Result<(String, Instance), ApiError> {
        const ACTION: &str = "RunInstances";
        let text = self.call(ACTION, params).await?;
        let doc = parse(ACTION, &text)?;
        let root = doc.root_element();
        let instance = items(root, "instancesSet")
            .map(read_instance)
            .next()
            .filter(|i| !i.id.is_empty())
            .ok_or_else(|| ApiError::Response {
                action: ACTION.into(),
                reason: "no instance in the answer".into(),
            })?;
        Ok((
            child_text(root, "reservationId").unwrap_or_default(),
            instance,
        ))
    }

    /// RequestSpotInstances with `params`; the request's ID.
    pub async fn request_spot_instance(&self, params: &Params) -> Result<String, ApiError> {
        const ACTION: &str = "RequestSpotInstances";
        let text = self.call(ACTION, params).await?;
        let doc = parse(ACTION, &text)?;
        items(doc.root_element(), "spotInstanceRequestSet")
            .find_map(|r| child_text(r, "spotInstanceRequestId"))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ApiError::Response {
                action: ACTION.into(),
                reason: "no spot request in the answer".into(),
            })
    }

    /// A spot request's state and its instance, once it has one.
    pub async fn spot_request(&self, id: &str) -> Result<SpotRequest, ApiError> {
        let mut params = Params::default();
        params.set("SpotInstanceRequestId.1", id);
        let found = self.spot_requests(params).await?;
        Ok(found.into_iter().next().unwrap_or_default())
    }

    /// The spot requests matching `filters`.
    pub async fn find_spot_requests(
        &self,
        filters: &[(&str, Vec<String>)],
    ) -> Result<Vec<SpotRequest>, ApiError> {
        let mut params = Params::default();
        params.filters(filters);
        self.spot_requests(params).await
    }

    async fn spot_requests(&self, params: Params) -> Result<Vec<SpotRequest>, ApiError> {
        const ACTION: &str = "DescribeSpotInstanceRequests";
        let text = self.call(ACTION, &params).await?;
        let doc = parse(ACTION, &text)?;
        Ok(items(doc.root_element(), "spotInstanceRequestSet")
            .map(|r| {
                let field = |name: &str| child_text(r, name).unwrap_or_default();
                SpotRequest {
                    id: field("spotInstanceRequestId"),
                    state: field("state"),
                    instance: field("instanceId"),
                }
            })
            .collect())
    }

    /// Cancels a spot request (one already gone is no error).
    pub async fn cancel_spot_request(&self, id: &str) -> Result<(), ApiError> {
        let mut params = Params::default();
        params.set("SpotInstanceRequestId.1", id);
        match self.call("CancelSpotInstanceRequests", &params).await {
            Err(e) if e.code() == Some("InvalidSpotInstanceRequestID.NotFound") => Ok(()),
            other => other.map(drop),
        }
    }

    /// One of the instance actions (`StartInstances`, `StopInstances`, `RebootInstances`,
    /// `TerminateInstances`) on one instance, with `extra` parameters.
    pub async fn instance_action(
        &self,
        action: &str,
        id: &str,
        extra: &[(&str, &str)],
    ) -> Result<(), ApiError> {
        let mut params = Params::default();
        params.set("InstanceId.1", id);
        for (k, v) in extra {
            params.set(*k, *v);
        }
        self.call(action, &params).await.map(drop)
    }

    /// Tags resources.
    pub async fn create_tags(
        &self,
        resources: &[String],
        tags: &[(String, String)],
    ) -> Result<(), ApiError> {
        let mut params = Params::default();
        params.list("ResourceId", resources);
        for (i, (k, v)) in tags.iter().enumerate() {
            params
                .set(format!("Tag.{}.Key", i + 1), k)
                .set(format!("Tag.{}.Value", i + 1), v);
        }
        self.call("CreateTags", &params).await.map(drop)
    }
}

/// A spot request: its ID, state and instance (once fulfilled).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpotRequest {
    pub id: String,
    pub state: String,
    pub instance: String,
}

/// A subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub default_for_az: bool,
}

/// A security group and the `PORT/PROTOCOL`s it opens.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub open: HashSet<String>,
}

/// Adds `PREFIX.N.ResourceType` and its tags (none: nothing).
pub fn tag_specification(
    params: &mut Params,
    prefix: &str,
    n: usize,
    resource_type: &str,
    tags: &[(String, String)],
) {
    if tags.is_empty() {
        return;
    }
    let p = format!("{prefix}.{n}");
    params.set(format!("{p}.ResourceType"), resource_type);
    for (i, (k, v)) in tags.iter().enumerate() {
        params
            .set(format!("{p}.Tag.{}.Key", i + 1), k)
            .set(format!("{p}.Tag.{}.Value", i + 1), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_read_from_every_reservation() {
        let text = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
          <requestId>r</requestId>
          <reservationSet>
            <item><reservationId>r-1</reservationId><instancesSet>
              <item><instanceId>i-1</instanceId><instanceState><code>16</code><name>running</name></instanceState>
                <privateIpAddress>10.0.0.5</privateIpAddress><ipAddress>172.30.0.9</ipAddress>
                <networkInterfaceSet><item><privateIpAddress>10.0.0.5</privateIpAddress></item></networkInterfaceSet></item>
            </instancesSet></item>
            <item><reservationId>r-2</reservationId><instancesSet>
              <item><instanceId>i-2</instanceId><instanceState><code>80</code><name>stopped</name></instanceState></item>
            </instancesSet></item>
          </reservationSet></DescribeInstancesResponse>"#;
        let doc = roxmltree::Document::parse(text).unwrap();
        let found = instances_of(&doc);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0],
            Instance {
                id: "i-1".into(),
                state: "running".into(),
                public_ip: "172.30.0.9".into(),
                private_ip: "10.0.0.5".into()
            }
        );
        assert_eq!(
            (found[1].state.as_str(), found[1].public_ip.as_str()),
            ("stopped", "")
        );
    }

    #[test]
    fn tag_specifications_number_their_tags() {
        let mut p = Params::default();
        let tags = vec![
            ("Name".to_string(), "m".to_string()),
            ("a".into(), "b".into()),
        ];
        tag_specification(&mut p, "TagSpecification", 2, "volume", &tags);
        tag_specification(&mut p, "TagSpecification", 3, "instance", &[]);
        let names: Vec<_> = p.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            names,
            [
                "TagSpecification.2.ResourceType=volume",
                "TagSpecification.2.Tag.1.Key=Name",
                "TagSpecification.2.Tag.1.Value=m",
                "TagSpecification.2.Tag.2.Key=a",
                "TagSpecification.2.Tag.2.Value=b"
            ]
        );
    }
}
