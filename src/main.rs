//! The `tailward` binary: parse flags, load the config, then check it, print it, or run;
//! or, as `tailward test FILE...`, run pipeline test cases.

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use tailward::agent::logging;
use tailward::agent::{self, RunOptions};
use tailward::config::cli;
use tailward::config::{self, Overrides};
use tailward::pipeline_cases;

fn main() -> ExitCode {
    tune_allocator();
    let cli = match cli::parse_invocation(std::env::args()) {
        Ok(cli::Invocation::Agent(c)) => c,
        Ok(cli::Invocation::Test(t)) => return run_pipeline_tests(&t),
        Ok(cli::Invocation::Preset(p)) => return print_preset(&p),
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
        // Building is the rest of the check; a run builds the same way once it starts.
        let registry = std::sync::Arc::new(tailward::metrics::Metrics::new());
        if let Err(e) = agent::build::build_jobs(&config, &path.display().to_string(), &registry) {
            eprintln!("error: invalid config: {e}");
            return ExitCode::from(1);
        }
        for (key_path, message) in agent::build::stage_warnings(&config) {
            eprintln!("warning: {}: {key_path}: {message}", path.display());
        }
        println!(
            "Valid config file! No syntax issues found in {}",
            path.display()
        );
        // The case file beside the config (`<name>.tests.yaml`) is part of the check.
        let beside =
            pipeline_cases::run_beside_config(&config, &path, cli.inspect, &mut std::io::stdout());
        return match beside {
            Some(summary) if !summary.success() => ExitCode::from(1),
            _ => ExitCode::SUCCESS,
        };
    }
    logging::init(config.server.log_level, config.server.log_format);
    for (flag, why) in &cli.ignored_flags {
        tracing::info!(flag = %format!("-{flag}"), reason = why, "flag accepted for Promtail compatibility and ignored");
    }
    if !cli.ignored_args.is_empty() {
        tracing::warn!(
            arguments = ?cli.ignored_args,
            "ignoring the arguments from the first one that is not a flag on, as Promtail does"
        );
    }
    if cli.log_config_reverse_order {
        // Promtail logs the config last line first, so that log views showing the newest
        // line on top read it top to bottom.
        match config::redacted_yaml(&config) {
            Ok(text) => text.lines().rev().for_each(|line| tracing::info!("{line}")),
            Err(e) => tracing::error!(error = %e, "cannot render the effective config"),
        }
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
        inspect: cli.inspect,
        dry_run_extracted: cli.dry_run_extracted,
        notifier: tailward::agent::systemd::Notifier::from_env(),
        reload_from: Some(tailward::agent::reload::Source {
            config_file: cli.config_file.clone(),
            overrides,
        }),
    };
    // The handlers are installed now, before anything starts: installed on first poll, a
    // SIGTERM arriving while the agent starts up would still kill it without a final save.
    let shutdown = {
        let _runtime = runtime.enter();
        shutdown_signal()
    };
    let result = runtime.block_on(agent::run(config, opts, shutdown));
    // After a second signal some tasks may still be waiting; they must not delay the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tailward stopped with an error");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// mimalloc `mi_option_purge_delay` (mimalloc.h's `mi_option_e`; the Rust bindings do not
/// name it for v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the agent's resident memory close to what it holds. Runs before any other thread
/// exists (mimalloc's option setter is not thread safe).
fn tune_allocator() {
    // mimalloc v3 keeps freed pages resident for 1 s before returning them; at full speed the
    // agent frees and allocates its in-flight batches many times a second, so the pages of
    // the last second add up (peak RSS 60-85 MiB instead of about 30 on the benchmarks).
    // 10 ms (mimalloc v2's default) returns them while costing no measurable CPU.
    // SAFETY: a plain option store, before any other thread runs.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10) };
    // Transparent huge pages make every touched 2 MiB of heap resident whole; `no_thp` stops
    // mimalloc asking for them, this also covers kernels set to `always`.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// `tailward test FILE...`: exit 0 when every case passed, 1 otherwise.
fn run_pipeline_tests(t: &cli::TestCli) -> ExitCode {
    let settings = pipeline_cases::RunSettings {
        overrides: Overrides {
            expand_env: t.expand_env,
            flags: Vec::new(),
        },
        inspect: t.inspect,
    };
    let files: Vec<std::path::PathBuf> = t.files.iter().map(Into::into).collect();
    let summary = pipeline_cases::run_files(&files, &settings, &mut std::io::stdout());
    if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `tailward preset list|show NAME`.
fn print_preset(p: &cli::PresetCli) -> ExitCode {
    use tailward::pipeline::presets;
    match p {
        cli::PresetCli::List => {
            for name in presets::names() {
                let summary = presets::source(name)
                    .and_then(|text| presets::parse_file(text).ok())
                    .and_then(|f| f.description.lines().next().map(str::to_string))
                    .unwrap_or_default();
                println!("{name}\t{summary}");
            }
            ExitCode::SUCCESS
        }
        cli::PresetCli::Show(name) => match presets::source(name) {
            Some(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!(
                    "error: no built-in preset {name:?}; the presets are: {}",
                    presets::names().join(", ")
                );
                ExitCode::from(2)
            }
        },
    }
}

/// SIGTERM or SIGINT, with the handlers installed when this is called (inside the runtime).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
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
}
