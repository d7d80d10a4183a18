//! Settings of mimalloc, the allocator the `duetdb` binary (and the benchmark harness) use.

use std::os::raw::{c_int, c_long};

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (include/mimalloc.h); the Rust
/// bindings do not name it. Its documented default is 1000 (ms), which [`keep_freed_memory`]
/// checks before changing it.
const MI_OPTION_PURGE_DELAY: c_int = 15;
const PURGE_DELAY_DEFAULT_MS: c_long = 1_000;

/// How long freed memory stays with the process before mimalloc returns it to the OS.
pub const PURGE_DELAY_MS: c_long = 10_000;

/// `mi_option_allow_thp` in the same enum; default 1.
const MI_OPTION_ALLOW_THP: c_int = 43;

/// The allocator settings of a DuetDB process: [`keep_freed_memory`] and
/// [`small_pages`]. Call first thing in `main`.
pub fn configure() {
    keep_freed_memory();
    small_pages();
}

/// Turns transparent huge pages off for the process, unless `MIMALLOC_ALLOW_THP` is set;
/// returns whether they are off. mimalloc asks for huge pages on its arenas (with
/// `madvise`), and each first touch of a 2 MiB page has the kernel clear all of it: in a
/// bulk load, whose buffers come and go, that was 14% of the server's CPU, and the load of
/// TPC-H's lineitem took 28.0 s of CPU with small pages against 31.3 s with huge ones
/// (BENCHMARKS.md, COPY of TPC-H SF1, 2026-11-26). The process-wide switch
/// (`PR_SET_THP_DISABLE`) also covers the arena mimalloc set up before `main`.
pub fn small_pages() -> bool {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return false;
    }
    // SAFETY: an option write, and a prctl that changes no memory of this process.
    unsafe {
        if libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) == 1 {
            libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0);
        }
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    }
}

/// Keeps freed memory for [`PURGE_DELAY_MS`] instead of mimalloc's 1 s, unless
/// `MIMALLOC_PURGE_DELAY` is set. A COPY frees and reallocates batch-sized buffers every
/// few hundred milliseconds; returned to the OS after 1 s, each came back as fresh pages the
/// kernel zeroes again (`clear_page_erms` was 22% of a COPY session's CPU). Returns the
/// delay in effect.
pub fn keep_freed_memory() -> c_long {
    // SAFETY: mimalloc's option calls only read or write its option table.
    unsafe {
        let current = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() && current == PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Also checks that option 15 is the purge delay: its default must read 1000 first.
    #[test]
    fn the_purge_delay_is_set_unless_the_environment_sets_it() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        assert_eq!(keep_freed_memory(), PURGE_DELAY_MS);
        // Idempotent: a second call leaves it.
        assert_eq!(keep_freed_memory(), PURGE_DELAY_MS);
    }

    /// Also checks that option 43 is allow_thp: its default must read 1 first.
    #[test]
    fn huge_pages_are_turned_off_unless_the_environment_allows_them() {
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
            return;
        }
        // SAFETY: option reads.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) };
        assert_eq!(before, 1);
        assert!(small_pages());
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_ALLOW_THP) },
            0
        );
        // SAFETY: a prctl that reads a flag.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }
}
