//! The `lockstep` command: parses the command line, sets up logging, dispatches.

/// mimalloc: the correlator allocates many small short-lived strings; glibc's allocator
/// spent a quarter of replay time on them (perf, 1M-event replay).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lockstep_cli::main()
}

#[path = "cli.rs"]
mod lockstep_cli;
