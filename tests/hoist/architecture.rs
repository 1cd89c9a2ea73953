//! The layers of docs/architecture.md, checked on the source: every `crate::MODULE` a library
//! module names (in code, not in comments) must be one that its layer may use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top module of `src/` and the modules it may use (docs/architecture.md, bottom to top).
const MAY_USE: &[(&str, &[&str])] = &[
    ("program", &[]),
    ("report", &[]),
    ("fsutil", &[]),
    ("netaddr", &[]),
    ("store", &["fsutil", "program"]),
    ("context", &["program", "report", "store"]),
    ("cert", &["fsutil", "program", "store"]),
    ("format", &["store"]),
    ("shell", &["context", "program"]),
    (
        "engine",
        &["cert", "context", "fsutil", "netaddr", "program", "report"],
    ),
    (
        "web",
        &[
            "engine", "context", "fsutil", "netaddr", "program", "report",
        ],
    ),
    (
        "ssh",
        &[
            "cert", "engine", "context", "fsutil", "netaddr", "program", "report",
        ],
    ),
    ("driver", DRIVER),
    (
        "error",
        &[
            "cert", "driver", "engine", "format", "program", "ssh", "store", "web",
        ],
    ),
    ("machine", MACHINE),
    ("provision", PROVISION),
    ("ops", OPS),
];
const DRIVER: &[&str] = &[
    "cert", "context", "engine", "format", "fsutil", "netaddr", "program", "report", "shell",
    "ssh", "store", "web",
];
const MACHINE: &[&str] = &[
    "cert", "context", "driver", "engine", "error", "format", "fsutil", "netaddr", "program",
    "report", "shell", "ssh", "store", "web",
];
const PROVISION: &[&str] = &[
    "cert", "context", "driver", "engine", "error", "format", "fsutil", "machine", "netaddr",
    "program", "report", "shell", "ssh", "store", "web",
];
const OPS: &[&str] = &[
    "cert",
    "context",
    "driver",
    "engine",
    "error",
    "format",
    "fsutil",
    "machine",
    "netaddr",
    "program",
    "provision",
    "report",
    "shell",
    "ssh",
    "store",
    "web",
];

/// The top modules named in `code` as `crate::NAME` or inside `use crate::{…}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = MAY_USE.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "bin" || module == "lib" {
            continue;
        }
        let may = allowed.get(module.as_str()).unwrap_or_else(|| {
            panic!(
                "{module} (src/{}) is in no layer of docs/architecture.md",
                relative.display()
            )
        });
        let text = std::fs::read_to_string(&file).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for used in named_modules(&code) {
            if used != module && !may.contains(&used.as_str()) {
                wrong.push(format!("src/{} uses {used}", relative.display()));
            }
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} files read");
    assert!(
        wrong.is_empty(),
        "arrows that point up or sideways: {wrong:#?}"
    );
}

#[test]
fn the_reader_finds_what_a_file_names() {
    let code = "use crate::{cert, driver::Flag};\nlet x = crate::ops::ls::run();";
    let found: Vec<String> = named_modules(code).into_iter().collect();
    assert_eq!(found, ["cert", "driver", "ops"]);
}
