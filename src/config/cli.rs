//! The command line, in Promtail's spelling: `-flag`, `--flag`, `-flag=value` and
//! `-flag value`, booleans as `-flag` or `-flag=false`, so an existing promtail.service
//! ExecStart line works with only the binary name changed.
//!
//! `tailward test FILE...` runs pipeline test cases instead of the agent: Promtail takes no
//! positional arguments, so a first argument `test` can only mean that subcommand.
//!
//! Owns parsing arguments into an [`Invocation`]; it must not load configs or start anything.

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::config::load::CONFIG_FLAGS;

/// What the user asked for.
#[derive(Debug, Default, Clone)]
pub struct Cli {
    pub config_file: String,
    pub expand_env: bool,
    pub dry_run: bool,
    pub check_syntax: bool,
    pub print_config_stderr: bool,
    pub inspect: bool,
    /// `-dry-run.extracted` (tailward): also print structured metadata and extracted values.
    pub dry_run_extracted: bool,
    pub version: bool,
    /// Config-setting flags (without dashes) with their values, in the order given.
    pub config_flags: Vec<(String, String)>,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Invocation {
    /// The agent, with Promtail's flags.
    Agent(Cli),
    /// `tailward test FILE...`.
    Test(TestCli),
    /// `tailward preset list` or `tailward preset show NAME`.
    Preset(PresetCli),
}

/// What `tailward preset` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresetCli {
    /// Names and first description lines of the built-in presets.
    List,
    /// The YAML of one preset, as embedded.
    Show(String),
}

/// `tailward test [-config.expand-env] [-inspect] FILE...`.
#[derive(Debug, Default, Clone)]
pub struct TestCli {
    pub files: Vec<String>,
    pub expand_env: bool,
    pub inspect: bool,
}

/// Flags that are switches (`-flag` alone means true).
const BOOL_FLAGS: &[&str] = &[
    "config.expand-env",
    "dry-run",
    "dry-run.extracted",
    "check-syntax",
    "print-config-stderr",
    "inspect",
    "version",
    "log-config-reverse-order",
    "server.register-instrumentation",
    "server.disable",
    "server.enable-runtime-reload",
    "positions.ignore-invalid-yaml",
    "stdin",
    "limit.readline-rate-enabled",
    "limit.readline-rate-drop",
    "max-line-size-truncate",
    "client.drop-rate-limited-batches",
    "tracing.enabled",
];

fn command() -> Command {
    let mut cmd = Command::new("tailward")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Host log agent: tails files, runs Promtail pipelines, pushes to Grafana Loki")
        .disable_version_flag(true)
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .long("help")
                .short('h')
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .arg(
            Arg::new("config.file")
                .long("config.file")
                .value_name("FILES")
                .help("Config file; a comma-separated list loads the first that exists"),
        );
    let mut names: Vec<&str> = BOOL_FLAGS.to_vec();
    for (flag, _) in CONFIG_FLAGS {
        if !names.contains(flag) {
            names.push(flag);
        }
    }
    for name in names {
        let arg = Arg::new(name).long(name);
        let arg = if BOOL_FLAGS.contains(&name) {
            arg.num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .value_parser(clap::builder::BoolishValueParser::new())
                .action(ArgAction::Set)
        } else {
            arg.action(ArgAction::Append).value_name("VALUE")
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

fn bool_flag(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name)
        .long(name)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .value_parser(clap::builder::BoolishValueParser::new())
        .action(ArgAction::Set)
        .help(help)
}

fn test_command() -> Command {
    Command::new("test")
        .bin_name("tailward test")
        .about("Runs pipeline test cases (case files) through their config's pipeline_stages")
        .disable_version_flag(true)
        .disable_help_flag(true)
        .arg(
            Arg::new("help")
                .long("help")
                .short('h')
                .action(ArgAction::Help)
                .help("Print help"),
        )
        .arg(bool_flag(
            "config.expand-env",
            "Expand ${VAR} in the configs the case files test",
        ))
        .arg(bool_flag("inspect", "Print each stage's changes to stderr"))
        .arg(
            Arg::new("files")
                .value_name("FILE")
                .num_args(1..)
                .required(true)
                .action(ArgAction::Append)
                .help("Case files"),
        )
}

fn preset_command() -> Command {
    Command::new("preset")
        .bin_name("tailward preset")
        .about("Lists the built-in pipeline presets or prints one as YAML")
        .disable_version_flag(true)
        .subcommand_required(true)
        .subcommand(Command::new("list").about("Names and descriptions of the presets"))
        .subcommand(
            Command::new("show")
                .about("Prints a preset's YAML (parameters and stages)")
                .arg(Arg::new("name").value_name("NAME").required(true)),
        )
}

/// Go's flag package accepts one or two dashes; clap wants two for long names.
fn normalise(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest_literal = false;
    for (i, a) in args.into_iter().enumerate() {
        if i == 0 || rest_literal {
            out.push(a);
            continue;
        }
        if a == "--" {
            rest_literal = true;
            out.push(a);
        } else if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
            out.push(format!("-{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

/// Parses `args` (including the program name) into the agent's flags or `tailward test`.
pub fn parse_invocation(args: impl IntoIterator<Item = String>) -> Result<Invocation, clap::Error> {
    let mut args: Vec<String> = args.into_iter().collect();
    if args.get(1).map(String::as_str) == Some("preset") {
        args.remove(1);
        let m = preset_command().try_get_matches_from(normalise(args))?;
        return Ok(Invocation::Preset(match m.subcommand() {
            Some(("show", sub)) => {
                PresetCli::Show(sub.get_one::<String>("name").cloned().unwrap_or_default())
            }
            _ => PresetCli::List,
        }));
    }
    if args.get(1).map(String::as_str) != Some("test") {
        return parse(args).map(Invocation::Agent);
    }
    args.remove(1);
    let m = test_command().try_get_matches_from(normalise(args))?;
    Ok(Invocation::Test(TestCli {
        files: m
            .get_many::<String>("files")
            .map(|files| files.cloned().collect())
            .unwrap_or_default(),
        expand_env: flag(&m, "config.expand-env"),
        inspect: flag(&m, "inspect"),
    }))
}

/// Parses the agent's flags from `args` (including the program name). Errors carry clap's
/// message (and usage).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches_from(normalise(args))?;
    Ok(from_matches(&matches))
}

fn flag(m: &ArgMatches, name: &str) -> bool {
    m.get_one::<bool>(name).copied().unwrap_or(false)
}

fn from_matches(m: &ArgMatches) -> Cli {
    let mut cli = Cli {
        config_file: m
            .get_one::<String>("config.file")
            .cloned()
            .unwrap_or_default(),
        expand_env: flag(m, "config.expand-env"),
        dry_run: flag(m, "dry-run"),
        dry_run_extracted: flag(m, "dry-run.extracted"),
        check_syntax: flag(m, "check-syntax"),
        print_config_stderr: flag(m, "print-config-stderr"),
        inspect: flag(m, "inspect"),
        version: flag(m, "version"),
        config_flags: Vec::new(),
    };
    // Keep the command-line order so a later flag wins over an earlier one.
    let mut ordered: Vec<(usize, String, String)> = Vec::new();
    for (name, _) in CONFIG_FLAGS {
        let Some(indices) = m.indices_of(name) else {
            continue;
        };
        let indices: Vec<usize> = indices.collect();
        if BOOL_FLAGS.contains(name) {
            if let (Some(v), Some(&i)) = (m.get_one::<bool>(name), indices.last()) {
                ordered.push((i, name.to_string(), v.to_string()));
            }
        } else if let Some(values) = m.get_many::<String>(name) {
            for (v, i) in values.zip(indices) {
                ordered.push((i, name.to_string(), v.clone()));
            }
        }
    }
    ordered.sort_by_key(|(i, _, _)| *i);
    cli.config_flags = ordered.into_iter().map(|(_, n, v)| (n, v)).collect();
    cli
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Cli {
        parse(
            std::iter::once("tailward")
                .chain(args.iter().copied())
                .map(String::from),
        )
        .unwrap()
    }

    #[test]
    fn accepts_single_and_double_dash_equals_and_space() {
        let c = p(&[
            "-config.file",
            "/etc/promtail/config.yml",
            "--dry-run",
            "-server.http-listen-port=9080",
        ]);
        assert_eq!(c.config_file, "/etc/promtail/config.yml");
        assert!(c.dry_run);
        assert_eq!(
            c.config_flags,
            vec![("server.http-listen-port".to_string(), "9080".to_string())]
        );
        let c = p(&[
            "--config.file=/a.yaml,/b.yaml",
            "-config.expand-env=true",
            "-stdin=false",
        ]);
        assert_eq!(c.config_file, "/a.yaml,/b.yaml");
        assert!(c.expand_env);
        assert_eq!(
            c.config_flags,
            vec![("stdin".to_string(), "false".to_string())]
        );
    }

    #[test]
    fn promtail_service_exec_start_parses() {
        let c = p(&[
            "-config.file=/etc/promtail/promtail.yaml",
            "-client.external-labels=host=web1,env=prod",
            "-log.level=warn",
            "-positions.file",
            "/var/lib/promtail/positions.yaml",
        ]);
        assert_eq!(c.config_flags.len(), 3);
        assert_eq!(
            c.config_flags[2],
            (
                "positions.file".into(),
                "/var/lib/promtail/positions.yaml".into()
            )
        );
    }

    fn invocation(args: &[&str]) -> Invocation {
        parse_invocation(
            std::iter::once("tailward")
                .chain(args.iter().copied())
                .map(String::from),
        )
        .unwrap()
    }

    #[test]
    fn first_argument_test_selects_the_test_subcommand() {
        let Invocation::Test(t) = invocation(&["test", "-inspect", "a.tests.yaml", "b.yaml"])
        else {
            panic!("expected the test subcommand");
        };
        assert_eq!(t.files, vec!["a.tests.yaml", "b.yaml"]);
        assert!(t.inspect);
        assert!(!t.expand_env);
        let Invocation::Test(t) = invocation(&["test", "--config.expand-env", "a.yaml"]) else {
            panic!("expected the test subcommand");
        };
        assert!(t.expand_env);
    }

    #[test]
    fn test_subcommand_needs_a_file_and_refuses_agent_flags() {
        let err = parse_invocation(["tailward", "test"].map(String::from)).unwrap_err();
        assert!(err.to_string().contains("FILE"), "{err}");
        let err = parse_invocation(["tailward", "test", "-dry-run", "a.yaml"].map(String::from))
            .unwrap_err();
        assert!(err.to_string().contains("dry-run"), "{err}");
    }

    #[test]
    fn agent_flags_without_test_parse_as_the_agent() {
        assert!(matches!(
            invocation(&["preset", "list"]),
            Invocation::Preset(PresetCli::List)
        ));
        let Invocation::Preset(PresetCli::Show(name)) = invocation(&["preset", "show", "auth"])
        else {
            panic!("expected preset show");
        };
        assert_eq!(name, "auth");
        assert!(parse_invocation(["tailward", "preset", "show"].map(String::from)).is_err());
        let Invocation::Agent(c) = invocation(&["-config.file=/x.yaml", "-inspect"]) else {
            panic!("expected the agent");
        };
        assert_eq!(c.config_file, "/x.yaml");
        assert!(c.inspect);
    }

    #[test]
    fn unknown_flag_is_an_error() {
        let err = parse(["tailward", "-no.such-flag"].map(String::from)).unwrap_err();
        assert!(err.to_string().contains("no.such-flag"), "{err}");
    }
}
