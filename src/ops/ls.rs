//! `ls` and `active`: every machine's state, URL and Docker version, queried concurrently with a
//! bound and a per-host timeout, then filtered, sorted and printed through a Go template.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gotmpl::Value;
use regex::Regex;
use tokio::sync::Semaphore;

use crate::context::Context;
use crate::driver::{self, Driver, DriverError, State};
use crate::engine::{ClientCache, ClientOrError};
use crate::error::{Error, Result};
use crate::format::{natsort, tabwriter::TabWriter, template};
use crate::report::{DebugOnly, Reporter};

use super::{classic_swarm, swarm};
use crate::store::config::{Host, Lifecycle, SwarmOptions};

/// docker-machine's default `ls` format.
pub const DEFAULT_FORMAT: &str = "table {{ .Name }}\t{{ .Active }}\t{{ .DriverName}}\t{{ .State }}\t{{ .URL }}\t{{ .Swarm }}\t{{ .DockerVersion }}\t{{ .Error}}";

/// How many hosts are queried at once (each query holds one socket).
pub const MAX_CONCURRENT_QUERIES: usize = 512;
/// How many plugin processes run at once (one per machine of a plugin driver, as docker-machine).
pub const MAX_CONCURRENT_PLUGINS: usize = 16;

/// `ls` filters: values of one key are OR-ed, different keys AND-ed.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub swarm: Vec<String>,
    pub driver: Vec<String>,
    pub state: Vec<String>,
    pub name: Vec<Regex>,
    pub label: Vec<(String, Option<String>)>,
}

impl Filters {
    /// Parses `--filter key=value` arguments.
    pub fn parse(args: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for arg in args {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| Error::Usage("Unsupported filter syntax.".into()))?;
            let value = value.to_string();
            match key.to_lowercase().as_str() {
                "swarm" => f.swarm.push(value),
                "driver" => f.driver.push(value),
                "state" => f.state.push(value),
                "name" => f
                    .name
                    .push(Regex::new(&value).map_err(|e| {
                        Error::Usage(format!("invalid name filter {value:?}: {e}"))
                    })?),
                "label" => {
                    let (k, v) = match value.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (value, None),
                    };
                    f.label.push((k, v));
                }
                _ => return Err(Error::Usage(format!("Unsupported filter key '{key}'"))),
            }
        }
        Ok(f)
    }

    /// Whether matching needs the live state of each machine.
    pub fn needs_state(&self) -> bool {
        !self.state.is_empty()
    }

    fn matches_static(&self, host: &Host, masters: &HashMap<String, String>) -> bool {
        let any = |list: &[String], f: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|v| f(v))
        };
        // A classic swarm is named by its master, a Swarm-mode one by its first manager.
        let swarm_name = masters
            .get(&host.host_options.swarm_options.discovery)
            .map(String::as_str)
            .or(host.swarm_cluster());
        any(&self.driver, &|v| v.eq_ignore_ascii_case(&host.driver_name))
            && any(&self.swarm, &|v| {
                swarm_name.is_some_and(|m| m.eq_ignore_ascii_case(v))
            })
            && self.matches_name(&host.name)
            && (self.label.is_empty()
                || self.label.iter().any(|(k, v)| {
                    host.host_options
                        .engine_options
                        .labels
                        .iter()
                        .flatten()
                        .any(|label| {
                            let (lk, lv) = label.split_once('=').unwrap_or((label, ""));
                            lk == k && v.as_ref().is_none_or(|v| v.eq_ignore_ascii_case(lv))
                        })
                }))
    }

    fn matches_name(&self, name: &str) -> bool {
        self.name.is_empty() || self.name.iter().any(|r| r.is_match(name))
    }

    fn matches_state(&self, state: State) -> bool {
        self.state.is_empty()
            || self
                .state
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&state.to_string()))
    }

    fn only_names(&self) -> bool {
        self.swarm.is_empty()
            && self.driver.is_empty()
            && self.state.is_empty()
            && self.label.is_empty()
    }
}

/// One row of `ls` (docker-machine's `HostListItem`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListItem {
    pub name: String,
    pub active_host: bool,
    pub active_swarm: bool,
    pub driver_name: String,
    pub state: State,
    pub url: String,
    pub swarm: String,
    pub docker_version: String,
    pub error: String,
    pub response_time: Duration,
    pub swarm_options: Option<SwarmOptions>,
    pub host: Option<Arc<Host>>,
}

impl ListItem {
    /// `*`, `* (swarm)` or `-`.
    pub fn active(&self) -> &'static str {
        if self.active_swarm {
            "* (swarm)"
        } else if self.active_host {
            "*"
        } else {
            "-"
        }
    }

    fn timed_out(name: &str, driver: &str, timeout: Duration) -> ListItem {
        ListItem {
            name: name.into(),
            active_host: false,
            active_swarm: false,
            driver_name: driver.into(),
            state: State::Timeout,
            url: String::new(),
            swarm: String::new(),
            docker_version: String::new(),
            error: String::new(),
            response_time: timeout,
            swarm_options: None,
            host: None,
        }
    }

    fn broken(name: &str, driver: &str, error: String) -> ListItem {
        ListItem {
            error: error.replace('\n', ""),
            state: State::Error,
            ..ListItem::timed_out(name, driver, Duration::ZERO)
        }
    }
}

/// `ls` options.
#[derive(Debug, Clone)]
pub struct LsOptions {
    pub quiet: bool,
    pub filters: Vec<String>,
    pub timeout: Duration,
    pub format: Option<String>,
    /// Days before a certificate's end from which its machine's row warns (`--cert-warn-days`).
    pub cert_warn_days: i64,
}

/// Lists the machines and renders the output of `ls`.
pub async fn ls(ctx: &Context, opts: &LsOptions) -> Result<String> {
    let filters = Filters::parse(&opts.filters)?;
    let (fmt, table) = parse_format(opts.format.as_deref().unwrap_or(""));
    let template = template::parse(&format!("{fmt}\n"), template::MissingField::Error)?;
    let store = &ctx.store;

    if opts.quiet && !filters.needs_state() {
        let mut out = String::new();
        if filters.only_names() {
            // Names alone: no record is read.
            for name in store
                .list()?
                .into_iter()
                .filter(|n| filters.matches_name(n))
            {
                out.push_str(&name);
                out.push('\n');
            }
            return Ok(out);
        }
        let loaded = store.load_all()?;
        let masters = classic_swarm::swarm_masters(&loaded);
        for (name, host) in &loaded {
            if host
                .as_ref()
                .is_ok_and(|h| filters.matches_static(h, &masters))
            {
                out.push_str(name);
                out.push('\n');
            }
        }
        return Ok(out);
    }

    let mut items = query_all(ctx, &filters, opts.timeout).await?;
    add_expiry_warnings(&mut items, opts.cert_warn_days);
    if opts.quiet {
        let mut items = items;
        items.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(items.iter().map(|i| format!("{}\n", i.name)).collect());
    }
    render(&items, &template, table)
}

/// Adds to each row's ERRORS the certificates of its machine that end soon or have ended.
fn add_expiry_warnings(items: &mut [ListItem], warn_days: i64) {
    let mut ends = super::cert_expiry::Ends::default();
    for item in items {
        let Some(host) = &item.host else {
            continue;
        };
        if let Some(warning) = super::cert_expiry::expiry_warning(host, &mut ends, warn_days) {
            item.error = if item.error.is_empty() {
                warning
            } else {
                format!("{}; {warning}", item.error)
            };
        }
    }
}

/// Splits docker-machine's `--format`: default when empty, `table` prefix, `\t` and `\n` escapes.
pub fn parse_format(format: &str) -> (String, bool) {
    let format = if format.is_empty() {
        DEFAULT_FORMAT
    } else {
        format
    };
    let (format, table) = match format.strip_prefix("table") {
        Some(rest) => (rest, true),
        None => (format, false),
    };
    let format = format
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    (format, table)
}

fn render(items: &[ListItem], template: &gotmpl::Template, table: bool) -> Result<String> {
    let mut text = String::new();
    if table {
        text.push_str(&template::render(template, &header())?);
    }
    for item in items {
        text.push_str(&template::render(template, &item_value(item))?);
    }
    Ok(if table {
        TabWriter::LS.format(&text)
    } else {
        text
    })
}

fn header() -> Value {
    use template::string as s;
    template::map([
        ("Name", s("NAME")),
        ("Active", s("ACTIVE")),
        ("ActiveHost", s("ACTIVE_HOST")),
        ("ActiveSwarm", s("ACTIVE_SWARM")),
        ("DriverName", s("DRIVER")),
        ("State", s("STATE")),
        ("URL", s("URL")),
        ("SwarmOptions", s("SWARM_OPTIONS")),
        ("Swarm", s("SWARM")),
        ("EngineOptions", s("ENGINE_OPTIONS")),
        ("Error", s("ERRORS")),
        ("DockerVersion", s("DOCKER")),
        ("ResponseTime", s("RESPONSE")),
    ])
}

fn item_value(item: &ListItem) -> Value {
    use template::string as s;
    let json = |v: Option<serde_json::Value>| v.map_or(Value::Nil, |v| template::from_json(&v));
    let swarm = json(
        item.swarm_options
            .as_ref()
            .and_then(|o| serde_json::to_value(o).ok()),
    );
    let engine = json(
        item.host
            .as_ref()
            .and_then(|h| serde_json::to_value(&h.host_options.engine_options).ok()),
    );
    template::map([
        ("Name", s(&item.name)),
        ("Active", s(item.active())),
        ("ActiveHost", Value::Bool(item.active_host)),
        ("ActiveSwarm", Value::Bool(item.active_swarm)),
        ("DriverName", s(&item.driver_name)),
        ("State", s(&item.state.to_string())),
        ("URL", s(&item.url)),
        ("SwarmOptions", swarm),
        ("Swarm", s(&item.swarm)),
        ("EngineOptions", engine),
        ("Error", s(&item.error)),
        ("DockerVersion", s(&item.docker_version)),
        ("ResponseTime", s(&go_duration(item.response_time))),
    ])
}

/// A duration as Go's `time.Duration.String()` prints it (`1.5s`, `2.003ms`, `0s`).
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let trim = |v: String| v.trim_end_matches('0').trim_end_matches('.').to_string();
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim(format!("{:.3}", nanos as f64 / 1e3)));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim(format!("{:.6}", nanos as f64 / 1e6)));
    }
    let total = d.as_secs();
    let (h, m) = (total / 3600, (total % 3600) / 60);
    let secs = trim(format!(
        "{:.9}",
        (total % 60) as f64 + f64::from(d.subsec_nanos()) / 1e9
    ));
    let secs = if secs.is_empty() { "0".into() } else { secs };
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// Queries every machine that passes the filters, concurrently; sorted as `ls` prints them.
pub async fn query_all(
    ctx: &Context,
    filters: &Filters,
    timeout: Duration,
) -> Result<Vec<ListItem>> {
    let store = &ctx.store;
    let loaded = store.load_all()?;
    // A plugin's output would break the table: it is shown with --debug only.
    let plugin_output: Arc<dyn Reporter> = Arc::new(DebugOnly(ctx.report.clone()));
    let plugins = Arc::new(Semaphore::new(MAX_CONCURRENT_PLUGINS));
    let masters = classic_swarm::swarm_masters(&loaded);
    let docker_host = Context::docker_host();
    let clients = ClientCache::default();
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_QUERIES));
    let deadline = tokio::time::Instant::now() + timeout;
    // Shared by the queries: a driver that learnt something new writes its record through it.
    let shared_store = Arc::new(store.clone());
    // Drivers with an API that answers for many machines (EC2) are asked once per account.
    let asked: Vec<(String, String, serde_json::Map<String, serde_json::Value>)> = loaded
        .iter()
        .filter_map(|(name, host)| host.as_ref().ok().map(|h| (name, h)))
        .filter(|(_, h)| driver::prefetches(&h.driver_name))
        .filter(|(_, h)| matches!(h.lifecycle(), Lifecycle::Running | Lifecycle::Failed))
        .filter(|(_, h)| filters.matches_static(h, &masters))
        .map(|(name, h)| (name.clone(), h.driver_name.clone(), h.driver.clone()))
        .collect();
    let mut prefetched = tokio::time::timeout_at(deadline, driver::prefetch(asked))
        .await
        .unwrap_or_default();
    let mut tasks = Vec::new();
    let mut items = Vec::new();
    for (name, host) in loaded {
        let host = match host {
            Ok(h) => h,
            Err(e) => {
                if filters.matches_name(&name)
                    && (filters.only_names() || filters.matches_state(State::Error))
                {
                    items.push(ListItem::broken(&name, "not found", e.to_string()));
                }
                continue;
            }
        };
        if !filters.matches_static(&host, &masters) {
            continue;
        }
        let swarm = classic_swarm::swarm_column(&host, &masters);
        let host = Arc::new(host);
        let engine = clients.for_paths(&crate::machine::cert_paths(&host));
        let limit = limit.clone();
        let docker_host = docker_host.clone();
        let mut env = crate::machine::driver_env(&host, plugin_output.clone());
        env.prefetched = prefetched.remove(&host.name);
        let store = shared_store.clone();
        let plugins = plugins.clone();
        // Only an unfinished create asks whether its lock is still held (no lock I/O otherwise).
        let lock_free = !matches!(
            host.lifecycle(),
            Lifecycle::Creating | Lifecycle::Provisioning
        ) || store.lock_is_free(&host.name);
        let (row_name, row_driver) = (host.name.clone(), host.driver_name.clone());
        tasks.push((
            row_name,
            row_driver,
            tokio::spawn(async move {
                let name = host.name.clone();
                let driver_name = host.driver_name.clone();
                // The timeout runs from the start of `ls` for every host, waiting for a slot
                // included: `ls --timeout N` ends within N seconds however many hosts hang.
                let query = async {
                    let _permit = limit.acquire_owned().await;
                    let started = Instant::now();
                    let query = Query {
                        engine,
                        docker_host,
                        lock_free,
                        env,
                        plugins,
                        store,
                    };
                    let mut item = query_host(host, query).await;
                    item.response_time = started.elapsed();
                    item
                };
                match tokio::time::timeout_at(deadline, query).await {
                    Ok(mut item) => {
                        if item.swarm.is_empty() {
                            item.swarm = swarm;
                        }
                        item
                    }
                    Err(_) => ListItem::timed_out(&name, &driver_name, timeout),
                }
            }),
        ));
    }
    for (name, driver, task) in tasks {
        // A query that failed outright still has its row.
        items.push(task.await.unwrap_or_else(|e| {
            ListItem::broken(
                &name,
                &driver,
                format!("the query of this machine failed: {e}"),
            )
        }));
    }
    for item in &items {
        ctx.report.debug(&format!(
            "({}) {} {}{} in {} ms{}",
            item.name,
            item.driver_name,
            item.state,
            match item.url.as_str() {
                "" => String::new(),
                url => format!(" at {url}"),
            },
            item.response_time.as_millis(),
            match item.error.as_str() {
                "" => String::new(),
                error => format!(": {error}"),
            }
        ));
    }
    items.retain(|i| filters.matches_state(i.state));
    natsort::sort_names(&mut items, |i| &i.name);
    Ok(items)
}

/// What one host's query needs besides its record.
struct Query {
    engine: ClientOrError,
    docker_host: String,
    /// No command holds the machine's lock (an unfinished create is not under way).
    lock_free: bool,
    env: driver::DriverEnv,
    plugins: Arc<Semaphore>,
    /// Where a driver's changed config is written (a driver that saw its address change).
    store: Arc<crate::store::Store>,
}

async fn query_host(host: Arc<Host>, q: Query) -> ListItem {
    let mut item = ListItem {
        name: host.name.clone(),
        driver_name: host.driver_name.clone(),
        docker_version: "Unknown".into(),
        swarm_options: Some(host.host_options.swarm_options.clone()),
        ..ListItem::timed_out(&host.name, &host.driver_name, Duration::ZERO)
    };
    item.state = State::None;
    match host.lifecycle() {
        Lifecycle::Running | Lifecycle::Failed => {}
        Lifecycle::Creating | Lifecycle::Provisioning if !q.lock_free => {
            item.state = State::Starting;
            item.host = Some(host);
            return item;
        }
        Lifecycle::Creating | Lifecycle::Provisioning => {
            item.state = State::Error;
            item.error = format!(
                "create was interrupted; run '{p} provision {n}' or '{p} rm {n}'",
                p = crate::context::program_name(),
                n = host.name
            );
            item.host = Some(host);
            return item;
        }
    }
    // A plugin driver is a process per machine: a bounded number at once.
    let _plugin = match driver::is_builtin(&host.driver_name) {
        true => None,
        false => q.plugins.clone().acquire_owned().await.ok(),
    };
    match driver::open(&host.driver_name, &host.driver, &q.env).await {
        Ok(driver) => {
            query_driver(&mut item, driver.as_ref(), &q).await;
            // The one write of `ls`: what a driver learnt that its record should keep.
            if let Some(config) = driver.changed_config() {
                let _ = crate::machine::record_writer(&q.store, &host.name)(config);
            }
            driver.close().await;
        }
        Err(e) => {
            item.driver_name = if matches!(
                e,
                DriverError::NotFound { .. } | DriverError::CoreNotFound { .. }
            ) {
                "not-found".into()
            } else {
                host.driver_name.clone()
            };
            item.state = State::Error;
            item.error = e.to_string();
        }
    }
    // The state is live; a failed provisioning is named with its fix.
    if host.lifecycle() == Lifecycle::Failed {
        item.error = format!(
            "{}; fix it and run '{} provision {}'",
            host.failure()
                .unwrap_or("provisioning failed")
                .replace('\n', " "),
            crate::context::program_name(),
            host.name
        );
    }
    if item.state == State::Running {
        if let (Some(cluster), Ok(client)) = (host.swarm_cluster(), &q.engine) {
            item.swarm = swarm::ls_column(client, &item.url, cluster).await;
        }
        let swarm = &host.host_options.swarm_options;
        item.active_host = item.url == q.docker_host;
        item.active_swarm = swarm.master
            && classic_swarm::swarm_url(&item.url, &swarm.host).is_some_and(|u| u == q.docker_host);
    }
    item.host = Some(host);
    item
}

/// Fills in state, URL and Docker version. A built-in driver's URL is known: a daemon that
/// answers over TLS proves the machine running, and only when it does not is the driver asked
/// (for generic, a probe of the SSH port). A plugin is asked its URL, which proves it running
/// as in docker-machine's `ls`; only when it has none is it asked its state.
async fn query_driver(item: &mut ListItem, driver: &dyn Driver, q: &Query) {
    let known = driver.known_url();
    let url = match &known {
        Some(url) => url.clone(),
        None => match driver.url().await {
            Ok(url) if !url.is_empty() => url,
            _ => {
                match driver.state().await {
                    Ok(state) => item.state = state,
                    Err(e) => {
                        item.state = State::Error;
                        item.error = e.to_string();
                    }
                }
                return;
            }
        },
    };
    let version = match (&q.engine, url.is_empty()) {
        (_, true) => Err(String::new()),
        (Ok(client), false) => client.version(&url).await.map_err(|e| e.to_string()),
        (Err(e), false) => Err(e.clone()),
    };
    match version {
        Ok(v) => {
            item.state = State::Running;
            item.docker_version = format!("v{v}");
        }
        Err(e) => {
            if known.is_some() {
                item.state = driver.state().await.unwrap_or(State::Error);
            } else {
                item.state = State::Running;
            }
            if item.state == State::Running && !e.is_empty() {
                item.error = format!("Unable to query docker version: {e}");
            }
        }
    }
    if item.state == State::Running {
        item.url = url;
    }
}

/// `active`: the first running machine (in `ls` order) whose URL is `$DOCKER_HOST`.
pub async fn active(ctx: &Context, timeout: Duration) -> Result<String> {
    let items = query_all(ctx, &Filters::default(), timeout).await?;
    if let Some(item) = items.iter().find(|i| i.active_host || i.active_swarm) {
        return Ok(item.name.clone());
    }
    if items.iter().any(|i| i.state == State::Timeout) {
        return Err(Error::Other("Error getting active host: timeout".into()));
    }
    Err(Error::Other("No active host found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parsing() {
        assert!(parse_format("").1);
        assert_eq!(parse_format("{{.Name}}"), ("{{.Name}}".into(), false));
        assert_eq!(
            parse_format("table {{.Name}}\\t{{.URL}} "),
            ("{{.Name}}\t{{.URL}}".into(), true)
        );
        assert_eq!(parse_format("{{.Name}}\\n"), ("{{.Name}}\n".into(), false));
    }

    #[test]
    fn filters_parse_and_reject() {
        let f = Filters::parse(&[
            "driver=none".into(),
            "NAME=^web".into(),
            "label=env=prod".into(),
        ])
        .unwrap();
        assert_eq!(f.driver, ["none"]);
        assert_eq!(f.label, [("env".into(), Some("prod".into()))]);
        assert!(f.matches_name("web1") && !f.matches_name("db"));
        assert_eq!(
            Filters::parse(&["nokey".into()]).unwrap_err().to_string(),
            "Unsupported filter syntax."
        );
        assert_eq!(
            Filters::parse(&["foo=bar".into()]).unwrap_err().to_string(),
            "Unsupported filter key 'foo'"
        );
        assert!(Filters::parse(&["name=(".into()]).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_nanos(500)), "500ns");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_millis(2003)), "2.003s");
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(75)), "1m15s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
