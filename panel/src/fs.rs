//! The confined file-system root of one account (`data_dir/files/<username>/`) and every
//! file operation the file manager offers. A user-supplied path is parsed into a
//! `RelPath` (plain components only: no `..`, no absolute paths, no backslashes, no NUL,
//! no drive letters) and then walked one component at a time with `symlink_metadata`:
//! any symbolic link on the way is refused, never followed, so nothing outside the root
//! can be reached. This module must never decode a path (the router decoded it once)
//! and never touch anything outside the root it was given.

use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rand::distributions::Alphanumeric;
use rand::Rng;
use thiserror::Error;
use tokio::io::AsyncWriteExt;

use crate::names::is_valid_username;

/// Longest file or folder name, in bytes (the usual file-system limit).
pub const NAME_MAX_BYTES: usize = 255;
/// Longest path the file manager accepts, in bytes.
const PATH_MAX_BYTES: usize = 4096;
/// Prefix of the scratch files uploads and saves are written to before the rename.
const SCRATCH_PREFIX: &str = ".actas-partial-";

/// Why a file operation was refused or failed.
#[derive(Debug, Error)]
pub enum FsError {
    /// The path is not a plain relative path; the text says why.
    #[error("invalid path: {0}")]
    BadPath(&'static str),
    /// A new name is not a single plain file name; the text says why.
    #[error("invalid name: {0}")]
    BadName(&'static str),
    /// Nothing exists at the path.
    #[error("no such file or folder")]
    NotFound,
    /// The path is or goes through a symbolic link, which the panel never follows.
    #[error("the path goes through a symbolic link, which the file manager does not follow")]
    Symlink,
    /// A folder was expected.
    #[error("that is a file, not a folder")]
    NotAFolder,
    /// A file was expected.
    #[error("that is a folder, not a file")]
    NotAFile,
    /// The new name is taken.
    #[error("\u{201c}{0}\u{201d} already exists in this folder")]
    AlreadyExists(String),
    /// The top folder of the account cannot be renamed or deleted.
    #[error("the top folder cannot be renamed or deleted")]
    RootIsFixed,
    /// The file is too large to show or edit in the browser.
    #[error("the file is larger than {limit} bytes; download it instead")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The upload form sent the file before the folder.
    #[error("the upload form must send the folder (path) before the file")]
    FolderAfterFile,
    /// The disk said no.
    #[error("file system error: {0}")]
    Io(#[from] io::Error),
}

/// A validated path relative to an account's root; the root itself has no parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelPath {
    parts: Vec<String>,
}

impl RelPath {
    /// Parses the path as typed in a query or form. The empty string is the root.
    pub fn parse(text: &str) -> Result<Self, FsError> {
        if text.is_empty() {
            return Ok(RelPath::default());
        }
        if text.len() > PATH_MAX_BYTES {
            return Err(FsError::BadPath("the path is too long"));
        }
        if text.contains('\0') {
            return Err(FsError::BadPath("the path contains a NUL byte"));
        }
        if text.contains('\\') {
            return Err(FsError::BadPath(
                "the path contains a backslash; separate folders with /",
            ));
        }
        if text.starts_with('/') {
            return Err(FsError::BadPath(
                "the path is absolute; give it relative to your files, e.g. public_html/index.html",
            ));
        }
        let parts = text
            .split('/')
            .map(|part| match part {
                "" => Err(FsError::BadPath("the path has an empty component (//)")),
                "." | ".." => Err(FsError::BadPath(
                    "the path contains . or ..; give the folder by name",
                )),
                _ if looks_like_drive(part) => {
                    Err(FsError::BadPath("the path starts with a drive letter"))
                }
                _ if part.len() > NAME_MAX_BYTES => {
                    Err(FsError::BadPath("a component of the path is too long"))
                }
                _ if part.chars().any(char::is_control) => {
                    Err(FsError::BadPath("the path contains a control character"))
                }
                _ => Ok(part.to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RelPath { parts })
    }

    /// Whether this is the account's top folder.
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The last component, if any.
    pub fn name(&self) -> Option<&str> {
        self.parts.last().map(String::as_str)
    }

    /// The folder that contains this path (the root contains itself).
    pub fn parent(&self) -> RelPath {
        let mut parts = self.parts.clone();
        parts.pop();
        RelPath { parts }
    }

    /// This folder's child called `name` (already checked with [`check_name`]).
    pub fn child(&self, name: &str) -> RelPath {
        let mut parts = self.parts.clone();
        parts.push(name.to_owned());
        RelPath { parts }
    }

    /// Each ancestor folder from the first component down to this path, with its name,
    /// for breadcrumbs.
    pub fn crumbs(&self) -> Vec<(String, RelPath)> {
        (1..=self.parts.len())
            .map(|depth| {
                let parts = self.parts[..depth].to_vec();
                (parts[depth - 1].clone(), RelPath { parts })
            })
            .collect()
    }

    fn on_disk(&self, root: &Path) -> PathBuf {
        let mut path = root.to_owned();
        path.extend(&self.parts);
        path
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.parts.join("/"))
    }
}

fn looks_like_drive(part: &str) -> bool {
    let bytes = part.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// Checks a new file or folder name: one component, no `/` or `\`, not `.` or `..`,
/// no NUL or control characters, at most 255 bytes, and not starting like a drive
/// letter (`c:`), which [`RelPath::parse`] refuses, so such a name could never be
/// opened, renamed or deleted again.
pub fn check_name(name: &str) -> Result<&str, FsError> {
    match name {
        "" => Err(FsError::BadName("the name is empty")),
        "." | ".." => Err(FsError::BadName("the name cannot be . or ..")),
        _ if name.len() > NAME_MAX_BYTES => {
            Err(FsError::BadName("the name is longer than 255 bytes"))
        }
        _ if name.contains('/') || name.contains('\\') => {
            Err(FsError::BadName("the name cannot contain / or \\"))
        }
        _ if name.contains('\0') => Err(FsError::BadName("the name contains a NUL byte")),
        _ if name.chars().any(char::is_control) => {
            Err(FsError::BadName("the name contains a control character"))
        }
        _ if looks_like_drive(name) => Err(FsError::BadName(
            "the name cannot start with a letter and a colon (like c:), which reads as a drive letter",
        )),
        _ if name.starts_with(SCRATCH_PREFIX) => Err(FsError::BadName(
            "names starting with .actas-partial- are reserved",
        )),
        _ => Ok(name),
    }
}

/// What a folder entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A folder the file manager can open.
    Folder,
    /// A regular file.
    File,
    /// A symbolic link, listed but never followed.
    Link,
    /// Anything else (sockets, devices, names that are not UTF-8): listed, not usable.
    Other,
}

/// One line of a folder listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name (lossily decoded when it is not UTF-8).
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
    /// Size in bytes (files only; 0 otherwise).
    pub size: u64,
    /// Last modification (unix seconds), when known.
    pub modified: Option<i64>,
}

/// A file opened for download.
#[derive(Debug)]
pub struct Download {
    /// The open file.
    pub file: File,
    /// Its length in bytes.
    pub len: u64,
    /// Its name, for `Content-Disposition`.
    pub name: String,
}

/// One account's confined root folder.
#[derive(Debug, Clone)]
pub struct FilesRoot {
    root: PathBuf,
}

impl FilesRoot {
    /// The root of `username` under `files_dir`. The username is checked again here so
    /// that it can only ever be one plain folder name.
    pub fn for_account(files_dir: &Path, username: &str) -> Result<Self, FsError> {
        if !is_valid_username(username) {
            return Err(FsError::BadName("not a valid account name"));
        }
        Ok(FilesRoot {
            root: files_dir.join(username),
        })
    }

    /// The root folder on disk.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Creates the root and the given starting files, keeping any that already exist.
    pub async fn create_with(&self, files: Vec<(RelPath, String)>) -> Result<(), FsError> {
        let root = self.root.clone();
        blocking(move || {
            fs::create_dir_all(&root)?;
            for (rel, contents) in files {
                let path = rel.on_disk(&root);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                match File::create_new(&path) {
                    Ok(mut file) => file.write_all(contents.as_bytes())?,
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(())
        })
        .await
    }

    /// Lists a folder: folders first, then by name.
    pub async fn list(&self, rel: &RelPath) -> Result<Vec<Entry>, FsError> {
        let this = self.clone();
        let rel = rel.clone();
        blocking(move || {
            let (path, metadata) = this.resolve(&rel)?;
            if !metadata.is_dir() {
                return Err(FsError::NotAFolder);
            }
            let mut entries = Vec::new();
            for item in fs::read_dir(&path)? {
                let item = item?;
                let metadata = item.metadata()?;
                let file_type = metadata.file_type();
                let (name, utf8) = match item.file_name().into_string() {
                    Ok(name) => (name, true),
                    Err(raw) => (raw.to_string_lossy().into_owned(), false),
                };
                if name.starts_with(SCRATCH_PREFIX) {
                    continue;
                }
                let kind = if !utf8 {
                    EntryKind::Other
                } else if file_type.is_symlink() {
                    EntryKind::Link
                } else if file_type.is_dir() {
                    EntryKind::Folder
                } else if file_type.is_file() {
                    EntryKind::File
                } else {
                    EntryKind::Other
                };
                entries.push(Entry {
                    name,
                    kind,
                    size: if kind == EntryKind::File {
                        metadata.len()
                    } else {
                        0
                    },
                    modified: modified(&metadata),
                });
            }
            entries.sort_by(|a, b| {
                (a.kind != EntryKind::Folder, &a.name).cmp(&(b.kind != EntryKind::Folder, &b.name))
            });
            Ok(entries)
        })
        .await
    }

    /// Reads a whole file of at most `limit` bytes.
    pub async fn read(&self, rel: &RelPath, limit: u64) -> Result<Vec<u8>, FsError> {
        let this = self.clone();
        let rel = rel.clone();
        blocking(move || {
            let (path, metadata) = this.resolve_file(&rel)?;
            if metadata.len() > limit {
                return Err(FsError::TooLarge { limit });
            }
            Ok(fs::read(path)?)
        })
        .await
    }

    /// Opens a file for download.
    pub async fn open(&self, rel: &RelPath) -> Result<Download, FsError> {
        let this = self.clone();
        let rel = rel.clone();
        blocking(move || {
            let (path, metadata) = this.resolve_file(&rel)?;
            let name = rel.name().unwrap_or("download").to_owned();
            Ok(Download {
                file: File::open(path)?,
                len: metadata.len(),
                name,
            })
        })
        .await
    }

    /// Saves `contents` to a file (creating it if needed) by writing a scratch file in
    /// the same folder and renaming it over the target.
    pub async fn save(&self, rel: &RelPath, contents: Vec<u8>) -> Result<(), FsError> {
        let mut staged = self.stage(rel).await?;
        staged.write(&contents).await?;
        staged.commit().await
    }

    /// Starts writing a file atomically: checks the destination, then opens a scratch
    /// file beside it. Nothing is visible at `rel` until [`Staged::commit`].
    pub async fn stage(&self, rel: &RelPath) -> Result<Staged, FsError> {
        let Some(name) = rel.name() else {
            return Err(FsError::NotAFile);
        };
        check_name(name)?;
        let this = self.clone();
        let rel = rel.clone();
        let (target, scratch) = blocking(move || {
            let folder = this.resolve_folder(&rel.parent())?;
            let target = rel.on_disk(&this.root);
            this.check_writable_target(&target)?;
            let suffix: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(16)
                .map(char::from)
                .collect();
            Ok((target, folder.join(format!("{SCRATCH_PREFIX}{suffix}"))))
        })
        .await?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&scratch)
            .await?;
        Ok(Staged {
            file: Some(file),
            scratch,
            target,
            root: self.clone(),
        })
    }

    /// Creates the folder `name` inside `parent`.
    pub async fn create_folder(&self, parent: &RelPath, name: &str) -> Result<RelPath, FsError> {
        let name = check_name(name)?.to_owned();
        let this = self.clone();
        let parent = parent.clone();
        blocking(move || {
            let folder = this.resolve_folder(&parent)?;
            match fs::create_dir(folder.join(&name)) {
                Ok(()) => Ok(parent.child(&name)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    Err(FsError::AlreadyExists(name))
                }
                Err(error) => Err(error.into()),
            }
        })
        .await
    }

    /// Renames a file or folder within its folder.
    pub async fn rename(&self, rel: &RelPath, new_name: &str) -> Result<RelPath, FsError> {
        if rel.is_root() {
            return Err(FsError::RootIsFixed);
        }
        let new_name = check_name(new_name)?.to_owned();
        let this = self.clone();
        let rel = rel.clone();
        blocking(move || {
            let (source, _) = this.resolve(&rel)?;
            let renamed = rel.parent().child(&new_name);
            let target = renamed.on_disk(&this.root);
            if exists_no_follow(&target)? {
                return Err(FsError::AlreadyExists(new_name));
            }
            fs::rename(source, target)?;
            Ok(renamed)
        })
        .await
    }

    /// Deletes a file, or a folder with everything in it (links inside are removed, not
    /// followed).
    pub async fn delete(&self, rel: &RelPath) -> Result<EntryKind, FsError> {
        if rel.is_root() {
            return Err(FsError::RootIsFixed);
        }
        let this = self.clone();
        let rel = rel.clone();
        blocking(move || {
            let (path, metadata) = this.resolve(&rel)?;
            if metadata.is_dir() {
                fs::remove_dir_all(path)?;
                Ok(EntryKind::Folder)
            } else {
                fs::remove_file(path)?;
                Ok(EntryKind::File)
            }
        })
        .await
    }

    /// Bytes used by the account's regular files (links are not followed).
    pub async fn disk_usage(&self) -> Result<u64, FsError> {
        let root = self.root.clone();
        blocking(move || {
            let mut total = 0u64;
            let mut pending = vec![root];
            while let Some(folder) = pending.pop() {
                let items = match fs::read_dir(&folder) {
                    Ok(items) => items,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(error.into()),
                };
                for item in items {
                    let item = item?;
                    let metadata = item.metadata()?;
                    if metadata.is_dir() {
                        pending.push(item.path());
                    } else if metadata.is_file() {
                        total = total.saturating_add(metadata.len());
                    }
                }
            }
            Ok(total)
        })
        .await
    }

    /// Walks `rel` from the root, refusing any symbolic link on the way, and returns the
    /// path on disk with its own (not followed) metadata.
    fn resolve(&self, rel: &RelPath) -> Result<(PathBuf, Metadata), FsError> {
        let mut path = self.root.clone();
        let mut metadata = metadata_no_follow(&path)?;
        if !metadata.is_dir() {
            return Err(FsError::NotFound);
        }
        for (index, part) in rel.parts.iter().enumerate() {
            if index > 0 && !metadata.is_dir() {
                return Err(FsError::NotFound);
            }
            path.push(part);
            metadata = metadata_no_follow(&path)?;
        }
        // Belt and braces: the canonical form must still lie under the canonical root.
        let canonical_root = fs::canonicalize(&self.root)?;
        if !fs::canonicalize(&path)?.starts_with(&canonical_root) {
            return Err(FsError::Symlink);
        }
        Ok((path, metadata))
    }

    fn resolve_folder(&self, rel: &RelPath) -> Result<PathBuf, FsError> {
        let (path, metadata) = self.resolve(rel)?;
        if metadata.is_dir() {
            Ok(path)
        } else {
            Err(FsError::NotAFolder)
        }
    }

    fn resolve_file(&self, rel: &RelPath) -> Result<(PathBuf, Metadata), FsError> {
        let (path, metadata) = self.resolve(rel)?;
        if metadata.is_dir() {
            Err(FsError::NotAFile)
        } else if metadata.is_file() {
            Ok((path, metadata))
        } else {
            Err(FsError::NotFound)
        }
    }

    /// A file may be written where nothing exists yet or over a regular file.
    fn check_writable_target(&self, target: &Path) -> Result<(), FsError> {
        match fs::symlink_metadata(target) {
            Ok(metadata) if metadata.file_type().is_symlink() => Err(FsError::Symlink),
            Ok(metadata) if metadata.is_dir() => Err(FsError::NotAFile),
            Ok(metadata) if !metadata.is_file() => Err(FsError::NotAFile),
            Ok(_) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// A file being written beside its destination. Dropping it without
/// [`Staged::commit`] removes the scratch file.
#[derive(Debug)]
pub struct Staged {
    file: Option<tokio::fs::File>,
    scratch: PathBuf,
    target: PathBuf,
    root: FilesRoot,
}

impl Staged {
    /// Appends bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), FsError> {
        match self.file.as_mut() {
            Some(file) => Ok(file.write_all(bytes).await?),
            None => Err(FsError::Io(io::Error::other("staged file already closed"))),
        }
    }

    /// Flushes the bytes to disk and closes the scratch file, so that a request staging
    /// many files holds one descriptor at a time. Nothing is visible until [`Staged::commit`].
    pub async fn finish(&mut self) -> Result<(), FsError> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        Ok(())
    }

    /// Flushes the scratch file (unless [`Staged::finish`] did) and renames it over the
    /// destination.
    pub async fn commit(mut self) -> Result<(), FsError> {
        self.finish().await?;
        let scratch = self.scratch.clone();
        let target = self.target.clone();
        let root = self.root.clone();
        blocking(move || {
            // The destination may have changed while the bytes were arriving.
            root.check_writable_target(&target)?;
            fs::rename(&scratch, &target)?;
            Ok(())
        })
        .await?;
        self.scratch = PathBuf::new();
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.scratch.as_os_str().is_empty() {
            if let Err(error) = fs::remove_file(&self.scratch) {
                tracing::warn!(path = %self.scratch.display(), %error, "cannot remove scratch file");
            }
        }
    }
}

fn metadata_no_follow(path: &Path) -> Result<Metadata, FsError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => Err(FsError::Symlink),
        Ok(metadata) => Ok(metadata),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(FsError::NotFound),
        Err(error) if error.kind() == io::ErrorKind::NotADirectory => Err(FsError::NotFound),
        Err(error) => Err(error.into()),
    }
}

fn exists_no_follow(path: &Path) -> Result<bool, FsError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error.into()),
    }
}

fn modified(metadata: &Metadata) -> Option<i64> {
    let since_epoch = metadata.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_secs()).ok()
}

async fn blocking<T, F>(work: F) -> Result<T, FsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, FsError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| FsError::Io(io::Error::other(error)))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_parse() {
        assert!(RelPath::parse("").unwrap().is_root());
        let rel = RelPath::parse("public_html/index.html").unwrap();
        assert_eq!(rel.to_string(), "public_html/index.html");
        assert_eq!(rel.name(), Some("index.html"));
        assert_eq!(rel.parent().to_string(), "public_html");
        assert_eq!(RelPath::parse("%2e%2e").unwrap().to_string(), "%2e%2e");
        assert_eq!(RelPath::parse("a..b/...").unwrap().to_string(), "a..b/...");
    }

    #[test]
    fn escaping_paths_are_refused() {
        for bad in [
            "..",
            "../",
            "../etc/passwd",
            "a/../../x",
            "a/..",
            "./a",
            "/etc/passwd",
            "//etc",
            "a//b",
            "a/",
            "..\\x",
            "a\\b",
            "a\0b",
            "C:",
            "c:/windows",
            "x/C:foo",
            "a\nb",
        ] {
            assert!(
                matches!(RelPath::parse(bad), Err(FsError::BadPath(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn new_names_are_single_components() {
        assert_eq!(check_name("report 2024.pdf").unwrap(), "report 2024.pdf");
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a\0",
            "\u{7}",
            ".actas-partial-x",
            "c:stuff",
            "C:",
            &"x".repeat(256),
        ] {
            assert!(
                matches!(check_name(bad), Err(FsError::BadName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn crumbs_lead_down_to_the_path() {
        let crumbs = RelPath::parse("a/b/c").unwrap().crumbs();
        let shown: Vec<(String, String)> = crumbs
            .into_iter()
            .map(|(name, rel)| (name, rel.to_string()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("a".to_owned(), "a".to_owned()),
                ("b".to_owned(), "a/b".to_owned()),
                ("c".to_owned(), "a/b/c".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn links_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret.txt"), "secret").unwrap();
        let root = FilesRoot::for_account(dir.path(), "carl").unwrap();
        root.create_with(Vec::new()).await.unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("dir-link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.path().join("file-link"))
            .unwrap();
        for path in ["dir-link", "dir-link/secret.txt", "file-link"] {
            let rel = RelPath::parse(path).unwrap();
            assert!(
                matches!(root.read(&rel, 1024).await, Err(FsError::Symlink)),
                "{path}"
            );
            assert!(
                matches!(root.delete(&rel).await, Err(FsError::Symlink)),
                "{path}"
            );
        }
        let rel = RelPath::parse("dir-link/new.txt").unwrap();
        assert!(matches!(
            root.save(&rel, b"x".to_vec()).await,
            Err(FsError::Symlink)
        ));
        let rel = RelPath::parse("file-link").unwrap();
        assert!(matches!(
            root.save(&rel, b"x".to_vec()).await,
            Err(FsError::Symlink)
        ));
        assert_eq!(
            fs::read_to_string(outside.join("secret.txt")).unwrap(),
            "secret"
        );
        assert!(!outside.join("new.txt").exists());
    }

    #[tokio::test]
    async fn a_save_replaces_atomically_and_leaves_no_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::for_account(dir.path(), "carl").unwrap();
        root.create_with(Vec::new()).await.unwrap();
        let rel = RelPath::parse("notes.txt").unwrap();
        root.save(&rel, b"one".to_vec()).await.unwrap();
        root.save(&rel, b"two".to_vec()).await.unwrap();
        assert_eq!(root.read(&rel, 10).await.unwrap(), b"two");
        let names: Vec<String> = fs::read_dir(root.path())
            .unwrap()
            .map(|item| item.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["notes.txt".to_owned()]);
    }

    #[tokio::test]
    async fn an_abandoned_stage_is_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::for_account(dir.path(), "carl").unwrap();
        root.create_with(Vec::new()).await.unwrap();
        let mut staged = root
            .stage(&RelPath::parse("big.bin").unwrap())
            .await
            .unwrap();
        staged.write(b"partial").await.unwrap();
        drop(staged);
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }
}
