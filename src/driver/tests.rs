use super::*;

#[test]
fn states_have_libmachines_numbers_and_names() {
    let all = [
        State::None,
        State::Running,
        State::Paused,
        State::Saved,
        State::Stopped,
        State::Stopping,
        State::Starting,
        State::Error,
        State::Timeout,
    ];
    for (n, state) in all.iter().enumerate() {
        assert_eq!(State::from_number(n as i64), *state);
    }
    assert_eq!(State::from_number(99), State::None);
    assert_eq!(State::from_number(-1), State::None);
    assert_eq!(State::Stopping.to_string(), "Stopping");
    assert_eq!(State::None.to_string(), "");
}

#[test]
fn the_table_has_the_builtins_and_their_flags() {
    assert_eq!(builtin_names(), "none, generic, qemu, amazonec2");
    assert!(is_builtin("generic") && is_builtin("none") && !is_builtin("labplug"));
    let qemu: Vec<String> = (builtin("qemu").unwrap().flags)()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        qemu,
        [
            "qemu-image",
            "qemu-image-checksum",
            "qemu-cpu-count",
            "qemu-memory",
            "qemu-disk-size",
            "qemu-accel",
            "qemu-binary",
            "qemu-kernel",
            "qemu-initrd",
            "qemu-append",
            "qemu-snapshot"
        ]
    );
    let generic: Vec<String> = (builtin("generic").unwrap().flags)()
        .into_iter()
        .map(|f| f.name)
        .collect();
    for name in [
        "generic-engine-port",
        "generic-ip-address",
        "generic-ssh-key",
        "generic-ssh-port",
        "generic-ssh-user",
    ] {
        assert!(generic.contains(&name.to_string()), "{name}");
    }
    assert_eq!(
        (builtin("none").unwrap().flags)()[0].name,
        "url",
        "none's only flag"
    );
}

#[test]
fn a_new_machines_config_is_a_base_driver() {
    let config = new_config("web", "/store");
    assert_eq!(config["MachineName"], "web");
    assert_eq!(config["StorePath"], "/store");
    assert_eq!(config.len(), 9, "{config:?}");
}

#[tokio::test]
async fn unknown_drivers_are_plugins_and_core_ones_need_docker_machine() {
    let env = DriverEnv::new(
        "m",
        std::sync::Arc::new(crate::report::DebugOnly(std::sync::Arc::new(Discard))),
    );
    let err = open("surely-not-a-driver", &Map::new(), &env)
        .await
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("docker-machine-driver-surely-not-a-driver")
            && text.contains("none, generic"),
        "{text}"
    );
    // A core driver is looked up as docker-machine / rancher-machine, never as hoist itself.
    if plugin::find_binary("digitalocean").is_err() {
        let text = open("digitalocean", &Map::new(), &env)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            text.contains("docker-machine (or rancher-machine)"),
            "{text}"
        );
    }
}

struct Discard;

impl crate::report::Reporter for Discard {
    fn info(&self, _: &str) {}
    fn debug(&self, _: &str) {}
}

#[tokio::test]
async fn waiting_for_a_state_names_the_last_one_seen() {
    let fake = fake::FakeDriver::new(State::Stopped, &[]);
    let err = wait_for_state(&fake, State::Running, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "waited 0s for the machine to be Running; it is Stopped"
    );
    let fake = fake::FakeDriver::new(State::Running, &[]);
    wait_for_state(&fake, State::Running, Duration::ZERO)
        .await
        .unwrap();
}
