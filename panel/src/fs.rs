//! The confined file-system root of one account (`data_dir/files/<username>/`) and every
//! file operation the file manager offers. A user-supplied path is parsed into a
//! `RelPath` (plain components only: no `..`, no absolute paths, no backslashes, no NUL,
//! no drive letters) and then opened one component at a time, each folder inside the one
//! opened before it (`openat` with `O_NOFOLLOW`), and the operation is done on the last
//! folder opened (`*at` calls), never on a path again. A symbolic link on the way is
//! refused, never followed; and since no step goes back to a path, a customer with a
//! shell who swaps a folder for a link between the panel's check and its use gets
//! nothing outside the root either. This module must never decode a path (the router
//! decoded it once) and never touch anything outside the root it was given.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::distributions::Alphanumeric;
use rand::Rng;
use rustix::fs::{
    fchmod, mkdirat, openat, renameat, renameat_with, statat, unlinkat, AtFlags, Dir, FileType,
    Mode, OFlags, RenameFlags, Stat, CWD,
};
use rustix::io::Errno;
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
    /// Folders nested deeper than the file manager walks.
    #[error(
        "the folder is nested more than {DEPTH_MAX} levels deep; delete its deepest folders first"
    )]
    TooDeep,
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
        let this = self.clone();
        blocking(move || {
            fs::create_dir_all(&this.root)?;
            for (rel, contents) in files {
                let Some((name, folders)) = rel.parts.split_last() else {
                    continue;
                };
                let mut folder = this.open_root()?;
                for part in folders {
                    match mkdirat(&folder, part.as_str(), FOLDER_MODE) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(error) => return Err(error.into()),
                    }
                    folder = open_folder_at(&folder, part)?;
                }
                match openat(&folder, name.as_str(), NEW_FILE, FILE_MODE) {
                    Ok(fd) => File::from(fd).write_all(contents.as_bytes())?,
                    Err(Errno::EXIST) => {}
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
            let folder = this.open_folder(&rel)?;
            let mut entries = Vec::new();
            for raw in read_folder(&folder)? {
                // Gone since the folder was read: not listed.
                let Some(stat) = stat_no_follow(&folder, &*raw)? else {
                    continue;
                };
                let (name, utf8) = match raw.to_str() {
                    Ok(name) => (name.to_owned(), true),
                    Err(_) => (raw.to_string_lossy().into_owned(), false),
                };
                if name.starts_with(SCRATCH_PREFIX) {
                    continue;
                }
                let kind = match FileType::from_raw_mode(stat.st_mode) {
                    // A name the file manager could not open again (made from a shell,
                    // e.g. `c:stuff`) is listed without links or actions.
                    _ if !utf8 || check_name(&name).is_err() => EntryKind::Other,
                    FileType::Symlink => EntryKind::Link,
                    FileType::Directory => EntryKind::Folder,
                    FileType::RegularFile => EntryKind::File,
                    _ => EntryKind::Other,
                };
                entries.push(Entry {
                    name,
                    kind,
                    size: if kind == EntryKind::File {
                        size(&stat)
                    } else {
                        0
                    },
                    modified: modified(&stat),
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
            let (file, len) = this.open_file(&rel)?;
            if len > limit {
                return Err(FsError::TooLarge { limit });
            }
            // The file may grow while it is read: never more than the limit.
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
            if bytes.len() as u64 > limit {
                return Err(FsError::TooLarge { limit });
            }
            Ok(bytes)
        })
        .await
    }

    /// Opens a file for download.
    pub async fn open(&self, rel: &RelPath) -> Result<Download, FsError> {
        let this = self.clone();
        let rel = rel.clone();
        blocking(move || {
            let (file, len) = this.open_file(&rel)?;
            let name = rel.name().unwrap_or("download").to_owned();
            Ok(Download { file, len, name })
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
        let name = check_name(name)?.to_owned();
        self.destination(&rel.parent()).await?.stage(&name).await
    }

    /// Opens the folder `rel` as the destination of staged files. Every file staged
    /// through it shares this one open folder, so an upload of many files holds one
    /// descriptor for its folder, not one per file.
    pub async fn destination(&self, rel: &RelPath) -> Result<Destination, FsError> {
        let this = self.clone();
        let rel = rel.clone();
        blocking(move || {
            Ok(Destination {
                folder: Arc::new(this.open_folder(&rel)?),
            })
        })
        .await
    }

    /// Creates the folder `name` inside `parent`.
    pub async fn create_folder(&self, parent: &RelPath, name: &str) -> Result<RelPath, FsError> {
        let name = check_name(name)?.to_owned();
        let this = self.clone();
        let parent = parent.clone();
        blocking(move || {
            let folder = this.open_folder(&parent)?;
            match mkdirat(&folder, name.as_str(), FOLDER_MODE) {
                Ok(()) => Ok(parent.child(&name)),
                Err(Errno::EXIST) => Err(FsError::AlreadyExists(name)),
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
            let (folder, name) = this.open_parent(&rel)?;
            match stat_no_follow(&folder, name)?.map(|stat| FileType::from_raw_mode(stat.st_mode)) {
                None => return Err(FsError::NotFound),
                Some(FileType::Symlink) => return Err(FsError::Symlink),
                Some(_) => {}
            }
            let taken = || FsError::AlreadyExists(new_name.clone());
            match renameat_with(
                &folder,
                name,
                &folder,
                new_name.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {}
                Err(Errno::EXIST) => return Err(taken()),
                // A file system that cannot refuse to replace: look first.
                Err(Errno::INVAL) => {
                    if stat_no_follow(&folder, new_name.as_str())?.is_some() {
                        return Err(taken());
                    }
                    renameat(&folder, name, &folder, new_name.as_str())?;
                }
                Err(Errno::NOENT) => return Err(FsError::NotFound),
                Err(error) => return Err(error.into()),
            }
            Ok(rel.parent().child(&new_name))
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
            let (folder, name) = this.open_parent(&rel)?;
            let Some(stat) = stat_no_follow(&folder, name)? else {
                return Err(FsError::NotFound);
            };
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Symlink => Err(FsError::Symlink),
                FileType::Directory => {
                    remove_tree(&folder, name)?;
                    Ok(EntryKind::Folder)
                }
                _ => {
                    unlinkat(&folder, name, AtFlags::empty())?;
                    Ok(EntryKind::File)
                }
            }
        })
        .await
    }

    /// Bytes used by the account's regular files (links are not followed; folders nested
    /// more than [`DEPTH_MAX`] deep are not counted).
    pub async fn disk_usage(&self) -> Result<u64, FsError> {
        let this = self.clone();
        blocking(move || {
            let root = match this.open_root() {
                Ok(root) => root,
                Err(FsError::NotFound) => return Ok(0),
                Err(error) => return Err(error),
            };
            let mut total = 0u64;
            walk(root, |depth, stat| {
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::Directory => Ok(depth < DEPTH_MAX),
                    FileType::RegularFile => {
                        total = total.saturating_add(size(stat));
                        Ok(false)
                    }
                    _ => Ok(false),
                }
            })?;
            Ok(total)
        })
        .await
    }

    /// The account's root folder, opened. Its own name (the account's folder) is not
    /// followed if it is a link; the folders above it are the operator's.
    fn open_root(&self) -> Result<OwnedFd, FsError> {
        open_folder_at(CWD, &self.root)
    }

    /// Opens the folder `rel`, one name at a time from the root, each opened in the folder
    /// the step before opened and never through a link. A link anywhere on the way is
    /// refused; a folder renamed or swapped for a link meanwhile cannot lead outside the
    /// root, because no step goes back to a path.
    fn open_folder(&self, rel: &RelPath) -> Result<OwnedFd, FsError> {
        let mut folder = self.open_root()?;
        for (index, part) in rel.parts.iter().enumerate() {
            folder = match open_folder_at(&folder, part) {
                // Only the last name may be a file that is not a folder; on the way it
                // means the path does not exist.
                Err(FsError::NotAFolder) if index + 1 < rel.parts.len() => {
                    return Err(FsError::NotFound)
                }
                other => other?,
            };
        }
        Ok(folder)
    }

    /// The open folder holding `rel`, and `rel`'s own name in it.
    fn open_parent<'r>(&self, rel: &'r RelPath) -> Result<(OwnedFd, &'r str), FsError> {
        let Some(name) = rel.name() else {
            return Err(FsError::NotAFile);
        };
        let folder = match self.open_folder(&rel.parent()) {
            Err(FsError::NotAFolder) => Err(FsError::NotFound),
            other => other,
        }?;
        Ok((folder, name))
    }

    /// Opens the regular file `rel` for reading, with its length.
    fn open_file(&self, rel: &RelPath) -> Result<(File, u64), FsError> {
        let (folder, name) = self.open_parent(rel)?;
        // Non-blocking, so that a named pipe cannot hold the request; a regular file
        // reads the same either way.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let file = File::from(openat(&folder, name, flags, Mode::empty()).map_err(not_followed)?);
        let metadata = file.metadata()?;
        if metadata.is_dir() {
            Err(FsError::NotAFile)
        } else if metadata.is_file() {
            Ok((file, metadata.len()))
        } else {
            Err(FsError::NotFound)
        }
    }
}

/// A folder opened once to receive staged files (see [`FilesRoot::destination`]).
#[derive(Debug, Clone)]
pub struct Destination {
    folder: Arc<OwnedFd>,
}

impl Destination {
    /// Starts writing the file `name` in this folder: checks the destination, then opens
    /// a scratch file beside it. When it replaces a file, the scratch file gets that
    /// file's permissions, so that saving a 0600 secret or a 0755 script keeps them.
    /// Nothing is visible until [`Staged::commit`].
    pub async fn stage(&self, name: &str) -> Result<Staged, FsError> {
        let target = check_name(name)?.to_owned();
        let folder = self.folder.clone();
        blocking(move || {
            let replaced = check_writable_target(&folder, &target)?;
            let suffix: String = rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(16)
                .map(char::from)
                .collect();
            let scratch = format!("{SCRATCH_PREFIX}{suffix}");
            let file = File::from(openat(&*folder, scratch.as_str(), NEW_FILE, FILE_MODE)?);
            // Built before anything else can fail, so that dropping it removes the scratch.
            let mut staged = Staged {
                file: None,
                folder,
                scratch: Some(scratch),
                target,
            };
            if let Some(mode) = replaced {
                fchmod(&file, mode)?;
            }
            staged.file = Some(tokio::fs::File::from_std(file));
            Ok(staged)
        })
        .await
    }
}

/// A file being written beside its destination. Dropping it without
/// [`Staged::commit`] removes the scratch file.
#[derive(Debug)]
pub struct Staged {
    file: Option<tokio::fs::File>,
    /// The destination's folder, open: the scratch file is renamed inside it, wherever
    /// that folder has moved meanwhile.
    folder: Arc<OwnedFd>,
    /// The scratch file's name; `None` once it has been renamed.
    scratch: Option<String>,
    target: String,
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
    /// many files holds one scratch file open at a time (and, besides, one open folder
    /// per [`Destination`]). Nothing is visible until [`Staged::commit`].
    pub async fn finish(&mut self) -> Result<(), FsError> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        Ok(())
    }

    /// Flushes the scratch file (unless [`Staged::finish`] did) and renames it over the
    /// destination.
    pub async fn commit(self) -> Result<(), FsError> {
        commit_all(vec![self]).await.map_err(|(_, error)| error)
    }
}

/// Commits staged files together. Every destination is checked first, so one that became
/// a folder or a link while the upload arrived refuses them all and none lands; then each
/// is renamed into place. On failure, says how many landed (only a rename failing after
/// every check passed lands some and not all) and why the next did not.
pub async fn commit_all(mut staged: Vec<Staged>) -> Result<(), (usize, FsError)> {
    for file in &mut staged {
        file.finish().await.map_err(|error| (0, error))?;
    }
    let mut land = move || -> Result<(), (usize, FsError)> {
        for file in &staged {
            check_writable_target(&file.folder, &file.target).map_err(|error| (0, error))?;
        }
        for (landed, file) in staged.iter_mut().enumerate() {
            if let Some(scratch) = &file.scratch {
                renameat(
                    &*file.folder,
                    scratch.as_str(),
                    &*file.folder,
                    file.target.as_str(),
                )
                .map_err(|error| (landed, FsError::from(error)))?;
                file.scratch = None;
            }
        }
        Ok(())
    };
    blocking(move || Ok(land()))
        .await
        .unwrap_or_else(|error| Err((0, error)))
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(scratch) = &self.scratch {
            if let Err(error) = unlinkat(&*self.folder, scratch.as_str(), AtFlags::empty()) {
                tracing::warn!(%scratch, %error, "cannot remove scratch file");
            }
        }
    }
}

/// Flags of a folder opened on the way down: never through a link.
const FOLDER: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Flags of a file created by the file manager: only a new one, never through a link.
const NEW_FILE: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// Permissions of a new file, before the process's umask (as `std::fs` creates one).
const FILE_MODE: Mode = Mode::from_bits_truncate(0o666);
/// Permissions of a new folder, before the process's umask.
const FOLDER_MODE: Mode = Mode::from_bits_truncate(0o777);
/// Deepest nesting of folders the file manager deletes or counts (each level holds an
/// open folder while it is walked).
pub const DEPTH_MAX: usize = 256;

/// Opens the folder `name` inside `folder` without following a link.
fn open_folder_at<P: rustix::path::Arg + Copy>(
    folder: impl AsFd,
    name: P,
) -> Result<OwnedFd, FsError> {
    let folder = folder.as_fd();
    match openat(folder, name, FOLDER, Mode::empty()) {
        Ok(fd) => Ok(fd),
        // The name is a link (O_NOFOLLOW), or not a folder (O_DIRECTORY; some kernels
        // say so for a link too): look at it to say which.
        Err(Errno::LOOP | Errno::NOTDIR) => match stat_no_follow(folder, name)? {
            Some(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink => {
                Err(FsError::Symlink)
            }
            Some(_) => Err(FsError::NotAFolder),
            None => Err(FsError::NotFound),
        },
        Err(error) => Err(not_followed(error)),
    }
}

/// Walks the folder `top` depth first, each folder opened inside the one above without
/// following a link, holding one open folder per level. `visit` is shown every entry with
/// its depth (1 for what is in `top`) and says whether to go into it (a folder only); a
/// folder gone or swapped for a link by the time its turn comes is skipped.
fn walk(
    top: OwnedFd,
    mut visit: impl FnMut(usize, &Stat) -> Result<bool, FsError>,
) -> Result<(), FsError> {
    let mut levels: Vec<(OwnedFd, Vec<CString>)> = Vec::new();
    let mut entered = Some(top);
    loop {
        if let Some(folder) = entered.take() {
            let depth = levels.len() + 1;
            let mut inner = Vec::new();
            for name in read_folder(&folder)? {
                if let Some(stat) = stat_no_follow(&folder, &*name)? {
                    if visit(depth, &stat)? && FileType::from_raw_mode(stat.st_mode).is_dir() {
                        inner.push(name);
                    }
                }
            }
            levels.push((folder, inner));
        }
        let Some((folder, inner)) = levels.last_mut() else {
            return Ok(());
        };
        match inner.pop() {
            Some(name) => match open_folder_at(&*folder, &*name) {
                Ok(next) => entered = Some(next),
                Err(FsError::Io(error)) => return Err(FsError::Io(error)),
                Err(_) => {}
            },
            None => {
                levels.pop();
            }
        }
    }
}

/// The names in an open folder, without `.` and `..`.
fn read_folder(folder: &OwnedFd) -> Result<Vec<CString>, FsError> {
    let mut names = Vec::new();
    for entry in Dir::read_from(folder)? {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// What is at `name` in `folder` (the link itself if it is one); `None` if nothing is.
fn stat_no_follow(
    folder: impl AsFd,
    name: impl rustix::path::Arg,
) -> Result<Option<Stat>, FsError> {
    match statat(folder, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// A file may be written where nothing exists yet or over a regular file; for a regular
/// file, its permissions. The set-user-ID and set-group-ID bits are not carried over, as
/// the kernel drops them from a file written by anyone but root.
fn check_writable_target(folder: &OwnedFd, name: &str) -> Result<Option<Mode>, FsError> {
    let Some(stat) = stat_no_follow(folder, name)? else {
        return Ok(None);
    };
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(Some(
            Mode::from_raw_mode(stat.st_mode) - Mode::SUID - Mode::SGID,
        )),
        FileType::Symlink => Err(FsError::Symlink),
        _ => Err(FsError::NotAFile),
    }
}

/// Removes the folder `name` in `folder` and everything in it, each level opened inside
/// the one above without following a link (a link inside is removed, not followed).
fn remove_tree(folder: &OwnedFd, name: &str) -> Result<(), FsError> {
    // Refused before anything is removed when it is nested too deep to remove whole.
    walk(
        open_folder_at(folder, name)?,
        |depth, stat| match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory if depth >= DEPTH_MAX => Err(FsError::TooDeep),
            FileType::Directory => Ok(true),
            _ => Ok(false),
        },
    )?;
    // Depth first, one open folder per level: its name, the names left in it, the folder.
    let top = open_folder_at(folder, name)?;
    let top_name = CString::new(name).map_err(|_| FsError::NotFound)?;
    let mut levels = vec![(top_name, read_folder(&top)?, top)];
    loop {
        let depth = levels.len();
        let Some((_, names, current)) = levels.last_mut() else {
            return Ok(());
        };
        match names.pop() {
            Some(child) => {
                let is_folder = stat_no_follow(&*current, &*child)?
                    .is_some_and(|stat| FileType::from_raw_mode(stat.st_mode).is_dir());
                if !is_folder {
                    match unlinkat(&*current, &*child, AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(error) => return Err(error.into()),
                    }
                } else if depth >= DEPTH_MAX {
                    return Err(FsError::TooDeep);
                } else {
                    let next = open_folder_at(&*current, &*child)?;
                    let inside = read_folder(&next)?;
                    levels.push((child, inside, next));
                }
            }
            None => {
                if let Some((done, _, _)) = levels.pop() {
                    let parent = levels.last().map_or(folder, |(_, _, fd)| fd);
                    unlinkat(parent, &*done, AtFlags::REMOVEDIR)?;
                }
            }
        }
    }
}

/// A link met where the walk does not follow links is refused as one; a name that is not
/// there is not found.
fn not_followed(error: Errno) -> FsError {
    match error {
        Errno::LOOP => FsError::Symlink,
        Errno::NOENT => FsError::NotFound,
        other => other.into(),
    }
}

impl From<Errno> for FsError {
    fn from(error: Errno) -> Self {
        FsError::Io(error.into())
    }
}

fn size(stat: &Stat) -> u64 {
    u64::try_from(stat.st_size).unwrap_or(0)
}

/// The modification time (unix seconds), if it is after 1970.
#[allow(clippy::unnecessary_cast)] // `st_mtime` is not an i64 on every target.
fn modified(stat: &Stat) -> Option<i64> {
    Some(stat.st_mtime as i64).filter(|t| *t >= 0)
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

    /// A scratch folder holding carl's root (not created yet) and, beside it, `outside`
    /// with `files` in it: what a link from carl's root must never lead to.
    fn beside_outside(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, FilesRoot) {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        for (name, contents) in files {
            fs::write(outside.join(name), contents).unwrap();
        }
        let root = FilesRoot::for_account(dir.path(), "carl").unwrap();
        (dir, outside, root)
    }

    #[tokio::test]
    async fn links_are_refused_not_followed() {
        let (_dir, outside, root) = beside_outside(&[("secret.txt", "secret")]);
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

    /// A customer with a shell (SSH, FTP, a CGI script) can swap a folder of theirs for a
    /// link to another account's folder at any moment, including between the panel's check
    /// of a path and its use. Here `dir` is swapped with a link to `outside` as fast as the
    /// kernel allows while the file manager reads, lists, writes, renames, deletes and
    /// creates folders through it:
    /// whatever each call finds, it must never act on `outside`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_folder_swapped_for_a_link_mid_request_never_leads_outside() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let (_dir, outside, root) =
            beside_outside(&[("secret.txt", "outside"), ("only-outside.txt", "")]);
        const ROUNDS: usize = 1_000;
        for i in 0..ROUNDS {
            fs::write(outside.join(format!("victim-{i}")), "victim").unwrap();
        }
        root.create_with(vec![(
            RelPath::parse("dir/secret.txt").unwrap(),
            "inside".to_owned(),
        )])
        .await
        .unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("alt")).unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (stop, base) = (stop.clone(), root.path().to_owned());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        base.join("dir"),
                        rustix::fs::CWD,
                        base.join("alt"),
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let (mut read_inside, mut refused) = (0, 0);
        for i in 0..ROUNDS {
            match root
                .read(&RelPath::parse("dir/secret.txt").unwrap(), 100)
                .await
            {
                Ok(bytes) => {
                    assert_eq!(bytes, b"inside", "round {i}: read through the link");
                    read_inside += 1;
                }
                Err(_) => refused += 1,
            }
            if let Ok(entries) = root.list(&RelPath::parse("dir").unwrap()).await {
                assert!(
                    entries.iter().all(|e| e.name != "only-outside.txt"),
                    "round {i}: listed through the link"
                );
            }
            let _ = root
                .save(&RelPath::parse("dir/new.txt").unwrap(), b"x".to_vec())
                .await;
            let victim = RelPath::parse(&format!("dir/victim-{i}")).unwrap();
            let _ = root.rename(&victim, &format!("renamed-{i}")).await;
            let _ = root.delete(&victim).await;
            let _ = root
                .create_folder(&RelPath::parse("dir").unwrap(), &format!("made-{i}"))
                .await;
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(
            swaps > ROUNDS as u64,
            "the folder was swapped {swaps} times"
        );
        assert!(
            !outside.join("new.txt").exists(),
            "written through the link"
        );
        let victims = (0..ROUNDS)
            .filter(|i| outside.join(format!("victim-{i}")).exists())
            .count();
        assert_eq!(victims, ROUNDS, "deleted or renamed through the link");
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            ROUNDS + 2,
            "created through the link"
        );
        assert_eq!(
            fs::read_to_string(outside.join("secret.txt")).unwrap(),
            "outside"
        );
        // Both outcomes happened, so the race was run, not missed.
        assert!(
            read_inside > 0 && refused > 0,
            "{read_inside} read, {refused} refused"
        );
    }

    #[tokio::test]
    async fn a_folder_is_deleted_whole_and_links_inside_are_removed_not_followed() {
        let (_dir, outside, root) = beside_outside(&[("keep.txt", "keep")]);
        root.create_with(vec![
            (RelPath::parse("site/a/b/c.txt").unwrap(), "12345".into()),
            (RelPath::parse("site/d.txt").unwrap(), "123".into()),
            (RelPath::parse("other.txt").unwrap(), "1".into()),
        ])
        .await
        .unwrap();
        std::os::unix::fs::symlink(&outside, root.path().join("site/a/to-outside")).unwrap();
        std::os::unix::fs::symlink(outside.join("keep.txt"), root.path().join("site/file-link"))
            .unwrap();
        // Links are neither followed nor counted.
        assert_eq!(root.disk_usage().await.unwrap(), 9);
        let kind = root.delete(&RelPath::parse("site").unwrap()).await.unwrap();
        assert_eq!(kind, EntryKind::Folder);
        assert!(!root.path().join("site").exists());
        assert_eq!(
            fs::read_to_string(outside.join("keep.txt")).unwrap(),
            "keep"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 1);
        assert_eq!(root.disk_usage().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_folder_nested_too_deep_is_refused_whole_and_not_counted_below_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::for_account(dir.path(), "carl").unwrap();
        root.create_with(vec![(RelPath::parse("deep/top.txt").unwrap(), "1".into())])
            .await
            .unwrap();
        let mut path = root.path().join("deep");
        for _ in 0..DEPTH_MAX + 5 {
            path.push("d");
        }
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join("bottom.txt"), "22").unwrap();
        let refused = root.delete(&RelPath::parse("deep").unwrap()).await;
        assert!(matches!(refused, Err(FsError::TooDeep)), "{refused:?}");
        assert!(path.join("bottom.txt").exists(), "nothing was removed");
        assert!(
            root.path().join("deep/top.txt").exists(),
            "nothing was removed"
        );
        assert_eq!(
            root.disk_usage().await.unwrap(),
            1,
            "the bottom is not reached"
        );
        // One level less than the limit everywhere is deleted whole.
        let mut shallow = root.path().join("shallow");
        for _ in 0..DEPTH_MAX - 2 {
            shallow.push("s");
        }
        fs::create_dir_all(&shallow).unwrap();
        fs::write(shallow.join("f"), "x").unwrap();
        root.delete(&RelPath::parse("shallow").unwrap())
            .await
            .unwrap();
        assert!(!root.path().join("shallow").exists());
    }

    #[tokio::test]
    async fn staged_files_land_together_or_not_at_all_when_a_destination_changed() {
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::for_account(dir.path(), "carl").unwrap();
        root.create_with(Vec::new()).await.unwrap();
        let stage = |name: &'static str| {
            let root = root.clone();
            async move {
                let mut staged = root.stage(&RelPath::parse(name).unwrap()).await.unwrap();
                staged.write(name.as_bytes()).await.unwrap();
                staged
            }
        };
        let both = vec![stage("a.txt").await, stage("b.txt").await];
        // b.txt became a folder while the upload arrived: neither lands.
        fs::create_dir(root.path().join("b.txt")).unwrap();
        let refused = commit_all(both).await;
        assert!(
            matches!(refused, Err((0, FsError::NotAFile))),
            "{refused:?}"
        );
        let names = |root: &FilesRoot| {
            let mut names: Vec<String> = fs::read_dir(root.path())
                .unwrap()
                .map(|item| item.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&root), ["b.txt"], "nothing landed, no scratch left");
        fs::remove_dir(root.path().join("b.txt")).unwrap();
        commit_all(vec![stage("a.txt").await, stage("b.txt").await])
            .await
            .unwrap();
        assert_eq!(names(&root), ["a.txt", "b.txt"]);
        assert_eq!(fs::read(root.path().join("b.txt")).unwrap(), b"b.txt");
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
    async fn a_save_keeps_the_permissions_of_the_file_it_replaces() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::for_account(dir.path(), "carl").unwrap();
        root.create_with(Vec::new()).await.unwrap();
        let mode_of = |name: &str| {
            fs::metadata(root.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        for (name, mode) in [("secret.txt", 0o600), ("run.sh", 0o755), ("odd", 0o640)] {
            fs::write(root.path().join(name), "old").unwrap();
            fs::set_permissions(root.path().join(name), fs::Permissions::from_mode(mode)).unwrap();
            let rel = RelPath::parse(name).unwrap();
            root.save(&rel, b"new".to_vec()).await.unwrap();
            assert_eq!(root.read(&rel, 10).await.unwrap(), b"new");
            assert_eq!(mode_of(name), mode, "{name}");
        }
        // Set-user-ID is not carried to new content; a new file gets the usual mode.
        fs::set_permissions(
            root.path().join("run.sh"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        root.save(&RelPath::parse("run.sh").unwrap(), b"x".to_vec())
            .await
            .unwrap();
        assert_eq!(mode_of("run.sh"), 0o755);
        root.save(&RelPath::parse("new.txt").unwrap(), b"x".to_vec())
            .await
            .unwrap();
        fs::write(root.path().join("plain"), "").unwrap();
        assert_eq!(mode_of("new.txt"), mode_of("plain"));
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
