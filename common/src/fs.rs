//! Durable file writes, and the free-space reserve of the data directory's disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The machine's memory in bytes (`MemTotal` of /proc/meminfo), read once; `None` where
/// it cannot be read.
pub fn physical_memory() -> Option<u64> {
    static TOTAL: std::sync::LazyLock<Option<u64>> = std::sync::LazyLock::new(|| {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kb = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
        let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    });
    *TOTAL
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file: a
/// temporary file is written and synced, renamed over `path`, and the directory synced.
/// Concurrent writers of one path each use their own temporary file; the last rename wins.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The least and the most a default reserve keeps free (see [`DiskGuard::default_reserve`]):
/// at least two memtable flushes of RocksDB (64 MB each) and a raft-engine file's growth.
pub const DEFAULT_RESERVE_MIN: u64 = 160 << 20;
pub const DEFAULT_RESERVE_MAX: u64 = 512 << 20;

/// Free space the data directory's filesystem keeps for what is already under way. A write
/// is refused before it enters the log while less than the reserve is free, instead of
/// failing halfway: a Raft entry that cannot be written stops the peer, a RocksDB flush
/// that cannot be written stops the row replica's writes until space returns. What the
/// reserve holds is the log entries, memtable flushes (two column families of up to 64 MB
/// memtables each) and compactions of commands admitted before the disk filled. A write
/// also needs room for itself: twice its size (its log entry, then its rows in RocksDB). Commands that give space back (DROP TABLE, TRUNCATE) are admitted down to
/// a quarter of the reserve, so a full disk can be emptied through SQL. TiKV keeps such a
/// reserve (its `storage.reserve-space`).
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    reserve: AtomicU64,
    refused: AtomicU64,
    /// Whether the last check found the disk below the reserve (logged on each change).
    full: AtomicBool,
}

/// A write refused because the disk is (almost) full: SQLSTATE 53100 at the wire.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "could not write: the disk holding {} has {} free, less than the {} this write needs with the {} DuetDB keeps in reserve",
    dir.display(), mb(*available), mb(*needed), mb(*reserve)
)]
pub struct DiskFull {
    pub dir: PathBuf,
    pub available: u64,
    /// What the write needed free: the reserve (or its quarter) and twice its size.
    pub needed: u64,
    pub reserve: u64,
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1u64 << 20) as f64)
}

impl DiskGuard {
    /// A guard of the filesystem holding `dir`, keeping `reserve` bytes free (0: none).
    pub fn new(dir: &Path, reserve: u64) -> Self {
        DiskGuard {
            dir: dir.to_path_buf(),
            reserve: AtomicU64::new(reserve),
            refused: AtomicU64::new(0),
            full: AtomicBool::new(false),
        }
    }

    /// The default reserve for the filesystem holding `dir`: 5% of its size, within
    /// [`DEFAULT_RESERVE_MIN`] and [`DEFAULT_RESERVE_MAX`].
    pub fn default_reserve(dir: &Path) -> u64 {
        fs2::total_space(dir).map_or(0, |total| {
            (total / 20).clamp(DEFAULT_RESERVE_MIN, DEFAULT_RESERVE_MAX)
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn reserve(&self) -> u64 {
        self.reserve.load(Ordering::Relaxed)
    }

    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
    }

    /// Free bytes on the filesystem now (for unprivileged writers), if it can be asked.
    pub fn available(&self) -> Option<u64> {
        fs2::available_space(&self.dir).ok()
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether the last check found less than the reserve free.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Admits a write of `bytes`, or refuses it while less than the reserve and twice its
    /// size is free (a quarter of the reserve for a write that `frees` space). A filesystem
    /// that cannot be asked admits: the write itself then says what is wrong.
    pub fn admit(&self, bytes: u64, frees: bool) -> Result<(), DiskFull> {
        let reserve = self.reserve();
        if reserve == 0 {
            return Ok(());
        }
        let Some(available) = self.available() else {
            return Ok(());
        };
        let full = available < reserve;
        if self.full.swap(full, Ordering::Relaxed) != full {
            if full {
                tracing::warn!(
                    dir = %self.dir.display(),
                    available,
                    reserve,
                    "disk below its reserve: refusing writes (53100) until space is freed"
                );
            } else {
                tracing::info!(dir = %self.dir.display(), available, "disk above its reserve again: writes resume");
            }
        }
        let floor =
            if frees { reserve / 4 } else { reserve }.saturating_add(bytes.saturating_mul(2));
        if available < floor {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(DiskFull {
                dir: self.dir.clone(),
                available,
                needed: floor,
                reserve,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        write_durably(&path, b"one").unwrap();
        write_durably(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "a temporary file was left behind");
    }

    #[test]
    fn the_guard_refuses_writes_below_its_reserve_and_space_freeing_ones_only_below_a_quarter() {
        let dir = tempfile::tempdir().unwrap();
        let guard = DiskGuard::new(dir.path(), 0);
        let free = guard.available().expect("statvfs of a temp dir");
        assert!(
            guard.admit(0, false).is_ok(),
            "no reserve: everything is admitted"
        );
        guard.set_reserve(free / 2);
        assert!(guard.admit(0, false).is_ok() && !guard.is_full());
        // More than is free: ordinary writes are refused, with the figures.
        guard.set_reserve(free.saturating_mul(2).max(1 << 40));
        let e = guard.admit(0, false).unwrap_err();
        assert!(e.available <= free.saturating_add(1 << 30) && e.reserve == guard.reserve());
        assert!(e.to_string().contains("less than"), "{e}");
        assert!(guard.is_full());
        assert_eq!(guard.refused(), 1);
        // Freeing writes pass while a quarter of the reserve is free...
        guard.set_reserve(free.saturating_add(free / 2));
        assert!(guard.admit(0, false).is_err());
        assert!(guard.admit(0, true).is_ok());
        // ...and not below it.
        guard.set_reserve(free.saturating_mul(8).max(1 << 42));
        assert!(guard.admit(0, true).is_err());
        assert_eq!(guard.refused(), 3);
        // A write needs room for itself beyond the reserve.
        guard.set_reserve(1);
        assert!(guard
            .admit(free.saturating_mul(4).max(1 << 42), false)
            .is_err());
        // Space back (here: the reserve lowered): admitted again.
        guard.set_reserve(1);
        assert!(guard.admit(0, false).is_ok() && !guard.is_full());
    }
}
