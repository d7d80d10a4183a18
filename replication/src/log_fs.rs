//! The file system raft-engine writes a peer's log through: the machine's own, with
//! switches ([`LogFaults`]) that make writes fail as they do on a full disk (ENOSPC) and
//! syncs fail as they do on a failing disk (EIO). Tests use them to check what a peer does
//! when its log cannot be written or made durable; in a server they stay off and cost one
//! atomic load per write or sync.

use std::io::{Result as IoResult, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use raft_engine::env::{DefaultFileSystem, FileSystem, Handle, Permission, WriteExt};

/// Faults injected into a log's writes.
#[derive(Debug, Default)]
pub struct LogFaults {
    no_space: AtomicBool,
    sync_fails: AtomicBool,
    failed: AtomicU64,
}

impl LogFaults {
    /// While on, every write and allocation of the log fails with ENOSPC (creating an
    /// empty file still succeeds, as on a full disk).
    pub fn set_no_space(&self, on: bool) {
        self.no_space.store(on, Ordering::Release);
    }

    /// While on, every sync (fdatasync) of a log file fails with EIO, as on a disk that
    /// lost writes.
    pub fn set_sync_fails(&self, on: bool) {
        self.sync_fails.store(on, Ordering::Release);
    }

    /// Operations failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn check(&self) -> IoResult<()> {
        if self.no_space.load(Ordering::Acquire) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            // What raft-engine's own file system returns for ENOSPC (the text is what its
            // append looks for before it moves on to a new file).
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "nospace",
            ));
        }
        Ok(())
    }

    fn check_sync(&self) -> IoResult<()> {
        if self.sync_fails.load(Ordering::Acquire) {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }
}

/// EIO on Linux: what a failed fdatasync returns.
const EIO: i32 = 5;

/// Set once a sync of the log failed (why): the log is abandoned (see
/// [`crate::Error::LogSync`]).
pub type SyncFailure = Arc<parking_lot::Mutex<Option<String>>>;

/// [`DefaultFileSystem`] with [`LogFaults`].
pub struct LogFileSystem {
    inner: DefaultFileSystem,
    faults: Arc<LogFaults>,
    abandoned: SyncFailure,
}

impl LogFileSystem {
    /// The file system of a log that `abandoned` says is abandoned once a sync failed.
    pub fn new(faults: Arc<LogFaults>, abandoned: SyncFailure) -> Self {
        LogFileSystem {
            inner: DefaultFileSystem,
            faults,
            abandoned,
        }
    }
}

type Inner = DefaultFileSystem;

/// A log file's handle, whose sync fails while [`LogFaults`] say so.
pub struct LogHandle {
    inner: Arc<<Inner as FileSystem>::Handle>,
    faults: Arc<LogFaults>,
    abandoned: SyncFailure,
}

impl Handle for LogHandle {
    fn truncate(&self, offset: usize) -> IoResult<()> {
        self.inner.truncate(offset)
    }

    fn file_size(&self) -> IoResult<usize> {
        self.inner.file_size()
    }

    /// A sync of an abandoned log does nothing: nothing is written to it after the failed
    /// sync, and raft-engine syncs its files again when it closes them, in destructors,
    /// where a second failure would panic while the first file's panic unwinds and abort
    /// the process.
    fn sync(&self) -> IoResult<()> {
        if self.abandoned.lock().is_some() {
            return Ok(());
        }
        self.faults.check_sync()?;
        self.inner.sync()
    }
}

impl LogFileSystem {
    fn handle(&self, inner: <Inner as FileSystem>::Handle) -> LogHandle {
        LogHandle {
            inner: Arc::new(inner),
            faults: self.faults.clone(),
            abandoned: self.abandoned.clone(),
        }
    }
}

impl FileSystem for LogFileSystem {
    type Handle = LogHandle;
    type Reader = <Inner as FileSystem>::Reader;
    type Writer = LogWriter;

    fn create<P: AsRef<Path>>(&self, path: P) -> IoResult<Self::Handle> {
        Ok(self.handle(self.inner.create(path)?))
    }

    fn open<P: AsRef<Path>>(&self, path: P, perm: Permission) -> IoResult<Self::Handle> {
        Ok(self.handle(self.inner.open(path, perm)?))
    }

    fn delete<P: AsRef<Path>>(&self, path: P) -> IoResult<()> {
        self.inner.delete(path)
    }

    fn rename<P: AsRef<Path>>(&self, src_path: P, dst_path: P) -> IoResult<()> {
        self.inner.rename(src_path, dst_path)
    }

    fn new_reader(&self, handle: Arc<Self::Handle>) -> IoResult<Self::Reader> {
        self.inner.new_reader(handle.inner.clone())
    }

    fn new_writer(&self, handle: Arc<Self::Handle>) -> IoResult<Self::Writer> {
        Ok(LogWriter {
            inner: self.inner.new_writer(handle.inner.clone())?,
            faults: self.faults.clone(),
        })
    }
}

/// A log file's writer, failing while [`LogFaults`] say so.
pub struct LogWriter {
    inner: <Inner as FileSystem>::Writer,
    faults: Arc<LogFaults>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.faults.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.inner.flush()
    }
}

impl Seek for LogWriter {
    fn seek(&mut self, pos: SeekFrom) -> IoResult<u64> {
        self.inner.seek(pos)
    }
}

impl WriteExt for LogWriter {
    fn truncate(&mut self, offset: usize) -> IoResult<()> {
        self.inner.truncate(offset)
    }

    fn allocate(&mut self, offset: usize, size: usize) -> IoResult<()> {
        self.faults.check()?;
        self.inner.allocate(offset, size)
    }
}
