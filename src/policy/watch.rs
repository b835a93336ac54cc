//! Reloads the policy when its file changes or the process gets SIGHUP.
//!
//! The folder is watched, not the file: editors save by writing a new file and renaming it
//! over the old one, and Kubernetes swaps a `..data` symlink, so a watch on the file itself
//! would go quiet after the first save. Events are debounced (150 ms after the last one, so a
//! save that arrives as several events reloads once), and a reload happens only when the
//! file's bytes changed, so touching a neighbour file does nothing (SIGHUP always reloads).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::store::Store;

const DEBOUNCE: Duration = Duration::from_millis(150);

/// Watches until the runtime stops. Call from within a tokio runtime.
pub async fn watch(store: Arc<Store>) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    let folder = folder_of(store.path());
    let file_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| may_change_content(&e.kind)) {
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
        // Debounce: wait until the folder has been quiet for DEBOUNCE.
        while let Ok(Some(next)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
            forced |= next;
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

/// Opening, reading and closing a file changes nothing, and the watcher's own reads of the
/// policy would otherwise wake it again after every check, for ever.
fn may_change_content(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)
        )
    )
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
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    use super::*;

    #[test]
    fn reading_the_file_is_not_a_change_but_writing_or_renaming_it_is() {
        let reads = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ];
        assert!(reads.iter().all(|k| !may_change_content(k)));
        let writes = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(notify::event::RemoveKind::Any),
            EventKind::Any,
        ];
        assert!(writes.iter().all(may_change_content));
    }
}
