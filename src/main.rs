//! The `lockstep` command: parses the command line, sets up logging, dispatches.

/// mimalloc: the correlator allocates many small short-lived strings; glibc's allocator
/// spent a quarter of replay time on them (perf, 1M-event replay). It also serves
/// RocksDB's allocations (the `override` feature: `malloc` is mimalloc's): glibc's arenas
/// kept ~100 MiB more of the block cache's and memtables' churn at 1.3M identities.
/// Without transparent huge pages (`no_thp`): each first touch of a fresh region faulted in
/// and zeroed 2 MiB (10% of a 1.3M-identity replay's samples in `clear_page_erms`, a third
/// of a short one's), and the pages half used stayed resident (45–80 MiB at 1.3M–10M).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Output piped into `head` ends quietly, as for any Unix tool, instead of a panic on
    // a closed stdout.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    lockstep_cli::main()
}

#[path = "cli/mod.rs"]
mod lockstep_cli;
