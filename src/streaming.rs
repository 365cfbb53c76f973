//! File I/O of the transfer paths. Public because the `norman` program uses them too: [`PartFile`]
//! is the one temporary-file mechanism (downloads in [`crate::transfer`], the program's upload
//! receiver and `norman serve`'s link pulls), [`InlineFileWriter`] its writer (and the program's
//! stdout sink). The reader stays inside the library.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs a short blocking file operation on the current thread.
///
/// Measured on the 2-core reference machine, reading a file on the thread that encrypts and sends it
/// was 45% faster end to end than handing reads to a helper thread: the hand-off costs more than the
/// read, and a third busy thread on two cores slows the other two. On a multi-thread runtime the
/// worker first hands its other tasks to a sibling (`block_in_place`), so nothing else waits on the
/// disk; on a current-thread runtime the caller chose to run one thing at a time.
pub fn blocking_io<T>(op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(op),
        _ => op(),
    }
}

/// A `std::fs::File` as an `AsyncWrite` that writes in place through [`blocking_io`]: no copy into
/// an intermediate buffer and no thread hand-off per write (tokio's own `File` does both).
pub struct InlineFileWriter(pub std::fs::File);

impl tokio::io::AsyncWrite for InlineFileWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(blocking_io(|| io::Write::write(&mut self.0, buf)))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A `std::fs::File` as an `AsyncRead` that reads in place through [`blocking_io`], straight into
/// the caller's buffer: no intermediate buffer and no thread hand-off per read (tokio's own `File`
/// does both). See [`blocking_io`] for why reading on this thread beats a reader thread.
pub(crate) struct InlineFileReader(pub std::fs::File);

impl tokio::io::AsyncRead for InlineFileReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = blocking_io(|| io::Read::read(&mut self.0, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// A file being written under a temporary name (`.NAME.RANDOM.part` beside its destination). It
/// becomes visible under its real name only through [`PartFile::commit`]; dropped, it is deleted.
pub struct PartFile {
    path: PathBuf,
    file: InlineFileWriter,
    committed: bool,
}

impl PartFile {
    /// Creates the temporary file in `dest`'s directory (never an existing file).
    pub async fn create_beside(dest: &Path) -> crate::Result<Self> {
        let name = dest
            .file_name()
            .ok_or_else(|| crate::Error::InvalidArgument(format!("{} is not a file path", dest.display())))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let path = dir.join(format!(".{}.{:016x}.part", name.to_string_lossy(), rand::random::<u64>()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(crate::Error::io("creating the temporary file"))?;
        Ok(Self { path, file: InlineFileWriter(file), committed: false })
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The writer of the temporary file.
    pub fn writer(&mut self) -> &mut InlineFileWriter {
        &mut self.file
    }

    /// Syncs to disk and renames to `dest` (atomic on one filesystem).
    pub async fn commit(mut self, dest: &Path) -> crate::Result<()> {
        blocking_io(|| self.file.0.sync_data()).map_err(crate::Error::io("syncing the received file"))?;
        blocking_io(|| std::fs::rename(&self.path, dest))
            .map_err(crate::Error::io("renaming the received file into place"))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
