//! The `tailward` binary: parse flags, load the config, then check it, print it, or run.

use std::process::ExitCode;

use tailward::agent::{self, RunOptions};
use tailward::cli;
use tailward::config::{self, Overrides};
use tailward::logging;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args()) {
        Ok(c) => c,
        Err(e) => {
            // clap prints help and version itself; anything else is a usage error.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if cli.version {
        println!("tailward, version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let overrides = Overrides {
        expand_env: cli.expand_env,
        flags: cli.config_flags.clone(),
    };
    let (config, path) = match config::load(&cli.config_file, &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid config: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.print_config_stderr {
        match config::redacted_yaml(&config) {
            Ok(text) => eprintln!("{text}"),
            Err(e) => eprintln!("error: cannot render the effective config: {e}"),
        }
    }
    if cli.check_syntax {
        println!(
            "Valid config file! No syntax issues found in {}",
            path.display()
        );
        return ExitCode::SUCCESS;
    }
    logging::init(config.server.log_level, config.server.log_format);
    if cli.inspect {
        tracing::warn!("-inspect is not supported yet; running without it");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = RunOptions {
        dry_run: cli.dry_run,
    };
    match runtime.block_on(agent::run(config, opts, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tailward stopped with an error");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
