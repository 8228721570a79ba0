//! The end-to-end tests, one module per behaviour, compiled into one test binary: one link
//! of the crate and its dependencies instead of one per file, and `support` built once.
//! Run one behaviour with `cargo test --test tests <module>::`.

mod support;

mod auth_preset_agrees_with_filebeat;
mod bad_config_refuses_to_start;
mod bad_files_never_stop_the_agent;
mod bad_lines_are_counted_not_fatal;
mod compressed_files_are_read_once;
mod deb_package_contents;
mod delivery_retries_and_drops;
mod delivery_survives_kills_and_outages;
mod disk_buffer_survives_outages_and_faults;
mod dry_run_matches_promtail_format;
mod encoded_files_arrive_as_utf8;
mod file_changes_wake_the_tailer;
mod geoip_stage_sets_labels;
mod http_server_enforces_limits_and_tls;
mod idle_files_closed_for_the_open_file_limit;
mod inspect_shows_each_stage_change;
mod journal_source_reads_and_resumes;
mod journald_logging_omits_timestamps;
mod json_log_reaches_loki;
mod loki_receiver_is_strict;
mod metrics_and_ready_endpoints;
mod metrics_stage_exposes_series;
mod new_file_start_options;
mod nginx_forms_from_nginx_source;
mod nginx_presets_agree_with_ground_truth;
mod nginx_presets_on_hostile_requests;
mod nginx_presets_with_real_nginx;
mod positions_resume_after_restart;
mod presets_score_on_shared_data;
mod promtail_pages;
mod python_traceback_preset_keeps_tracebacks_whole;
mod ready_configs_run_as_shipped;
mod reload_applies_config_changes;
mod restart_across_rotation;
mod rotation_python_rotating_file_handler;
mod rotation_real_logrotate;
mod stage_cases_match_dry_run;
mod systemd_notify_protocol;
mod systemd_unit_passes_analyze;
mod systemd_unit_sandbox_allows_what_the_agent_does;
mod tailing_matches_a_model_of_the_files;
mod tailward_test_command;
mod ten_thousand_files_are_all_tailed_with_bounded_resources;
