//! `lockstep check-config`: a configuration validated as `run` would, and the effective
//! settings printed.

use std::path::PathBuf;

use anyhow::Result;

use lockstep::config::Config;

use super::api_token;

/// The arguments of `lockstep check-config`.
#[derive(clap::Args)]
pub struct Args {
    /// The file.
    file: PathBuf,
    /// Also require what `lockstep run` needs ([kafka] and [[sources]]).
    #[arg(long)]
    run: bool,
}

/// Runs `lockstep check-config`.
pub fn run(Args { file, run }: Args) -> Result<()> {
    let config = Config::load(&file)?;
    let invalid = |message: String| lockstep::error::ConfigError::Invalid {
        path: Some(file.clone()),
        message,
    };
    if run {
        config.runnable().map_err(invalid)?;
    }
    if config.api.listen != "off" {
        lockstep::api::bind_address(&config.api.listen, api_token(&config).as_deref())
            .map_err(invalid)?;
    }
    println!("{}: ok", file.display());
    print!("{}", lockstep::config::show::effective(&config));
    for note in lockstep::config::show::notes(&config) {
        println!("  note: {note}");
    }
    Ok(())
}
