//! Watching the policy directory: a change to any file there calls back once, after the
//! burst of events an editor's save makes has settled.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::PolicyError;

/// How long a burst of file events must be quiet before the callback runs.
const SETTLE: Duration = Duration::from_millis(200);

/// Stops watching when dropped.
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
}

/// Calls `on_change` (from a thread of its own) whenever files in `dir` change.
pub fn watch(
    dir: &Path,
    on_change: impl Fn() + Send + Sync + 'static,
) -> Result<WatchGuard, PolicyError> {
    let fail = |e: notify::Error| PolicyError::Watch {
        path: dir.to_owned(),
        message: e.to_string(),
    };
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event {
            if e.kind.is_modify() || e.kind.is_create() || e.kind.is_remove() {
                let _ = tx.send(());
            }
        }
    })
    .map_err(fail)?;
    watcher.watch(dir, RecursiveMode::Recursive).map_err(fail)?;
    std::thread::Builder::new()
        .name("actas-policy-watch".into())
        .spawn(move || {
            // Ends when the watcher (and with it the sender) is dropped.
            while rx.recv().is_ok() {
                while rx.recv_timeout(SETTLE).is_ok() {}
                on_change();
            }
        })
        .map_err(|e| PolicyError::Watch {
            path: dir.to_owned(),
            message: e.to_string(),
        })?;
    Ok(WatchGuard { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_file_change_calls_back_once_per_burst() {
        let dir = tempfile::tempdir().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let _guard = watch(dir.path(), move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join("p.cedar"), format!("// {i}")).unwrap();
        }
        let start = Instant::now();
        while count.load(Ordering::SeqCst) == 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(count.load(Ordering::SeqCst) >= 1, "the change was noticed");
        std::thread::sleep(SETTLE * 3);
        assert!(count.load(Ordering::SeqCst) <= 2, "a burst is coalesced");
    }
}
