//! The `lockstep` command: parses the command line, sets up logging, dispatches.

fn main() -> std::process::ExitCode {
    lockstep_cli::main()
}

#[path = "cli.rs"]
mod lockstep_cli;
