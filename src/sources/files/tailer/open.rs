//! Opening a path as a log file: regular files only, and never blocking (a FIFO put where a
//! log was cannot hang a reader). Owns only the open and the reason it failed; it must not
//! read from the file or decide what the file is.

use std::fs::{File, Metadata};
use std::path::Path;

pub(super) enum OpenError {
    Missing,
    Other(&'static str),
}

/// Opens `path` if it is a regular file. Non-blocking, so a FIFO put where a log was cannot
/// hang the reader (the flag changes nothing for regular files).
pub(super) fn open_regular(path: &Path) -> Result<(File, Metadata), OpenError> {
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
    Ok((file, meta))
}
