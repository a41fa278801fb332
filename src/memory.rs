//! Process-wide memory settings, applied once at start by the `parlor` and `loadgen`
//! binaries.
//!
//! mimalloc asks the kernel for transparent huge pages on its arenas (`madvise`), so on a
//! kernel in `madvise` or `always` mode each touched 2 MiB region becomes resident, and is
//! zeroed, as a whole. For a server that holds many small, mostly idle connections that is
//! the wrong trade: an idle session's buffers are a few KiB touched out of 16 KiB
//! reserved, and with huge pages the untouched rest is resident too (24 KB per idle session
//! against 14.4 KB without, at 10,000 sessions), while the zeroing of fresh huge pages costs
//! the Writer time on its page buffers (the durable direct-message knee went from 35,000 to
//! 41,000-45,000 messages a second without them). Measurements are in `BENCHMARKS.md`.

/// Turns transparent huge pages off for this process (and the processes it starts), as
/// `prctl(PR_SET_THP_DISABLE)` does; returns whether the kernel accepted it. Memory already
/// mapped is affected at its next page fault. Does nothing off Linux.
pub fn disable_transparent_huge_pages() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a flag of the
        // calling process's memory map; no pointer is passed.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Whether transparent huge pages are off for this process (`PR_GET_THP_DISABLE`).
    fn transparent_huge_pages_disabled() -> bool {
        // SAFETY: PR_GET_THP_DISABLE takes no pointer and only reads the process's flag.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    #[test]
    fn turns_huge_pages_off_for_the_process() {
        assert!(disable_transparent_huge_pages());
        assert!(transparent_huge_pages_disabled());
    }
}
