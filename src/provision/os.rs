//! Operating systems as data: `/etc/os-release`, and per distribution family how packages are
//! installed and what Docker's package is called. Matchers are tried in order; the first wins.

/// The fields of `/etc/os-release` that detection uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
}

/// Parses `/etc/os-release` (`KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        match key {
            "ID" => os.id = value.to_lowercase(),
            "ID_LIKE" => os.id_like = value.split_whitespace().map(str::to_lowercase).collect(),
            "VERSION_ID" => os.version_id = value,
            "PRETTY_NAME" => os.pretty_name = value,
            _ => {}
        }
    }
    os
}

/// A family of distributions that share a package manager.
#[derive(Debug, PartialEq)]
pub struct Family {
    /// The provisioner's name, as docker-machine prints it (`Provisioning with debian...`).
    pub name: &'static str,
    ids: &'static [&'static str],
    like: &'static [&'static str],
    /// Installs packages: `{pkgs}` stands for the quoted package names; runs as root.
    install: &'static str,
    /// Docker from the distribution's own repositories.
    pub docker_package: &'static str,
    /// Upgrades the installed Docker package.
    pub upgrade_docker: &'static str,
}

const APT: &str = "export DEBIAN_FRONTEND=noninteractive; apt-get -qq -o DPkg::Lock::Timeout=120 update && apt-get -qq -o DPkg::Lock::Timeout=120 install -y {pkgs}";
/// Upgrades the Docker packages that are installed; an index that cannot be fetched is an error
/// (`Error-Mode=any`; older apt ignores the option), and so is a package that cannot.
const APT_UPGRADE: &str = "export DEBIAN_FRONTEND=noninteractive; apt-get -q -o DPkg::Lock::Timeout=120 -o APT::Update::Error-Mode=any update >/dev/null && pkgs=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\\n' docker.io docker-cli docker-ce docker-ce-cli containerd.io 2>/dev/null | awk '$1 == \"ii\" {print $2}') && apt-get -q -o DPkg::Lock::Timeout=120 install -y --only-upgrade $pkgs >/dev/null";

/// The families hoist knows, in matching order.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "ubuntu(systemd)",
        ids: &["ubuntu"],
        like: &[],
        install: APT,
        docker_package: "docker.io",
        upgrade_docker: APT_UPGRADE,
    },
    Family {
        name: "debian",
        ids: &["debian", "raspbian"],
        like: &["debian", "ubuntu"],
        install: APT,
        docker_package: "docker.io",
        upgrade_docker: APT_UPGRADE,
    },
    Family {
        name: "fedora",
        ids: &["fedora"],
        like: &[],
        install: "dnf install -y -q {pkgs}",
        docker_package: "moby-engine",
        upgrade_docker: "dnf upgrade -y -q moby-engine docker-ce",
    },
    Family {
        name: "redhat",
        ids: &["rhel", "centos", "rocky", "almalinux", "ol", "amzn"],
        like: &["rhel", "centos", "fedora"],
        install: "if command -v dnf >/dev/null; then dnf install -y -q {pkgs}; else yum install -y -q {pkgs}; fi",
        docker_package: "docker",
        upgrade_docker: "if command -v dnf >/dev/null; then dnf upgrade -y -q docker docker-ce; else yum update -y -q docker docker-ce; fi",
    },
    Family {
        name: "SUSE",
        ids: &["sles", "opensuse-leap", "opensuse-tumbleweed", "opensuse"],
        like: &["suse", "opensuse"],
        install: "zypper -n -q install {pkgs}",
        docker_package: "docker",
        upgrade_docker: "zypper -n -q update docker",
    },
    Family {
        name: "arch",
        ids: &["arch", "manjaro", "endeavouros"],
        like: &["arch"],
        install: "pacman -Sy --noconfirm --needed {pkgs}",
        docker_package: "docker",
        upgrade_docker: "pacman -Sy --noconfirm docker",
    },
];

impl Family {
    /// The shell command that installs `packages`.
    pub fn install_command(&self, packages: &[&str]) -> String {
        self.install
            .replace("{pkgs}", &crate::ssh::quote::join(packages))
    }
}

/// The family of an OS: by `ID` first, then by `ID_LIKE`.
pub fn family_of(os: &OsRelease) -> Option<&'static Family> {
    FAMILIES
        .iter()
        .find(|f| f.ids.contains(&os.id.as_str()))
        .or_else(|| {
            FAMILIES
                .iter()
                .find(|f| os.id_like.iter().any(|l| f.like.contains(&l.as_str())))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_plain_values() {
        let os = parse_os_release(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n\ngarbage line\n",
        );
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
    }

    #[test]
    fn families_in_order() {
        let of = |id: &str, like: &str| {
            family_of(&OsRelease {
                id: id.into(),
                id_like: like.split_whitespace().map(String::from).collect(),
                ..OsRelease::default()
            })
            .map(|f| f.name)
        };
        assert_eq!(of("debian", ""), Some("debian"));
        assert_eq!(of("ubuntu", "debian"), Some("ubuntu(systemd)"));
        assert_eq!(of("linuxmint", "ubuntu debian"), Some("debian"));
        assert_eq!(of("fedora", ""), Some("fedora"));
        assert_eq!(of("rocky", "rhel centos fedora"), Some("redhat"));
        assert_eq!(of("almalinux", "rhel centos fedora"), Some("redhat"));
        assert_eq!(of("opensuse-leap", "suse opensuse"), Some("SUSE"));
        assert_eq!(of("sles", ""), Some("SUSE"));
        assert_eq!(of("manjaro", "arch"), Some("arch"));
        assert_eq!(of("alpine", ""), None);
        assert_eq!(family_of(&OsRelease::default()), None);
    }

    #[test]
    fn docker_packages_per_family() {
        let pkg = |name: &str| {
            FAMILIES
                .iter()
                .find(|f| f.name == name)
                .unwrap()
                .docker_package
        };
        assert_eq!(pkg("debian"), "docker.io");
        assert_eq!(pkg("fedora"), "moby-engine");
        let debian = FAMILIES.iter().find(|f| f.name == "debian").unwrap();
        assert!(
            debian
                .install_command(&["docker.io", "a b"])
                .ends_with("install -y docker.io 'a b'")
        );
    }
}
