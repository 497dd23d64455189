//! The `lockstep` command: parses the command line, sets up logging, dispatches.

/// mimalloc: the correlator allocates many small short-lived strings; glibc's allocator
/// spent a quarter of replay time on them (perf, 1M-event replay). It also serves
/// RocksDB's allocations (the `override` feature: `malloc` is mimalloc's): glibc's arenas
/// kept ~100 MiB more of the block cache's and memtables' churn at 1.3M identities.
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
