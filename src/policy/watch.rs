//! Reloads the policy when its file changes or the process gets SIGHUP.
//!
//! The folder is watched, not the file: editors save by writing a new file and renaming it
//! over the old one, and Kubernetes swaps a `..data` symlink, so a watch on the file itself
//! would go quiet after the first save. Only events that may change what the policy path
//! reads count: a write of a neighbour file (a log kept next to the policy) is ignored, however
//! often it comes. Events are debounced (150 ms after the last one, so a save that arrives as
//! several events reloads once, and never more than 500 ms after the first), and a reload
//! happens only when the file's bytes changed (SIGHUP always reloads).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::store::Store;

const DEBOUNCE: Duration = Duration::from_millis(150);
/// The longest a reload waits for the folder to go quiet: a steady stream of relevant events
/// (a tool rewriting the policy in a loop) cannot hold it back past this.
const DEBOUNCE_MAX: Duration = Duration::from_millis(500);

/// Watches until the runtime stops. Call from within a tokio runtime.
pub async fn watch(store: Arc<Store>) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    let folder = folder_of(store.path());
    let policy = store.path().to_owned();
    let mut names = policy_names(&policy);
    let file_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let Ok(event) = event else { return };
        if may_change_policy(&event, &names) {
            if renames(&event.kind) {
                // A link may point elsewhere now.
                names = policy_names(&policy);
            }
            let _ = file_tx.send(false);
        }
    })?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;

    #[cfg(unix)]
    {
        let hup_tx = tx.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the policy");
                let _ = hup_tx.send(true);
            }
        });
    }

    let mut last = digest(store.path());
    while let Some(mut forced) = rx.recv().await {
        // Debounce: wait until the folder has been quiet for DEBOUNCE, or DEBOUNCE_MAX passed.
        let deadline = tokio::time::Instant::now() + DEBOUNCE_MAX;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left.min(DEBOUNCE), rx.recv()).await {
                Ok(Some(next)) => forced |= next,
                Ok(None) | Err(_) => break,
            }
            if left.is_zero() {
                break;
            }
        }
        let now = digest(store.path());
        if !forced && now.is_some() && now == last {
            continue;
        }
        last = now;
        // Compiling reads the file and resolves the upstream's name: blocking work, kept off
        // the runtime that also serves the admin endpoints.
        let reloading = store.clone();
        let _ = tokio::task::spawn_blocking(move || reloading.reload()).await;
    }
    drop(watcher);
    Ok(())
}

/// Whether an event in the policy's folder may change what the policy path reads (`names`:
/// see [`policy_names`]): a write, rename, creation or removal of the policy file, and any
/// entry of the folder created, removed or renamed (Kubernetes swaps a `..data` symlink the
/// policy path resolves through). Opening, reading and closing a file changes nothing (the
/// watcher's own reads of the policy would otherwise wake it for ever), nor does writing
/// another file: a log kept next to the policy would otherwise keep the debounce open.
fn may_change_policy(event: &Event, names: &[OsString]) -> bool {
    match event.kind {
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read),
        ) => false,
        _ if renames(&event.kind) => true,
        // Unknown kinds and events without a path (a queue overflow: rescan) may be anything.
        EventKind::Any | EventKind::Other => true,
        _ => {
            event.paths.is_empty()
                || event
                    .paths
                    .iter()
                    .filter_map(|p| p.file_name())
                    .any(|n| names.iter().any(|name| name == n))
        }
    }
}

/// An entry of the folder created, removed or renamed.
fn renames(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    )
}

/// The names in the policy's folder whose content the policy path reads: its own, and the
/// file it links to when that lies in the same folder (`policy.yaml -> policy.v2.yaml`,
/// edited in place). A link into another folder is followed only by SIGHUP.
fn policy_names(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path.file_name().map(OsStr::to_owned).into_iter().collect();
    let target = std::fs::canonicalize(path);
    let folder = std::fs::canonicalize(folder_of(path));
    if let (Ok(target), Ok(folder)) = (target, folder)
        && target.parent() == Some(folder.as_path())
        && let Some(name) = target.file_name()
        && !names.iter().any(|n| n == name)
    {
        names.push(name.to_owned());
    }
    names
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).into())
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, file: &str) -> Event {
        Event::new(kind).add_path(PathBuf::from("/etc/mcpwarden").join(file))
    }

    fn counts(kind: EventKind, file: &str) -> bool {
        may_change_policy(&event(kind, file), &["policy.yaml".into()])
    }

    #[test]
    fn reading_the_policy_is_not_a_change_but_writing_or_renaming_it_is() {
        let reads = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ];
        assert!(reads.into_iter().all(|k| !counts(k, "policy.yaml")));
        let writes = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::Any),
            EventKind::Any,
        ];
        assert!(writes.into_iter().all(|k| counts(k, "policy.yaml")));
    }

    #[test]
    fn writing_a_neighbour_is_not_a_change_but_renaming_creating_or_removing_one_is() {
        let writes = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        ];
        assert!(writes.into_iter().all(|k| !counts(k, "gateway.log")));
        // Kubernetes: `..data` is swapped to a new folder, which `policy.yaml` links through.
        let swaps = [
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Any)),
            EventKind::Create(CreateKind::Any),
            EventKind::Remove(RemoveKind::Folder),
        ];
        assert!(swaps.into_iter().all(|k| counts(k, "..data")));
        // A queue overflow names no path: anything may have changed.
        let names = ["policy.yaml".into()];
        assert!(may_change_policy(&Event::new(EventKind::Other), &names));
        let pathless = Event::new(EventKind::Modify(ModifyKind::Any));
        assert!(may_change_policy(&pathless, &names));
    }

    #[test]
    fn writing_the_file_the_policy_links_to_is_a_change() {
        let names = ["policy.yaml".into(), "policy.v2.yaml".into()];
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert!(may_change_policy(&event(write, "policy.v2.yaml"), &names));
        assert!(!counts(write, "policy.v2.yaml"));
    }

    #[cfg(unix)]
    #[test]
    fn the_names_are_the_policy_and_the_file_it_links_to_in_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (path, real) = (dir.path().join("policy.yaml"), dir.path().join("real.yaml"));
        std::fs::write(&real, "version: 1\n").unwrap();
        std::fs::write(&path, "version: 1\n").unwrap();
        assert_eq!(policy_names(&path), ["policy.yaml"]);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("real.yaml", &path).unwrap();
        assert_eq!(policy_names(&path), ["policy.yaml", "real.yaml"]);
        // A link into another folder: that folder is not watched.
        let other = tempfile::tempdir().unwrap();
        let elsewhere = other.path().join("policy.yaml");
        std::fs::write(&elsewhere, "version: 1\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert_eq!(policy_names(&path), ["policy.yaml"]);
    }
}
