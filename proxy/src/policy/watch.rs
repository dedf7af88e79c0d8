//! Watching the policy directory: a change to any file there calls back once, after the
//! burst of events an editor's save makes has settled.
//!
//! The directory is watched by its path, not only by the directory it named at start:
//! deployments replace it (a new release directory and a symlink swapped to it, or
//! `mv policies policies.old` and a fresh copy), and a watch on the old directory would
//! see nothing of the new one. So the watch is armed again, with a reload, whenever the
//! path comes to name another directory; a path that names none is logged as an error,
//! once, while the last good policies stay in force.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};

use super::PolicyError;

/// How long a burst of file events must be quiet before the callback runs.
const SETTLE: Duration = Duration::from_millis(200);

/// How often the path is checked for naming another directory than the one watched: a
/// symlink swapped higher up sends the watch no event at all.
const RECHECK: Duration = Duration::from_secs(1);

/// What the watching thread hears.
enum Heard {
    /// A file in the directory changed.
    Change,
    /// The watched directory itself was moved or removed, or the watch reported an error:
    /// arm it again.
    Lost,
    /// The guard was dropped.
    Stop,
}

/// Stops watching when dropped.
pub struct WatchGuard {
    stop: mpsc::Sender<Heard>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(Heard::Stop);
    }
}

/// Calls `on_change` (from a thread of its own) whenever files in `dir` change, and when
/// `dir` comes to name another directory.
pub fn watch(
    dir: &Path,
    on_change: impl Fn() + Send + Sync + 'static,
) -> Result<WatchGuard, PolicyError> {
    let fail = |message: String| PolicyError::Watch {
        path: dir.to_owned(),
        message,
    };
    let (tx, rx) = mpsc::channel::<Heard>();
    let watched = identity(dir);
    let watcher = arm(dir, tx.clone()).map_err(|e| fail(e.to_string()))?;
    let mut watching = Watching {
        dir: dir.to_owned(),
        tx: tx.clone(),
        watcher: Some(watcher),
        watched,
        lost: false,
    };
    std::thread::Builder::new()
        .name("actas-policy-watch".into())
        .spawn(move || loop {
            let (mut changed, mut lost) = match rx.recv_timeout(RECHECK) {
                Ok(Heard::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Heard::Change) => (true, false),
                Ok(Heard::Lost) => (true, true),
                Err(RecvTimeoutError::Timeout) => (false, false),
            };
            if changed {
                loop {
                    match rx.recv_timeout(SETTLE) {
                        Ok(Heard::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Heard::Change) => {}
                        Ok(Heard::Lost) => lost = true,
                        Err(RecvTimeoutError::Timeout) => break,
                    }
                }
            }
            changed |= watching.keep(lost);
            if changed {
                on_change();
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    Ok(WatchGuard { stop: tx })
}

/// The watching thread's state.
struct Watching {
    dir: PathBuf,
    tx: mpsc::Sender<Heard>,
    watcher: Option<notify::RecommendedWatcher>,
    /// The directory the watch is on, as (device, inode); `None` while there is no watch.
    watched: Option<(u64, u64)>,
    /// The loss of the watch has been logged.
    lost: bool,
}

impl Watching {
    /// Arms the watch again if it was lost or the path names another directory now.
    /// Returns whether it did, so that the policies are read again from there.
    fn keep(&mut self, lost: bool) -> bool {
        let now = identity(&self.dir);
        if !lost && now == self.watched {
            return false;
        }
        // The old watch goes first: it may be on the same directory.
        self.watcher = None;
        self.watched = None;
        let error = match now {
            None => "the path names no directory".to_owned(),
            Some(_) => match arm(&self.dir, self.tx.clone()) {
                Ok(w) => {
                    self.watcher = Some(w);
                    self.watched = now;
                    if std::mem::take(&mut self.lost) {
                        tracing::info!(dir = %self.dir.display(), "watching the policy directory again");
                    }
                    return true;
                }
                Err(e) => e.to_string(),
            },
        };
        if !std::mem::replace(&mut self.lost, true) {
            tracing::error!(
                dir = %self.dir.display(),
                error = %error,
                "cannot watch the policy directory; the policies in force stay, changes are not picked up until it can be watched again (or on SIGHUP)"
            );
        }
        false
    }
}

/// The directory `dir` names now (through any symlinks), as (device, inode).
fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// Watches `dir`, sending what it sees to `tx`.
fn arm(dir: &Path, tx: mpsc::Sender<Heard>) -> notify::Result<notify::RecommendedWatcher> {
    let root = dir.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let heard = match event {
            Ok(e)
                if e.paths.contains(&root)
                    && (e.kind.is_remove()
                        || matches!(e.kind, EventKind::Modify(ModifyKind::Name(_)))) =>
            {
                Heard::Lost
            }
            Ok(e) if e.kind.is_modify() || e.kind.is_create() || e.kind.is_remove() => {
                Heard::Change
            }
            Ok(_) => return,
            Err(_) => Heard::Lost,
        };
        let _ = tx.send(heard);
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// Watches `dir`, counting the callbacks.
    fn counted(dir: &Path) -> (WatchGuard, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let guard = watch(dir, move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        (guard, count)
    }

    /// Waits (up to 5 s) for the count to pass `seen`.
    fn called_after(count: &AtomicUsize, seen: usize) -> bool {
        let start = Instant::now();
        while count.load(Ordering::SeqCst) <= seen && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        count.load(Ordering::SeqCst) > seen
    }

    /// The count once the callbacks have stopped coming.
    fn settled(count: &AtomicUsize) -> usize {
        std::thread::sleep(RECHECK + SETTLE * 2);
        count.load(Ordering::SeqCst)
    }

    #[test]
    fn a_file_change_calls_back_once_per_burst() {
        let dir = tempfile::tempdir().unwrap();
        let (_guard, count) = counted(dir.path());
        for i in 0..5 {
            std::fs::write(dir.path().join("p.cedar"), format!("// {i}")).unwrap();
        }
        assert!(called_after(&count, 0), "the change was noticed");
        std::thread::sleep(SETTLE * 3);
        assert!(count.load(Ordering::SeqCst) <= 2, "a burst is coalesced");
    }

    #[test]
    fn a_directory_moved_away_and_copied_back_is_watched_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("policies");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("p.cedar"), "// 1").unwrap();
        let (_guard, count) = counted(&dir);

        std::fs::rename(&dir, root.path().join("policies.old")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("p.cedar"), "// 1").unwrap();
        let seen = settled(&count);
        assert!(seen >= 1, "the replacement itself reloads");

        std::fs::write(dir.join("p.cedar"), "// 2").unwrap();
        assert!(called_after(&count, seen), "a change in the new directory");
    }

    #[test]
    fn a_symlink_swapped_to_another_release_is_watched_there() {
        let root = tempfile::tempdir().unwrap();
        let release = |n: &str| {
            let d = root.path().join(n).join("policies");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("p.cedar"), format!("// {n}")).unwrap();
            d
        };
        let (v1, v2) = (release("v1"), release("v2"));
        let link = root.path().join("policies");
        std::os::unix::fs::symlink(&v1, &link).unwrap();
        let (_guard, count) = counted(&link);

        // `ln -sfn` done atomically: a new link renamed over the old one.
        let next = root.path().join("policies.next");
        std::os::unix::fs::symlink(&v2, &next).unwrap();
        std::fs::rename(&next, &link).unwrap();
        assert!(called_after(&count, 0), "the swap itself reloads");
        let seen = settled(&count);

        std::fs::write(v2.join("p.cedar"), "// v2, edited").unwrap();
        assert!(called_after(&count, seen), "a change in the new release");
    }
}
