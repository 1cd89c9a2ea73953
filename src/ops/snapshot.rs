//! `snapshot create|ls|rm`: golden snapshots of running machines, which `create --qemu-snapshot`
//! makes new machines from in seconds. A snapshot is made in a temporary directory and renamed
//! into place whole; it is never written again; it cannot be removed while a machine uses it.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::context::{Context, program_name};
use crate::driver::{DriverError, State};
use crate::error::{Error, Result};
use crate::format::tabwriter::TabWriter;
use crate::machine::{Machine, session};
use crate::report::Reporter;
use crate::store::snapshot::{SOURCE_KEY, Snapshot, validate_snapshot_name};

/// `snapshot create MACHINE SNAPSHOT`: saves the running machine's state and disk as a golden
/// snapshot; the machine runs on (it is paused while its state and disk are saved).
pub async fn create(
    ctx: &Context,
    machine: &str,
    snapshot: &str,
    report: &dyn Reporter,
) -> Result<String> {
    validate_snapshot_name(snapshot)?;
    let _lock = crate::machine::lock_machine(ctx, machine).await?;
    let mut machine = Machine::load(ctx, machine).await?;
    let result = save(ctx, &mut machine, snapshot, report).await;
    machine.close().await;
    result
}

async fn save(
    ctx: &Context,
    machine: &mut Machine,
    snapshot: &str,
    report: &dyn Reporter,
) -> Result<String> {
    let name = machine.host.name.clone();
    let failed = |e: &dyn std::fmt::Display| {
        Error::Other(format!(
            "cannot take snapshot \"{snapshot}\" of machine \"{name}\": {e}"
        ))
    };
    match machine.driver.state().await {
        Ok(State::Running) => {}
        Ok(state) => {
            return Err(failed(&format!(
                "it is {state}; snapshots are taken of running machines ('{} start {name}')",
                program_name()
            )));
        }
        Err(e) => return Err(failed(&e)),
    }
    let _snapshots = ctx.store.lock_snapshots()?;
    if ctx.store.snapshot_exists(snapshot) {
        return Err(Error::Other(format!(
            "snapshot \"{snapshot}\" exists already; choose another name, or remove it first with '{} snapshot rm {snapshot}'",
            program_name()
        )));
    }
    let final_dir = ctx.store.snapshot_dir(snapshot);
    let parent = ctx.store.snapshots_dir();
    crate::fsutil::create_dir_all(&parent, 0o700)
        .map_err(|e| failed(&format!("cannot create {}: {e}", parent.display())))?;
    crate::fsutil::remove_stale_temp_files(&parent);
    let staging = crate::fsutil::temp_path(&final_dir).map_err(|e| failed(&e))?;
    crate::fsutil::create_dir_all(&staging, 0o700).map_err(|e| failed(&e))?;
    report.info(&format!(
        "Saving the state and disk of machine \"{name}\" (it is paused meanwhile)..."
    ));
    let made = make(ctx, machine, snapshot, &staging).await;
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(match e {
            Error::Driver(DriverError::NotRunning) => failed(&"it is not running"),
            e => failed(&e),
        });
    }
    // A directory left by an interrupted `snapshot rm` has no description: replace it.
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(&staging, &final_dir).map_err(|e| failed(&e))?;
    let _ = crate::fsutil::sync_dir(&parent);
    Ok(format!(
        "Snapshot \"{snapshot}\" of machine \"{name}\" saved; make machines from it with '{} create -d {} --{}-snapshot {snapshot} NAME'",
        program_name(),
        machine.driver.name(),
        machine.driver.name()
    ))
}

/// The driver's files, then the description (the mark of a whole snapshot).
async fn make(ctx: &Context, machine: &mut Machine, snapshot: &str, dir: &Path) -> Result<()> {
    let driver = machine.driver.save_snapshot(dir).await?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let description = Snapshot {
        name: snapshot.to_string(),
        machine: machine.host.name.clone(),
        driver_name: machine.driver.name().to_string(),
        created,
        ssh_host_key: session::pinned_key(&machine.host).unwrap_or_default(),
        driver,
    };
    ctx.store.write_snapshot(dir, &description)?;
    Ok(())
}

/// One row of `snapshot ls`.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotRow {
    pub name: String,
    pub machine: String,
    pub driver: String,
    pub created: u64,
    /// Bytes of its files.
    pub size: u64,
    /// The machines made from it.
    pub used_by: Vec<String>,
}

/// The machines whose records say they were made from each snapshot, by snapshot.
fn users(ctx: &Context) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let mut users: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (name, host) in ctx.store.load_all()? {
        let source = host
            .ok()
            .and_then(|h| h.driver.get(SOURCE_KEY)?.as_str().map(str::to_string));
        if let Some(source) = source {
            users.entry(source).or_default().push(name);
        }
    }
    Ok(users)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// `snapshot ls`: every snapshot with the machines made from it.
pub fn list(ctx: &Context) -> Result<Vec<SnapshotRow>> {
    let mut users = users(ctx)?;
    ctx.store
        .list_snapshots()?
        .into_iter()
        .map(|name| {
            let s = ctx.store.load_snapshot(&name)?;
            Ok(SnapshotRow {
                size: dir_size(&ctx.store.snapshot_dir(&name)),
                used_by: users.remove(&name).unwrap_or_default(),
                name,
                machine: s.machine,
                driver: s.driver_name,
                created: s.created,
            })
        })
        .collect()
}

/// `snapshot ls` as it prints.
pub fn ls(ctx: &Context) -> Result<String> {
    let mut text = String::from("NAME\tMACHINE\tDRIVER\tCREATED\tSIZE\tUSED BY\n");
    for row in list(ctx)? {
        let created = time::OffsetDateTime::from_unix_timestamp(row.created as i64)
            .map(|t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute()
                )
            })
            .unwrap_or_default();
        let used_by = match row.used_by.is_empty() {
            true => "-".to_string(),
            false => row.used_by.join(","),
        };
        let size = format!("{:.1} MiB", row.size as f64 / f64::from(1u32 << 20));
        text.push_str(
            &[
                row.name.as_str(),
                &row.machine,
                &row.driver,
                &created,
                &size,
                &used_by,
            ]
            .join("\t"),
        );
        text.push('\n');
    }
    Ok(TabWriter::LS.format(&text))
}

/// `snapshot rm SNAPSHOT…`: removes each snapshot no machine uses; one line per snapshot.
pub fn rm(ctx: &Context, names: &[String]) -> Vec<Result<String>> {
    names.iter().map(|name| rm_one(ctx, name)).collect()
}

fn rm_one(ctx: &Context, name: &str) -> Result<String> {
    validate_snapshot_name(name)?;
    let _snapshots = ctx.store.lock_snapshots()?;
    if !ctx.store.snapshot_exists(name) {
        return Err(crate::store::StoreError::SnapshotNotFound(name.to_string()).into());
    }
    let used_by = users(ctx)?.remove(name).unwrap_or_default();
    if !used_by.is_empty() {
        return Err(Error::Other(format!(
            "snapshot \"{name}\" is used by machine{} {}: remove {} first ('{} rm {}')",
            if used_by.len() == 1 { "" } else { "s" },
            used_by.join(", "),
            if used_by.len() == 1 { "it" } else { "them" },
            program_name(),
            used_by.join(" ")
        )));
    }
    let dir = ctx.store.snapshot_dir(name);
    // The description goes first: a removal cut short leaves no snapshot, only files that the
    // next `snapshot create` of that name replaces.
    let cannot =
        |e: std::io::Error| Error::Other(format!("cannot remove snapshot \"{name}\": {e}"));
    std::fs::remove_file(dir.join(crate::store::layout::SNAPSHOT_JSON)).map_err(cannot)?;
    std::fs::remove_dir_all(&dir).map_err(cannot)?;
    Ok(format!("Successfully removed snapshot {name}"))
}
