//! Settings of mimalloc, the allocator the `duetdb` binary (and the benchmark harness) use.

use std::os::raw::{c_int, c_long};

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (include/mimalloc.h); the Rust
/// bindings do not name it. Its documented default is 1000 (ms), which [`keep_freed_memory`]
/// checks before changing it.
const MI_OPTION_PURGE_DELAY: c_int = 15;
const PURGE_DELAY_DEFAULT_MS: c_long = 1_000;

/// How long freed memory stays with the process before mimalloc returns it to the OS.
pub const PURGE_DELAY_MS: c_long = 10_000;

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
}
