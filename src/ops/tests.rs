//! The create pipeline and the power commands against an in-process fake driver: the driver
//! logic, without a lab.

use std::sync::Arc;

use super::create::{self, CreateOptions};
use super::power::{self, Power};
use crate::context::{Context, TlsOverrides};
use crate::driver::fake::FakeDriver;
use crate::driver::{FlagValue, FlagValues, State};
use crate::error::Error;
use crate::machine::Machine;
use crate::report::Recorder as Steps;
use crate::store::Store;
use crate::store::config::Lifecycle;

fn context(dir: &std::path::Path) -> (Context, Arc<Steps>) {
    let steps = Arc::new(Steps::default());
    let ctx = Context {
        store: Store::new(dir.join("store")),
        report: steps.clone(),
        argv: vec!["hoist".into()],
        debug: false,
        native_ssh: false,
        tls: TlsOverrides::default(),
    };
    (ctx, steps)
}

fn options(name: &str) -> CreateOptions {
    let mut flags = FlagValues::default();
    flags.set("fake-ip", FlagValue::String("192.0.2.77".into()));
    CreateOptions {
        name: name.into(),
        flags,
        ..CreateOptions::default()
    }
}

#[tokio::test]
async fn create_runs_libmachines_pipeline_and_records_what_the_driver_made() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, steps) = context(dir.path());
    let fake = FakeDriver::new(State::None, &[]);
    let host = create::create(&ctx, &options("m1"), Box::new(fake.clone()), steps.as_ref())
        .await
        .unwrap();
    assert_eq!(
        fake.calls(),
        [
            "set_config",
            "set_config_from_flags",
            "pre_create_check",
            "config",
            "create",
            "config",
            "config"
        ]
    );
    assert_eq!(host.driver_name, "fake");
    let stored = ctx.store.load("m1").unwrap();
    assert_eq!(stored.lifecycle(), Lifecycle::Running);
    assert_eq!(stored.driver["MachineName"], "m1");
    assert_eq!(stored.driver["IPAddress"], "192.0.2.77");
    assert_eq!(stored.driver["InstanceId"], "i-fake");
    let lines = steps.lines();
    let at = |step: &str| lines.iter().position(|l| l == step).unwrap();
    assert!(at("Running pre-create checks...") < at("Creating machine..."));
    // Nothing to provision for this driver.
    assert!(!lines.iter().any(|l| l.starts_with("Waiting for machine")));
}

#[tokio::test]
async fn a_failed_pre_create_check_exits_3_and_saves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, steps) = context(dir.path());
    let fake = FakeDriver::new(State::None, &["pre_create_check"]);
    let err = create::create(&ctx, &options("m2"), Box::new(fake.clone()), steps.as_ref())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PreCreate(_)), "{err}");
    assert_eq!(err.exit_code(), 3);
    assert!(!ctx.store.exists("m2"));
    assert!(!fake.calls().contains(&"create".to_string()));
}

#[tokio::test]
async fn a_failed_driver_create_leaves_a_failed_record_that_keeps_the_drivers_state() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, steps) = context(dir.path());
    let fake = FakeDriver::new(State::None, &["create"]);
    let err = create::create(&ctx, &options("m3"), Box::new(fake), steps.as_ref())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "Error creating machine: Error in driver during machine creation: fake: create failed"
    );
    let stored = ctx.store.load("m3").unwrap();
    assert_eq!(stored.lifecycle(), Lifecycle::Failed);
    assert!(stored.failure().unwrap().contains("fake: create failed"));
    // The instance id the driver recorded before failing is kept for `rm`.
    assert_eq!(stored.driver["InstanceId"], "i-fake");
    // Creating it again is refused while the failed record exists, with what to do instead.
    let again = create::create(
        &ctx,
        &options("m3"),
        Box::new(FakeDriver::new(State::None, &[])),
        steps.as_ref(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        again.to_string(),
        "Docker machine \"m3\" already exists (its create did not finish: run 'hoist provision m3' to finish it, or 'hoist rm m3' to start over)"
    );
}

/// A create whose driver fails in `create` and removes what a failed create made (as EC2's
/// does), with `--keep-on-failure` or not; its error, the driver's calls and the store's record.
async fn failed_create_of_a_removing_driver(
    failing: &[&'static str],
    keep_on_failure: bool,
) -> (String, Vec<String>, Option<Lifecycle>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, steps) = context(dir.path());
    let fake = FakeDriver::new(State::None, failing);
    fake.script.lock().unwrap().removes_failed_create = true;
    let opts = CreateOptions {
        keep_on_failure,
        ..options("cloud")
    };
    let err = create::create(&ctx, &opts, Box::new(fake.clone()), steps.as_ref())
        .await
        .unwrap_err()
        .to_string();
    let record = ctx.store.load("cloud").ok().map(|h| h.lifecycle());
    (err, fake.calls(), record, steps.lines())
}

#[tokio::test]
async fn a_driver_that_removes_a_failed_create_leaves_nothing_unless_asked_to_keep_it() {
    let (err, calls, record, steps) = failed_create_of_a_removing_driver(&["create"], false).await;
    assert_eq!(
        err,
        "Error creating machine: Error in driver during machine creation: fake: create failed; everything it made was removed"
    );
    assert_eq!(calls.last().map(String::as_str), Some("remove"));
    assert_eq!(record, None, "the record is gone with the machine");
    assert!(steps.contains(
        &"Removing what the failed create made (--keep-on-failure keeps it)...".to_string()
    ));
    // --keep-on-failure: nothing removed, the failed record kept for provision or rm.
    let (err, calls, record, _) = failed_create_of_a_removing_driver(&["create"], true).await;
    assert_eq!(
        err,
        "Error creating machine: Error in driver during machine creation: fake: create failed"
    );
    assert!(!calls.contains(&"remove".to_string()), "{calls:?}");
    assert_eq!(record, Some(Lifecycle::Failed));
}

#[tokio::test]
async fn a_removal_that_fails_too_keeps_the_record_for_rm() {
    let (err, calls, record, _) =
        failed_create_of_a_removing_driver(&["create", "remove"], false).await;
    assert_eq!(
        err,
        "Error creating machine: Error in driver during machine creation: fake: create failed; removing what it made failed too (fake: remove failed); 'hoist rm cloud' tries again"
    );
    assert_eq!(calls.last().map(String::as_str), Some("remove"));
    assert_eq!(record, Some(Lifecycle::Failed));
}

async fn machine(ctx: &Context, state: State, failing: &[&'static str]) -> (Machine, FakeDriver) {
    let fake = FakeDriver::new(state, failing);
    let host = create::new_host(ctx, &options("pw"), "fake", serde_json::Map::new()).unwrap();
    (
        Machine {
            host,
            driver: Box::new(fake.clone()),
        },
        fake,
    )
}

#[tokio::test]
async fn stop_and_kill_follow_docker_machines_state_rules_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, steps) = context(dir.path());
    let (mut m, fake) = machine(&ctx, State::Running, &[]).await;
    power::run(&mut m, Power::Stop, steps.as_ref())
        .await
        .unwrap();
    assert_eq!(fake.calls(), ["state", "stop", "state"]);
    assert_eq!(
        steps.lines(),
        ["Stopping \"pw\"...", "Machine \"pw\" was stopped."]
    );
    let err = power::run(&mut m, Power::Stop, steps.as_ref())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Machine \"pw\" is already stopped.");
    let err = power::run(&mut m, Power::Kill, steps.as_ref())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Machine \"pw\" is already stopped.");

    let (mut m, fake) = machine(&ctx, State::Running, &[]).await;
    power::run(&mut m, Power::Kill, steps.as_ref())
        .await
        .unwrap();
    assert_eq!(fake.calls(), ["state", "kill", "state"]);
}

#[tokio::test]
async fn start_acts_only_on_a_stopped_machine_and_a_driver_error_is_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _) = context(dir.path());
    let (mut m, fake) = machine(&ctx, State::Running, &[]).await;
    let err = power::act(&mut m, Power::Start, State::Running)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Machine \"pw\" is already running.");
    assert_eq!(fake.calls(), ["state"]);
    let (mut m, fake) = machine(&ctx, State::Stopped, &[]).await;
    power::act(&mut m, Power::Start, State::Running)
        .await
        .unwrap();
    assert_eq!(fake.calls(), ["state", "start", "state"]);
    let (mut m, _) = machine(&ctx, State::Stopped, &["start"]).await;
    let err = power::act(&mut m, Power::Start, State::Running)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "fake: start failed");
}
