//! The EC2 Query API: form-encoded POSTs signed with SigV4 by `aws-sigv4`, XML answers read
//! with `roxmltree`, throttling and transient failures retried with jittered exponential backoff.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use super::credentials::{Credentials, Source};
use crate::web::{self, WebUrl};

/// The EC2 API version hoist speaks.
pub const API_VERSION: &str = "2016-11-15";
/// How long one call may take (connecting and the answer).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The first backoff; each retry doubles it (with jitter), up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// What an API call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// EC2 answered with an error code.
    #[error("{action}: {code}: {message}")]
    Aws {
        action: String,
        code: String,
        message: String,
        status: u16,
    },
    /// No answer (connection, timeout).
    #[error("{action}: {reason}")]
    Transport { action: String, reason: String },
    /// No credentials to sign with.
    #[error("{0}")]
    Credentials(String),
    /// An answer hoist cannot read.
    #[error("{action}: unreadable answer from EC2 ({reason})")]
    Response { action: String, reason: String },
}

impl ApiError {
    /// The EC2 error code, if EC2 gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Aws { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (throttling, EC2's own failures, no answer).
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Aws { code, status, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "RequestLimitExceeded"
                            | "Throttling"
                            | "ThrottlingException"
                            | "RequestThrottled"
                            | "EC2ThrottledException"
                            | "InternalError"
                            | "InternalFailure"
                            | "ServiceUnavailable"
                            | "Unavailable"
                    )
            }
            ApiError::Transport { .. } => true,
            ApiError::Credentials(_) | ApiError::Response { .. } => false,
        }
    }
}

/// A call's parameters, in order (`Name=value`, lists as `Name.1`, `Name.2`, …).
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Adds one parameter.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Params {
        self.0.push((name.into(), value.into()));
        self
    }

    /// Adds a list: `prefix.1`, `prefix.2`, …
    pub fn list<S: AsRef<str>>(&mut self, prefix: &str, values: &[S]) -> &mut Params {
        for (i, v) in values.iter().enumerate() {
            self.set(format!("{prefix}.{}", i + 1), v.as_ref());
        }
        self
    }

    /// Adds filters: `Filter.N.Name` and its `Filter.N.Value.M`.
    pub fn filters(&mut self, filters: &[(&str, Vec<String>)]) -> &mut Params {
        for (i, (name, values)) in filters.iter().enumerate() {
            let n = i + 1;
            self.set(format!("Filter.{n}.Name"), *name);
            self.list(&format!("Filter.{n}.Value"), values);
        }
        self
    }

    /// The form body of a call.
    fn body(&self, action: &str) -> String {
        let mut body = format!("Action={action}&Version={API_VERSION}");
        for (k, v) in &self.0 {
            body.push('&');
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        }
        body
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters, as AWS's query encoding wants.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An EC2 endpoint in one region with one set of credentials.
#[derive(Debug, Clone)]
pub struct Client {
    pub url: WebUrl,
    pub region: String,
    pub credentials: Source,
    /// How many times a transient failure is retried (0: never).
    pub retries: u32,
}

/// The endpoint URL of a region, or the one given (`--amazonec2-endpoint`: a host name alone
/// or a full URL; a host alone is https unless `insecure`).
pub fn endpoint_url(region: &str, endpoint: &str, insecure: bool) -> Result<WebUrl, String> {
    let text = if endpoint.is_empty() {
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://ec2.{region}.{suffix}/")
    } else if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        let scheme = if insecure { "http" } else { "https" };
        format!("{scheme}://{endpoint}")
    };
    WebUrl::parse(&text).map_err(|e| format!("endpoint {text:?}: {e}"))
}

impl Client {
    /// Calls `action`; the answer's XML text. Transient failures are retried with backoff.
    pub async fn call(&self, action: &str, params: &Params) -> Result<String, ApiError> {
        let mut attempt = 0;
        loop {
            match self.call_once(action, params).await {
                Err(e) if e.is_transient() && attempt < self.retries => {
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn call_once(&self, action: &str, params: &Params) -> Result<String, ApiError> {
        let transport = |reason: String| ApiError::Transport {
            action: action.to_string(),
            reason,
        };
        let body = params.body(action);
        let credentials = self
            .credentials
            .credentials()
            .await
            .map_err(ApiError::Credentials)?;
        let request = self.signed(&body, &credentials).map_err(transport)?;
        let response = web::send(&self.url, request, CALL_TIMEOUT)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = tokio::time::timeout(CALL_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| transport("the answer did not arrive in time".into()))?
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(parse_error(action, status, &text))
    }

    /// The POST of `body`, signed (SigV4, service `ec2`).
    fn signed(
        &self,
        body: &str,
        credentials: &Credentials,
    ) -> Result<hyper::Request<Full<Bytes>>, String> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        use aws_sigv4::sign::v4;
        let identity = aws_credential_types::Credentials::new(
            &credentials.access_key,
            &credentials.secret_key,
            credentials.session_token.clone(),
            None,
            "hoist",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut request = hyper::Request::post(self.url.path.as_str())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(hyper::header::USER_AGENT, web::USER_AGENT)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let url = self.url.text();
        let headers = [
            ("host", self.url.authority.as_str()),
            ("content-type", content_type),
        ];
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }
}

/// The wait before retry `attempt` (0-based): half of the doubled backoff fixed, half random.
pub fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_BACKOFF);
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    let fraction = f64::from(u32::from_le_bytes(random)) / f64::from(u32::MAX);
    full / 2 + full.mul_f64(fraction / 2.0)
}

/// EC2's error answer (`<Response><Errors><Error><Code>…`), or the status when it has none.
fn parse_error(action: &str, status: u16, text: &str) -> ApiError {
    let doc = roxmltree::Document::parse(text).ok();
    let error = doc
        .as_ref()
        .and_then(|d| d.descendants().find(|n| n.tag_name().name() == "Error"));
    let field = |name: &str| error.and_then(|e| child_text(e, name)).unwrap_or_default();
    let code = field("Code");
    ApiError::Aws {
        action: action.to_string(),
        code: if code.is_empty() {
            format!("HTTP {status}")
        } else {
            code
        },
        message: {
            let message = field("Message");
            if message.is_empty() {
                text.chars().take(200).collect()
            } else {
                message
            }
        },
        status,
    }
}

/// The text of the first child element `name` of `node`.
pub fn child_text(node: roxmltree::Node, name: &str) -> Option<String> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .map(|c| c.text().unwrap_or("").to_string())
}

/// The element `name` under `node` (a direct child).
pub fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The `<item>` elements of the set `name` under `node`.
pub fn items<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    child(node, name)
        .into_iter()
        .flat_map(|set| set.children())
        .filter(|c| c.is_element() && c.tag_name().name() == "item")
}

/// Parses an answer; an unreadable one is [`ApiError::Response`].
pub fn parse<'i>(action: &str, text: &'i str) -> Result<roxmltree::Document<'i>, ApiError> {
    roxmltree::Document::parse(text).map_err(|e| ApiError::Response {
        action: action.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_encode_lists_and_filters() {
        let mut p = Params::default();
        p.list("InstanceId", &["i-1", "i-2"])
            .filters(&[("tag:Name", vec!["a b".into()])])
            .set("UserData", "x+y/=");
        assert_eq!(
            p.body("DescribeInstances"),
            "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2&Filter.1.Name=tag%3AName&Filter.1.Value.1=a%20b&UserData=x%2By%2F%3D"
        );
    }

    #[test]
    fn errors_are_read_and_classified() {
        let text = "<?xml version=\"1.0\"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>";
        let e = parse_error("DescribeInstances", 503, text);
        assert_eq!(e.code(), Some("RequestLimitExceeded"));
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "DescribeInstances: RequestLimitExceeded: Request limit exceeded."
        );
        let e = parse_error(
            "RunInstances",
            400,
            "<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>no</Message></Error></Errors></Response>",
        );
        assert!(!e.is_transient());
        let e = parse_error("RunInstances", 502, "bad gateway");
        assert_eq!(e.code(), Some("HTTP 502"));
        assert!(e.is_transient());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_bounded() {
        for attempt in 0..20 {
            let full = FIRST_BACKOFF
                .saturating_mul(1 << attempt.min(16))
                .min(MAX_BACKOFF);
            let b = backoff(attempt);
            assert!(b >= full / 2 && b <= full, "{attempt}: {b:?}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint_url("eu-west-1", "", false).unwrap().text(),
            "https://ec2.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            endpoint_url("cn-north-1", "", false).unwrap().host,
            "ec2.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            endpoint_url("x", "127.0.0.1:5000", true).unwrap().text(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            endpoint_url("x", "http://127.0.0.1:5000", false)
                .unwrap()
                .port,
            5000
        );
        assert!(endpoint_url("x", "ftp://h", false).is_err());
    }
}
