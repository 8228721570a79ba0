//! Opening a path as a log file: regular files only, never blocking (a FIFO put where a log
//! was cannot hang a reader), and, with `target_config.follow_symlinks_outside: false`, not
//! through a symlink to a file outside the link's directory. Owns only the open and the
//! reason it failed; it must not read from the file or decide what the file is.

use std::fs::{File, Metadata};
use std::os::fd::AsRawFd;
use std::path::Path;

pub(super) enum OpenError {
    Missing,
    Other(&'static str),
}

/// Opens `path` if it is a regular file. Non-blocking, so a FIFO put where a log was cannot
/// hang the reader (the flag changes nothing for regular files). Unless `follow_outside`, a
/// symlink is followed only to a file in its own directory or below.
pub(super) fn open_regular(
    path: &Path,
    follow_outside: bool,
) -> Result<(File, Metadata), OpenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::Missing,
            std::io::ErrorKind::PermissionDenied => OpenError::Other("permission_denied"),
            _ => OpenError::Other("open"),
        })?;
    let meta = file.metadata().map_err(|_| OpenError::Other("stat"))?;
    if !meta.is_file() {
        return Err(OpenError::Other("not_a_regular_file"));
    }
    if !follow_outside && leaves_its_directory(path, &file) {
        return Err(OpenError::Other("symlink_outside_directory"));
    }
    Ok((file, meta))
}

/// Whether `path` is a symlink and `file`, opened through it, lies outside the link's
/// directory. Judged by what was opened (`/proc/self/fd`), so a link changed between a check
/// and the open cannot slip through; a path that cannot be judged counts as outside.
fn leaves_its_directory(path: &Path, file: &File) -> bool {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return false;
    }
    let Some(dir) = path.parent().and_then(|d| std::fs::canonicalize(d).ok()) else {
        return true;
    };
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .or_else(|_| std::fs::canonicalize(path));
    opened.map_or(true, |real| !real.starts_with(&dir))
}
