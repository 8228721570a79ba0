//! `auth_event`: a tailward extension that turns the messages of /var/log/auth.log and
//! /var/log/secure (sshd, sudo, su, PAM, the shadow tools, cron) into normalised fields, so
//! a query or a counter can ask for "failed logins" without knowing each daemon's wording.
//!
//! ```yaml
//! - syslog: {}          # sets program and message
//! - auth_event: {}      # program_source: program, source: message (the defaults)
//! ```
//!
//! It reads the program name and the message (what the `syslog` stage extracted), picks a
//! parser by program (so each line meets one daemon's handful of prefixes, not every
//! pattern), and writes into the extracted map, only for messages it recognises:
//! - `event`: `login_success`, `login_failure`, `login_postponed`, `login_partial`,
//!   `invalid_user`, `too_many_auth_failures`, `user_not_allowed`, `root_login_refused`,
//!   `disconnect`, `no_identification`, `bad_identification`, `negotiation_failed`,
//!   `reverse_mapping_failed`, `subsystem_request`, `auth_failure`, `session_open`,
//!   `session_close`, `sudo`, `sudo_failure`, `sudo_denied`, `su`, `su_failure`, `user_add`,
//!   `user_change`, `user_delete`, `group_add`, `group_member_add`, `group_delete`,
//!   `password_change`, `cron_command`;
//! - `status` (`success` or `failed`) and `login_attempts` (a count, usually 1) on login
//!   attempts only: sshd `Accepted`/`Failed` (also inside "message repeated N times"), su
//!   successes and failures. Invalid-user notices, PAM failures and disconnects that repeat an
//!   attempt already logged are not counted again;
//! - as the message has them: `user` (who logged in, ran sudo or su, or the account a
//!   shadow tool changed), `target_user` (sudo `USER=`, su's target), `by_user` (who opened a
//!   PAM session or changed a password), `source_ip`, `source_host` (a remote host given by
//!   name), `source_port`, `auth_method` (`password`, `publickey`, ...), `invalid_user` and
//!   `preauth` (`true`), `signature` (what sshd logged after `ssh2: `: the key), `tty`, `pwd`,
//!   `command`, `reason` (why sudo or sshd refused, the disconnect reason), `attempts`,
//!   `uid`, `gid`, `home`, `shell`, `group`;
//! - `ambiguous: "true"` when the line admits more than one reading (below).
//!
//! # Reading lines as their programs write them
//!
//! Each sshd and PAM form is the program's format string (OpenSSH's auth.c, auth2.c,
//! packet.c, sshd.c; Linux-PAM's pam_unix), with its fixed parts matched where the program
//! puts them: a remote user chooses the user name sshd logs (up to 100 bytes, any printable
//! text), what follows `ssh2: ` for some methods (a certificate's key id, hostbased's client
//! user and host, a GSSAPI principal), a disconnect reason, the client's version string; PAM
//! writes the user name it was given and the service's `rhost` and `ruser`. Such text can
//! reproduce the fixed parts (`Failed password for x from 10.0.0.1 port 22 ssh2` sent as a
//! user name), so:
//! - an address that follows attacker text is read from the right, where sshd's own text
//!   ends the line (`from IP port N ssh2`, `IP port N`), and only methods that append
//!   something after `ssh2` (publickey: the key; hostbased; GSSAPI) may have anything there,
//!   in the form sshd writes it (a key is `TYPE FINGERPRINT`, a fingerprint has no spaces);
//! - pam_unix's `logname= uid= euid= tty= ruser= rhost=  user=` is read in that order, `user`
//!   last, so a `rhost=` inside the user name stays in the user name;
//! - every reading the format allows is tried; when more than one fits, or when the message
//!   may have been cut (sshd hands syslog at most 500 bytes, and a cut message ends wherever
//!   the attacker's text put the cut), the line gets its `event`, `ambiguous: "true"` and
//!   only the fields that do not depend on the reading (no `source_ip`, `source_port` or
//!   `user`), and is counted in `tailward_auth_ambiguous_lines_total{job, reason}`
//!   (`several_readings`, `possibly_cut`).
//!
//! Messages it does not recognise are left without `event`. It must not change labels, the
//! line or the timestamp.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthEventConfig {
    /// Extracted key holding the program name; default `program`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_source: Option<String>,
    /// Extracted key holding the message; default `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub struct AuthEventStage {
    program_source: String,
    source: String,
    /// Reused between lines: the fields of the last recognised message.
    owned: Vec<(&'static str, String)>,
    /// `tailward_auth_ambiguous_lines_total{job, reason}` by [`Ambiguity`].
    ambiguous: [prometheus::IntCounter; 2],
}

impl AuthEventStage {
    pub fn new(cfg: &AuthEventConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        let key = |value: &Option<String>, name: &str, default: &str| match value.as_deref() {
            None => Ok(default.to_string()),
            Some("") => Err(StageError::new(name, "expected a non-empty extracted key")),
            Some(k) => Ok(k.to_string()),
        };
        let counter = |a: Ambiguity| {
            ctx.metrics
                .pipeline
                .auth_ambiguous_lines
                .with_label_values(&[&ctx.job, a.label()])
        };
        Ok(Self {
            program_source: key(&cfg.program_source, "program_source", "program")?,
            source: key(&cfg.source, "source", "message")?,
            owned: Vec::with_capacity(MAX_FIELDS + 3),
            ambiguous: [
                counter(Ambiguity::SeveralReadings),
                counter(Ambiguity::PossiblyCut),
            ],
        })
    }
}

impl Stage for AuthEventStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let Some(Value::String(message)) = entry.extracted.get(&self.source) else {
            return Verdict::Keep;
        };
        let program = match entry.extracted.get(&self.program_source) {
            Some(Value::String(p)) => p.as_str(),
            _ => "",
        };
        let Some(found) = normalise(program, message) else {
            return Verdict::Keep;
        };
        self.owned.clear();
        self.owned.push(("event", found.event.to_string()));
        if let Some((status, count)) = found.login {
            self.owned.push(("status", status.to_string()));
            self.owned.push(("login_attempts", count.to_string()));
        }
        if let Some(a) = found.ambiguity {
            self.ambiguous[a as usize].inc();
            self.owned.push(("ambiguous", "true".to_string()));
        }
        for (name, value) in found.fields() {
            self.owned.push((name, value.to_string()));
        }
        for (name, value) in self.owned.drain(..) {
            entry
                .extracted
                .insert(name.to_string(), Value::String(value));
        }
        Verdict::Keep
    }
}

const MAX_FIELDS: usize = 12;

/// sshd hands syslog at most this many bytes of a message (log.c, `"%.500s"`); a message
/// this long may have been cut.
const SSHD_SYSLOG_LIMIT: usize = 500;

/// Why a line's fields were left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ambiguity {
    /// More than one reading of the format fits the line.
    SeveralReadings = 0,
    /// The message is as long as sshd's syslog limit: its end may be a cut in attacker text.
    PossiblyCut = 1,
}

impl Ambiguity {
    pub fn label(self) -> &'static str {
        match self {
            Ambiguity::SeveralReadings => "several_readings",
            Ambiguity::PossiblyCut => "possibly_cut",
        }
    }
}

/// Fields that come from a form's fixed parts, the same in every reading: an ambiguous line
/// keeps these only.
const READING_INDEPENDENT: &[&str] = &["auth_method", "invalid_user", "preauth", "attempts"];

/// What one message said, borrowing from it.
#[derive(Clone, Debug)]
pub struct Found<'a> {
    pub event: &'static str,
    /// `(status, count)` of a login attempt.
    pub login: Option<(&'static str, &'a str)>,
    /// Set when the line admits more than one reading; the fields then hold only what every
    /// reading agrees on.
    pub ambiguity: Option<Ambiguity>,
    fields: [(&'static str, &'a str); MAX_FIELDS],
    len: usize,
}

impl<'a> Found<'a> {
    fn new(event: &'static str) -> Self {
        Self {
            event,
            login: None,
            ambiguity: None,
            fields: [("", ""); MAX_FIELDS],
            len: 0,
        }
    }

    /// The fields found, in the order they were set.
    pub fn fields(&self) -> &[(&'static str, &'a str)] {
        &self.fields[..self.len]
    }

    /// The value of field `name`, if set.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.fields()
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    }

    /// Records a field; empty values (`rhost=`, an empty user name) are left out.
    fn set(&mut self, name: &'static str, value: &'a str) -> &mut Self {
        if !value.is_empty() && self.len < MAX_FIELDS {
            self.fields[self.len] = (name, value);
            self.len += 1;
        }
        self
    }

    /// Replaces the value of field `name`.
    fn replace(&mut self, name: &str, value: &'a str) {
        if let Some(field) = self.fields[..self.len].iter_mut().find(|(k, _)| *k == name) {
            field.1 = value;
        }
    }

    /// A remote end as a program wrote it: `source_ip` for an address, `source_host` for a
    /// name, nothing for sshd's `UNKNOWN` (not a network connection).
    fn remote(&mut self, host: &'a str) -> &mut Self {
        if is_address(host) {
            if host != "UNKNOWN" {
                self.set("source_ip", host);
            }
            self
        } else {
            self.set("source_host", host)
        }
    }

    /// Marks the line ambiguous and drops every field that depends on the reading.
    fn ambiguous(mut self, why: Ambiguity) -> Self {
        let mut kept = 0;
        for i in 0..self.len {
            if READING_INDEPENDENT.contains(&self.fields[i].0) {
                self.fields[kept] = self.fields[i];
                kept += 1;
            }
        }
        self.len = kept;
        self.ambiguity = Some(why);
        self
    }
}

/// Picks the one reading of a line, or marks it: `readings` is how many fitted, `found` the
/// last that did (or the form's bare event when none did and the message may be cut).
fn settle(found: Found<'_>, readings: usize, cut: bool) -> Found<'_> {
    if readings > 1 {
        found.ambiguous(Ambiguity::SeveralReadings)
    } else if cut {
        found.ambiguous(Ambiguity::PossiblyCut)
    } else {
        found
    }
}

/// An address as sshd writes the remote end (`ssh_remote_ipaddr`): IPv4, IPv6 (a link-local
/// one with its `%zone`), or `UNKNOWN` when the connection is not a socket.
fn is_address(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() || s == "UNKNOWN" {
        return true;
    }
    match s.split_once('%') {
        Some((a, zone)) => {
            !zone.is_empty()
                && zone
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
                && a.parse::<std::net::Ipv6Addr>().is_ok()
        }
        None => false,
    }
}

/// A remote host as sshd's `auth_get_canonical_hostname` gives it: an address, or (with
/// `UseDNS yes`) a forward-confirmed DNS name.
fn is_host(s: &str) -> bool {
    is_address(s)
        || (!s.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_port(s: &str) -> bool {
    is_digits(s) && s.len() <= 5
}

/// The normalised event of `message` written by `program`, if it is one this stage knows.
pub fn normalise<'a>(program: &str, message: &'a str) -> Option<Found<'a>> {
    // A file written with CRLF ends each message in `\r`; no program here writes one.
    let message = message.strip_suffix('\r').unwrap_or(message);
    // rsyslog's `message repeated 2 times: [ Failed password for root from ...]`.
    if let Some(r) = message.strip_prefix("message repeated ") {
        let (count, inner) = r.split_once(" times: [ ")?;
        if !is_digits(count) {
            return None;
        }
        let inner = inner.strip_suffix(']').unwrap_or(inner).trim_end();
        let mut f = normalise_one(program, inner)?;
        if let Some((status, _)) = f.login {
            f.login = Some((status, count));
        }
        return Some(f);
    }
    normalise_one(program, message)
}

fn normalise_one<'a>(program: &str, message: &'a str) -> Option<Found<'a>> {
    // `sshd(pam_unix)`: older Red Hat PAM lines name the module after the program.
    let (base, module) = match program.split_once('(') {
        Some((base, module)) => (base, module.strip_suffix(')').unwrap_or(module)),
        None => (program, ""),
    };
    if module == "pam_unix" || message.starts_with("pam_unix") {
        return pam_unix(base, message);
    }
    match base {
        "sshd" | "sshd-session" | "sshd-auth" => sshd(message),
        "sudo" => sudo(message),
        "su" => su(message),
        "useradd" | "groupadd" | "usermod" | "userdel" | "groupdel" | "groupmod" | "passwd"
        | "chpasswd" | "chfn" | "chsh" | "chage" => shadow_tool(message),
        "CRON" | "cron" | "crond" => cron(message),
        _ => None,
    }
}

/// sshd, sshd-session and sshd-auth (OpenSSH 9.8+ split the per-connection work out).
fn sshd(message: &str) -> Option<Found<'_>> {
    // sshd's own limit counts the whole message, ` [preauth]` included.
    let cut = message.len() >= SSHD_SYSLOG_LIMIT;
    let (m, preauth) = match message.strip_suffix(" [preauth]") {
        Some(m) => (m, true),
        None => (message, false),
    };
    // The level prefixes log.c puts before error() and fatal() messages.
    let m = m
        .strip_prefix("error: ")
        .or_else(|| m.strip_prefix("fatal: "))
        .unwrap_or(m);
    let mut f = sshd_event(m, cut)?;
    if preauth {
        f.set("preauth", "true");
    }
    Some(f)
}

fn sshd_event(m: &str, cut: bool) -> Option<Found<'_>> {
    // auth.c auth_log(): `%s %s%s%s for %s%.100s from %.200s port %d ssh2%s%s`.
    for (prefix, event, status) in [
        ("Accepted ", "login_success", Some("success")),
        ("Failed ", "login_failure", Some("failed")),
        ("Postponed ", "login_postponed", None),
        ("Partial ", "login_partial", None),
    ] {
        if let Some(r) = m.strip_prefix(prefix) {
            return auth_log(r, event, status.map(|s| (s, "1")), cut);
        }
    }
    // auth.c getpwnamallow(): `Invalid user %.100s from %.100s port %d` (before 7.x without
    // the port; before 3.9 `Illegal user`).
    if let Some(r) = m
        .strip_prefix("Invalid user ")
        .or_else(|| m.strip_prefix("Illegal user "))
    {
        let mut f = Found::new("invalid_user");
        f.set("invalid_user", "true");
        let (user, remote) = user_from_remote(r)?;
        f.set("user", user);
        apply_remote(&mut f, remote);
        return Some(settle(f, 1, cut));
    }
    // auth2.c (before 7.x): `input_userauth_request: invalid user %s`.
    if let Some(user) = m
        .strip_prefix("input_userauth_request: invalid user ")
        .or_else(|| m.strip_prefix("input_userauth_request: illegal user "))
    {
        let mut f = Found::new("invalid_user");
        f.set("user", user).set("invalid_user", "true");
        return Some(f);
    }
    // auth.c auth_maxtries_exceeded(): `maximum authentication attempts exceeded for
    // %s%.100s from %.200s port %d ssh2`.
    if let Some(r) = m.strip_prefix("maximum authentication attempts exceeded for ") {
        let mut f = Found::new("too_many_auth_failures");
        let (r, invalid) = strip_invalid(r);
        if invalid {
            f.set("invalid_user", "true");
        }
        let r = r
            .strip_suffix(" ssh2")
            .or_else(|| r.strip_suffix(" ssh1"))
            .unwrap_or(r);
        let (user, remote) = user_from_remote(r)?;
        f.set("user", user);
        apply_remote(&mut f, remote);
        return Some(settle(f, 1, cut));
    }
    // Before 7.x: `Disconnecting: Too many authentication failures for [invalid user ]%.100s`;
    // `Disconnecting: REASON` otherwise.
    if let Some(r) = m.strip_prefix("Disconnecting: ") {
        if let Some(r) = r.strip_prefix("Too many authentication failures") {
            let mut f = Found::new("too_many_auth_failures");
            if let Some(r) = r.strip_prefix(" for ") {
                let (user, invalid) = strip_invalid(r);
                if invalid {
                    f.set("invalid_user", "true");
                }
                f.set("user", user);
            }
            return Some(f);
        }
        let mut f = Found::new("disconnect");
        f.set("reason", r);
        return Some(f);
    }
    // packet.c ssh_packet_disconnect(): `Disconnecting %s: %.100s`, the connection id then the
    // reason (both may hold a user's text).
    if let Some(r) = m.strip_prefix("Disconnecting ") {
        return remote_then_reason(r, cut, |reason| {
            if reason.starts_with("Too many authentication failures") {
                "too_many_auth_failures"
            } else {
                "disconnect"
            }
        });
    }
    // packet.c: `Received disconnect from %s port %d:%u: %.400s` (before 7.x `from %s: %u:
    // %.400s`), the address first.
    if let Some(r) = m.strip_prefix("Received disconnect from ") {
        let (ip, rest) = r.split_once(' ')?;
        let mut f = Found::new("disconnect");
        let reason = if let Some(rest) = rest.strip_prefix("port ") {
            if !is_address(ip) {
                return None;
            }
            let (port, rest) = rest.split_once(':')?;
            if !is_port(port) {
                return None;
            }
            f.remote(ip).set("source_port", port);
            disconnect_code(rest)?
        } else {
            let ip = ip.strip_suffix(':')?;
            if !is_address(ip) {
                return None;
            }
            f.remote(ip);
            disconnect_code(rest)?
        };
        f.set("reason", reason);
        return Some(f);
    }
    // packet.c sshpkt_fatal(): `Connection closed by %s`, `Connection reset by %s`,
    // `Disconnected from %s`, `Connection from %s timed out`, the connection id last.
    for (prefix, reason) in [
        ("Connection closed by ", ""),
        ("Connection reset by ", ""),
        ("Disconnected from ", ""),
    ] {
        if let Some(r) = m.strip_prefix(prefix) {
            let mut f = Found::new("disconnect");
            apply_remote(&mut f, remote_id(r)?);
            f.set("reason", reason);
            return Some(settle(f, 1, cut));
        }
    }
    if let Some(r) = m
        .strip_prefix("Connection from ")
        .and_then(|r| r.strip_suffix(" timed out"))
    {
        let mut f = Found::new("disconnect");
        apply_remote(&mut f, remote_id(r)?);
        f.set("reason", "timed out");
        return Some(settle(f, 1, cut));
    }
    // sshd.c grace_alarm_handler(): `Timeout before authentication for %s port %d`.
    if let Some(r) = m.strip_prefix("Timeout before authentication for ") {
        let mut f = Found::new("disconnect");
        apply_remote(&mut f, bare_remote(r)?);
        f.set("reason", "Timeout before authentication");
        return Some(f);
    }
    // sshd.c (before 8.0): `Did not receive identification string from %s port %d`.
    if let Some(r) = m.strip_prefix("Did not receive identification string from ") {
        let mut f = Found::new("no_identification");
        apply_remote(&mut f, bare_remote(r)?);
        return Some(f);
    }
    // sshd.c (before 8.0): `Bad protocol version identification '%.100s' from %s port %d`,
    // the client's text first.
    if let Some(r) = m.strip_prefix("Bad protocol version identification '") {
        let (_, remote) = r.rsplit_once("' from ")?;
        let mut f = Found::new("bad_identification");
        apply_remote(&mut f, bare_remote(remote)?);
        f.set("reason", "Bad protocol version identification");
        return Some(settle(f, 1, cut));
    }
    // sshd.c (before 7.4): `Protocol major versions differ for %s: %.200s vs. %.200s`.
    if let Some(r) = m.strip_prefix("Protocol major versions differ for ") {
        let (ip, _) = r.split_once(": ")?;
        let mut f = Found::new("bad_identification");
        apply_remote(&mut f, bare_remote(ip)?);
        f.set("reason", "Protocol major versions differ");
        return Some(f);
    }
    // kex.c (8.0+): `kex_exchange_identification: REASON`, no address (the next line,
    // `banner exchange: Connection from ...` or `Connection closed by ...`, has it).
    if let Some(r) = m.strip_prefix("kex_exchange_identification: ") {
        let event = if r.starts_with("Connection closed by remote host") || r.starts_with("read: ")
        {
            "no_identification"
        } else {
            "bad_identification"
        };
        let mut f = Found::new(event);
        // `client sent invalid protocol identifier "..."`: the quoted text is the client's.
        f.set("reason", r.split_once(" \"").map_or(r, |(fixed, _)| fixed));
        return Some(f);
    }
    // packet.c sshpkt_fatal(): `%s%sConnection %s %s: %s`, a tag (`banner exchange`,
    // `ssh_dispatch_run_fatal`), the connection id, the error.
    if let Some((tag, r)) = m.split_once(": Connection from ")
        && !tag.contains(": ")
    {
        let banner = tag == "banner exchange";
        return remote_then_reason(r, cut, |_| {
            if banner {
                "bad_identification"
            } else {
                "disconnect"
            }
        });
    }
    // packet.c: `Unable to negotiate with %s: no matching %s found. Their offer: %s`.
    if let Some(r) = m.strip_prefix("Unable to negotiate with ") {
        let mut f = remote_then_reason(r, cut, |_| "negotiation_failed")?;
        if let Some(reason) = f.get("reason") {
            // What follows `Their offer: ` is the client's list.
            let fixed = reason
                .split_once(". Their offer: ")
                .map_or(reason, |(r, _)| r);
            if !fixed.starts_with("no matching ") {
                return None;
            }
            f.replace("reason", fixed);
        }
        return Some(f);
    }
    // Before 7.0: `Unable to negotiate a key exchange method`, `no matching cipher found:
    // client %s server %s`.
    if m == "Unable to negotiate a key exchange method" {
        let mut f = Found::new("negotiation_failed");
        f.set("reason", "no matching key exchange method found");
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("no matching ") {
        let (what, _) = r.split_once(" found")?;
        let mut f = Found::new("negotiation_failed");
        f.set(
            "reason",
            &m[..("no matching ".len() + what.len() + " found".len())],
        );
        return Some(f);
    }
    // auth.c auth_root_allowed(): `ROOT LOGIN REFUSED FROM %.200s port %d`.
    if let Some(r) = m.strip_prefix("ROOT LOGIN REFUSED FROM ") {
        let mut f = Found::new("root_login_refused");
        f.set("user", "root");
        apply_remote(&mut f, bare_remote(r)?);
        return Some(f);
    }
    // auth.c allowed_user(): `User %.100s from %.100s not allowed because REASON`, or
    // `User %.100s not allowed because REASON`; the user is an existing account's name.
    if let Some(r) = m.strip_prefix("User ") {
        let (who, reason) = r.split_once(" not allowed because ")?;
        let known = matches!(
            reason,
            "not listed in AllowUsers"
                | "listed in DenyUsers"
                | "not in any group"
                | "a group is listed in DenyGroups"
                | "none of user's groups are listed in AllowGroups"
                | "account is locked"
        ) || (reason.starts_with("shell ")
            && (reason.ends_with(" does not exist") || reason.ends_with(" is not executable")));
        if !known {
            return None;
        }
        let mut f = Found::new("user_not_allowed");
        match who.rsplit_once(" from ") {
            Some((user, host)) if is_host(host) => {
                f.set("user", user).remote(host);
            }
            _ => {
                f.set("user", who);
            }
        }
        f.set("reason", reason);
        return Some(f);
    }
    // canohost.c / auth.c remote_hostname(): `reverse mapping checking getaddrinfo for
    // %.700s [%s] failed[ - POSSIBLE BREAK-IN ATTEMPT!]`, the name a PTR record chose first.
    if let Some(r) = m.strip_prefix("reverse mapping checking getaddrinfo for ") {
        let r = r
            .strip_suffix(" failed - POSSIBLE BREAK-IN ATTEMPT!")
            .or_else(|| r.strip_suffix(" failed."))
            .or_else(|| r.strip_suffix(" failed"))?;
        let (host, ip) = r.strip_suffix(']')?.rsplit_once(" [")?;
        if !is_address(ip) {
            return None;
        }
        let mut f = Found::new("reverse_mapping_failed");
        f.remote(ip).set("source_host", host);
        return Some(settle(f, 1, cut));
    }
    // `Address %.100s maps to %.600s, but this does not map back to the address[ - ...]`.
    if let Some(r) = m.strip_prefix("Address ") {
        let (ip, r) = r.split_once(" maps to ")?;
        if !is_address(ip) || !r.contains(", but this does not map back to the address") {
            return None;
        }
        let mut f = Found::new("reverse_mapping_failed");
        f.remote(ip);
        return Some(f);
    }
    // `Nasty PTR record "%s" is set up for %s, ignoring`.
    if let Some(r) = m.strip_prefix("Nasty PTR record \"") {
        let (_, ip) = r
            .strip_suffix(", ignoring")?
            .rsplit_once("\" is set up for ")?;
        if !is_address(ip) {
            return None;
        }
        let mut f = Found::new("reverse_mapping_failed");
        f.remote(ip).set("reason", "Nasty PTR record");
        return Some(settle(f, 1, cut));
    }
    // auth-pam.c: `PAM: %s for %s%.100s from %.100s` (pam_strerror, the user, the host).
    if let Some(r) = m.strip_prefix("PAM: ") {
        return pam_error(r, cut);
    }
    // pam_unix's `PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser=
    // rhost=1.2.3.4  user=root` as older Linux-PAM wrote it.
    if let Some(r) = m.strip_prefix("PAM ") {
        let (count, r) = r.split_once(" more authentication failure")?;
        if !is_digits(count) {
            return None;
        }
        let (_, pairs) = r.split_once("; ")?;
        let mut f = Found::new("auth_failure");
        f.set("attempts", count);
        return Some(pam_pairs(pairs, f, true));
    }
    // session.c: `subsystem request for %.100s by user %s[ failed, subsystem not found]`.
    if let Some(r) = m.strip_prefix("subsystem request for ") {
        let r = r.strip_suffix(" failed, subsystem not found").unwrap_or(r);
        let (_, user) = r.rsplit_once(" by user ")?;
        let mut f = Found::new("subsystem_request");
        f.set("user", user);
        return Some(f);
    }
    if let Some(reason) = m.strip_prefix("Write failed: ") {
        let mut f = Found::new("disconnect");
        f.set("reason", reason);
        return Some(f);
    }
    None
}

/// `[invalid user |illegal user ]REST`: REST and whether sshd marked the user invalid.
fn strip_invalid(r: &str) -> (&str, bool) {
    match r
        .strip_prefix("invalid user ")
        .or_else(|| r.strip_prefix("illegal user "))
    {
        Some(r) => (r, true),
        None => (r, false),
    }
}

/// What `ssh2: ` may be followed by, by method (auth.c `format_method_key`, the methods'
/// `auth2_record_info`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum InfoRule {
    /// password, none, keyboard-interactive, challenge-response: nothing follows.
    Nothing,
    /// publickey: the key.
    Key,
    /// hostbased: the key, then the client's user and host.
    HostKey,
    /// gssapi-with-mic (the principal) and methods of other builds: any text.
    Any,
}

fn info_rule(method: &str) -> InfoRule {
    match method.split('/').next().unwrap_or(method) {
        "password" | "none" | "keyboard-interactive" | "challenge-response" => InfoRule::Nothing,
        "publickey" => InfoRule::Key,
        "hostbased" => InfoRule::HostKey,
        _ => InfoRule::Any,
    }
}

/// After `Accepted `, `Failed `, `Postponed `, `Partial `:
/// `METHOD[/SUBMETHOD] for [invalid user ]USER from IP port PORT ssh2[: INFO]` (`ssh1` for
/// protocol 1, nothing after the port before OpenSSH 3; `illegal user` before 3.9). The user
/// is anything up to 100 bytes, so every ` from ` is tried as the start of sshd's tail.
fn auth_log<'a>(
    r: &'a str,
    event: &'static str,
    login: Option<(&'static str, &'a str)>,
    cut: bool,
) -> Option<Found<'a>> {
    let (method, r) = r.split_once(" for ")?;
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'@' | b'.' | b'_'))
    {
        return None;
    }
    let (r, invalid) = strip_invalid(r);
    let rule = info_rule(method);
    let mut f = Found::new(event);
    f.login = login;
    f.set("auth_method", method);
    if invalid {
        f.set("invalid_user", "true");
    }
    let mut readings = 0;
    let mut reading = None;
    let mut from = 0;
    while let Some(i) = r[from..].find(" from ") {
        let at = from + i;
        from = at + 1;
        if let Some(tail) = auth_tail(&r[at + " from ".len()..], rule) {
            readings += 1;
            reading = Some((&r[..at], tail));
        }
    }
    match reading {
        Some((user, (ip, port, info))) if readings == 1 && !cut => {
            f.set("user", user).remote(ip).set("source_port", port);
            f.set("signature", info);
            Some(f)
        }
        // No reading of a cut message still tells a login attempt happened.
        None if !cut => None,
        _ => Some(settle(f, readings, cut)),
    }
}

/// `IP port PORT[ ssh2[: INFO]]` to the end of the message: the address, port and INFO.
fn auth_tail(t: &str, rule: InfoRule) -> Option<(&str, &str, &str)> {
    let (ip, t) = t.split_once(" port ")?;
    if !is_address(ip) {
        return None;
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (port, t) = t.split_at(digits);
    if !is_port(port) {
        return None;
    }
    if t.is_empty() {
        return Some((ip, port, ""));
    }
    let t = t
        .strip_prefix(" ssh2")
        .or_else(|| t.strip_prefix(" ssh1"))?;
    if t.is_empty() {
        return Some((ip, port, ""));
    }
    let info = t.strip_prefix(": ")?;
    let ok = match rule {
        InfoRule::Nothing => false,
        InfoRule::Key => is_key_info(info),
        InfoRule::HostKey => is_hostbased_info(info),
        // sshd writes `ssh2: ` with nothing after it when the method's text is empty (an
        // empty principal): refusing that form would let a user name that carries a fake
        // tail be the only reading left.
        InfoRule::Any => true,
    };
    ok.then_some((ip, port, info))
}

/// sshkey_type(): `RSA`, `ED25519`, `ECDSA-SK`, `RSA-CERT`, ...
fn is_key_type(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'@' | b'.' | b'_'))
}

/// sshkey_fingerprint(): `SHA256:base64`, `MD5:hex:...`, before 6.8 bare `hex:...`; never
/// a space.
fn is_fingerprint(s: &str) -> bool {
    s == "(null)"
        || (s.contains(':')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'+' | b'/' | b'=')))
}

/// publickey's INFO: `TYPE FP`, a certificate `TYPE FP ID KEY-ID (serial N) CA TYPE FP`
/// (before 6.8 `TYPE ID KEY-ID (serial N) CA TYPE FP`), either followed by
/// `, signature count = N` for a security key.
fn is_key_info(s: &str) -> bool {
    let s = match s.rsplit_once(", signature count = ") {
        Some((key, n)) if is_digits(n) => key,
        _ => s,
    };
    let Some((ty, rest)) = s.split_once(' ') else {
        return false;
    };
    if !is_key_type(ty) {
        return false;
    }
    if !ty.contains("-CERT") {
        return is_fingerprint(rest);
    }
    let rest = match rest.split_once(' ') {
        Some((fp, r)) if is_fingerprint(fp) => r,
        _ => rest,
    };
    // The key id (any text, chosen by whoever signed the certificate) from the left, the
    // serial and the CA from the right.
    let Some(r) = rest.strip_prefix("ID ") else {
        return false;
    };
    let Some((before, ca)) = r.rsplit_once(") CA ") else {
        return false;
    };
    let serial_ok = before
        .rsplit_once(" (serial ")
        .is_some_and(|(_, n)| is_digits(n));
    let ca_ok = ca
        .split_once(' ')
        .is_some_and(|(t, fp)| is_key_type(t) && is_fingerprint(fp));
    serial_ok && ca_ok
}

/// hostbased's INFO: `[TYPE FP, ]client user "%.100s", client host "%.100s"`.
fn is_hostbased_info(s: &str) -> bool {
    let s = match s.split_once(", ") {
        Some((key, rest)) if !key.starts_with("client user ") => {
            if !key
                .split_once(' ')
                .is_some_and(|(t, fp)| is_key_type(t) && is_fingerprint(fp))
            {
                return false;
            }
            rest
        }
        _ => s,
    };
    s.starts_with("client user \"") && s.ends_with('"') && s.contains("\", client host \"")
}

/// A connection id as packet.c writes it (`sshpkt_fmt_connection_id`): a preamble naming the
/// user, then the address and port.
#[derive(Clone, Copy)]
struct Remote<'a> {
    user: Option<&'a str>,
    invalid: bool,
    ip: &'a str,
    port: Option<&'a str>,
}

fn apply_remote<'a>(f: &mut Found<'a>, r: Remote<'a>) {
    if let Some(user) = r.user {
        f.set("user", user);
    }
    if r.invalid {
        f.set("invalid_user", "true");
    }
    f.remote(r.ip);
    if let Some(port) = r.port {
        f.set("source_port", port);
    }
}

/// `IP port PORT` or (before 7.x) `IP`, with nothing around it.
fn bare_remote(s: &str) -> Option<Remote<'_>> {
    let (ip, port) = match s.split_once(" port ") {
        Some((ip, port)) if is_port(port) => (ip, Some(port)),
        Some(_) => return None,
        None => (s, None),
    };
    is_address(ip).then_some(Remote {
        user: None,
        invalid: false,
        ip,
        port,
    })
}

/// `[authenticating user |invalid user |user ]USER IP port PORT`, `IP port PORT` or (before
/// 7.x) `IP`: the whole of `s`, read from the right (the user name may hold anything).
fn remote_id(s: &str) -> Option<Remote<'_>> {
    let Some((before, port)) = s.rsplit_once(" port ") else {
        return bare_remote(s);
    };
    if !is_port(port) {
        return None;
    }
    let (who, ip) = match before.rsplit_once(' ') {
        Some((who, ip)) => (Some(who), ip),
        None => (None, before),
    };
    if !is_address(ip) {
        return None;
    }
    let (user, invalid) = match who {
        None => (None, false),
        Some(who) => {
            if let Some(u) = who.strip_prefix("authenticating user ") {
                (Some(u), false)
            } else if let Some(u) = who.strip_prefix("invalid user ") {
                (Some(u), true)
            } else if let Some(u) = who.strip_prefix("user ") {
                (Some(u), false)
            } else {
                return None;
            }
        }
    };
    Some(Remote {
        user,
        invalid,
        ip,
        port: Some(port),
    })
}

/// `CONNECTION-ID: REASON`: both may hold a user's text, so every `: ` is tried.
fn remote_then_reason<'a>(
    r: &'a str,
    cut: bool,
    event: impl Fn(&str) -> &'static str,
) -> Option<Found<'a>> {
    let mut readings = 0;
    let mut reading = None;
    let mut from = 0;
    while let Some(i) = r[from..].find(": ") {
        let at = from + i;
        from = at + 1;
        if let Some(remote) = remote_id(&r[..at]) {
            readings += 1;
            reading = Some((remote, &r[at + 2..]));
        }
    }
    let (remote, reason) = reading?;
    let mut f = Found::new(event(reason));
    apply_remote(&mut f, remote);
    f.set("reason", reason);
    Some(settle(f, readings, cut))
}

/// After `Received disconnect from ADDRESS[ port N]:`: `CODE: REASON` (`11: Bye Bye`).
fn disconnect_code(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let (code, reason) = s.split_once(": ").unwrap_or((s, ""));
    is_digits(code).then_some(reason)
}

/// `USER from ADDRESS port N` or `USER from ADDRESS`, read from the right (the address has
/// no space, so the tail is the last ` from `).
fn user_from_remote(r: &str) -> Option<(&str, Remote<'_>)> {
    let (head, port) = match r.rsplit_once(" port ") {
        Some((head, port)) if is_port(port) => (head, Some(port)),
        _ => (r, None),
    };
    let (user, ip) = head.rsplit_once(" from ")?;
    is_address(ip).then_some((
        user,
        Remote {
            user: None,
            invalid: false,
            ip,
            port,
        },
    ))
}

/// auth-pam.c: `PAM: %s for %s%.100s from %.100s` (pam_strerror, `illegal user ` when the
/// user is not valid, the user, the canonical host), which some builds end in ` via ADDRESS`
/// (fail2ban's sshd filter reads that form). The host after `from` is the peer, as fail2ban
/// takes it; `via` is kept as written and never taken for the source. Host and `via` hold no
/// space, so reading from the right leaves one reading.
fn pam_error(r: &str, cut: bool) -> Option<Found<'_>> {
    let (r, via) = match r.rsplit_once(" via ") {
        Some((head, via))
            if is_host(via) && head.rsplit_once(" from ").is_some_and(|(_, h)| is_host(h)) =>
        {
            (head, Some(via))
        }
        _ => (r, None),
    };
    let (head, host) = r.rsplit_once(" from ")?;
    if !is_host(host) {
        return None;
    }
    // pam_strerror's PAM_MAXTRIES text has a ` for ` of its own.
    const MAXTRIES: &str = "Have exhausted maximum number of retries for service.";
    let (reason, who) = match head.strip_prefix(MAXTRIES) {
        Some(rest) => (MAXTRIES, rest.strip_prefix(" for ")?),
        None => head.split_once(" for ")?,
    };
    let (user, invalid) = match who.strip_prefix("illegal user ") {
        Some(u) => (u, true),
        None => (who, false),
    };
    let mut f = Found::new("auth_failure");
    f.set("user", user).set("reason", reason);
    if invalid {
        f.set("invalid_user", "true");
    }
    f.remote(host);
    if let Some(via) = via {
        f.set("via", via);
    }
    Some(settle(f, 1, cut))
}

/// Linux-PAM's pam_unix in its three spellings: `pam_unix(SERVICE:TYPE): TEXT` (pam_syslog),
/// `pam_unix: TEXT`, and TEXT alone from a program named `sshd(pam_unix)` (older Red Hat).
/// `program` is the base of a `PROGRAM(pam_unix)` name, or the program the line came from.
fn pam_unix<'a>(program: &str, message: &'a str) -> Option<Found<'a>> {
    let (service, m) = if let Some(r) = message.strip_prefix("pam_unix(") {
        let (service, text) = r.split_once("): ")?;
        if service.contains(' ') {
            return None;
        }
        (service.split(':').next().unwrap_or(service), text)
    } else if let Some(r) = message.strip_prefix("pam_unix: ") {
        (program, r)
    } else if message.starts_with("pam_unix") {
        return None;
    } else {
        (program, message)
    };
    let sshd = matches!(service, "sshd" | "sshd-session" | "sshd-auth");
    // pam_unix_sess.c: `session opened for user %s(uid=%s) by %s(uid=%lu)` (before 1.5
    // `session opened for user %s by %s(uid=%lu)`); the name after `by` is the login name.
    if let Some(r) = m.strip_prefix("session opened for user ") {
        let (user, by) = r.rsplit_once(" by ").unwrap_or((r, ""));
        let user = user.split_once('(').map_or(user, |(u, _)| u);
        let mut f = Found::new("session_open");
        f.set("user", user);
        let (by_user, uid) = match by.split_once("(uid=") {
            Some((name, uid)) => (name, uid.strip_suffix(')').unwrap_or(uid)),
            None => (by, ""),
        };
        f.set("by_user", by_user).set("uid", uid);
        return Some(f);
    }
    if let Some(user) = m.strip_prefix("session closed for user ") {
        let mut f = Found::new("session_close");
        f.set("user", user.split_once('(').map_or(user, |(u, _)| u));
        return Some(f);
    }
    // support.c: `authentication failure; logname=%s uid=%d euid=%d tty=%s ruser=%s
    // rhost=%s %s%s` (` user=NAME` only when there is a name).
    if let Some(r) = m.strip_prefix("authentication failure; ") {
        return Some(pam_pairs(r, Found::new("auth_failure"), sshd));
    }
    // support.c _cleanup_failures(): `%d more authentication failure%s; logname=...`.
    if let Some((count, r)) = m.split_once(" more authentication failure") {
        if !is_digits(count) {
            return None;
        }
        let (_, pairs) = r.split_once("; ")?;
        let mut f = Found::new("auth_failure");
        f.set("attempts", count);
        return Some(pam_pairs(pairs, f, sshd));
    }
    if m == "check pass; user unknown" {
        let mut f = Found::new("auth_failure");
        f.set("reason", "user unknown");
        return Some(f);
    }
    // With the `audit` option: `check pass; user (%s) unknown`.
    if let Some(user) = m
        .strip_prefix("check pass; user (")
        .and_then(|r| r.strip_suffix(") unknown"))
    {
        let mut f = Found::new("auth_failure");
        f.set("user", user).set("reason", "user unknown");
        return Some(f);
    }
    if let Some(user) = m
        .strip_prefix("auth could not identify password for [")
        .and_then(|r| r.strip_suffix(']'))
    {
        let mut f = Found::new("auth_failure");
        f.set("user", user)
            .set("reason", "could not identify password");
        return Some(f);
    }
    if let Some(user) = m
        .strip_prefix("bad username [")
        .and_then(|r| r.strip_suffix(']'))
    {
        let mut f = Found::new("auth_failure");
        f.set("user", user).set("reason", "bad username");
        return Some(f);
    }
    if let Some(user) = m.strip_prefix("password changed for ") {
        let mut f = Found::new("password_change");
        f.set("user", user);
        return Some(f);
    }
    None
}

/// pam_unix's `logname=%s uid=%d euid=%d tty=%s ruser=%s rhost=%s[  user=%s]` (one space
/// before `user=` from pam_sss and pam_pwaccess). `ruser` (what the service set; sshd sets
/// none) and the user name (sshd's: whatever the client sent) may hold anything, `rhost` is
/// one word (sshd: the address, or a forward-confirmed name), so every ` rhost=` is tried;
/// more than one fitting makes the line ambiguous. Pairs in another order or with some
/// missing are read one by one, trusting `rhost` only when it comes before any `user=` and
/// `ruser=` (whose values could hold it) and is given once.
fn pam_pairs<'a>(s: &'a str, f: Found<'a>, sshd: bool) -> Found<'a> {
    match pam_pairs_in_order(s, sshd) {
        Some((readings, p)) => {
            let mut f = f;
            f.set("user", p.user).set("uid", p.uid).set("tty", p.tty);
            if !p.rhost.is_empty() {
                f.remote(p.rhost);
            }
            settle(f, readings, false)
        }
        None => pam_pairs_any_order(s, f, sshd),
    }
}

struct PamPairs<'a> {
    uid: &'a str,
    tty: &'a str,
    rhost: &'a str,
    user: &'a str,
}

/// The readings of pam_unix's order: how many fit, and the last.
fn pam_pairs_in_order(s: &str, sshd: bool) -> Option<(usize, PamPairs<'_>)> {
    // logname, uid, euid and tty are one word each.
    fn value<'a>(s: &'a str, key: &str) -> Option<(&'a str, &'a str)> {
        s.strip_prefix(key)?.split_once(' ')
    }
    let (_logname, r) = value(s, "logname=")?;
    let (uid, r) = value(r, "uid=")?;
    let (euid, r) = value(r, "euid=")?;
    let number = |v: &str| is_digits(v.strip_prefix('-').unwrap_or(v));
    if !number(uid) || !number(euid) {
        return None;
    }
    let (tty, r) = value(r, "tty=")?;
    let r = r.strip_prefix("ruser=")?;
    let mut readings = 0;
    let mut last = None;
    let mut from = 0;
    while let Some(i) = r[from..].find(" rhost=") {
        let at = from + i;
        from = at + 1;
        let ruser = &r[..at];
        if sshd && !ruser.is_empty() {
            continue;
        }
        let after = &r[at + " rhost=".len()..];
        let (rhost, rest) = match after.find(' ') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        // pam_unix leaves the space before an absent ` user=NAME`.
        let user = if rest.is_empty() || rest == " " {
            ""
        } else {
            match rest
                .strip_prefix("  user=")
                .or_else(|| rest.strip_prefix(" user="))
            {
                // pam_pwaccess: `user=%s%s` with `, no_new_privs=1`.
                Some(u) => u.strip_suffix(", no_new_privs=1").unwrap_or(u),
                None => continue,
            }
        };
        readings += 1;
        last = Some(PamPairs {
            uid,
            tty,
            rhost,
            user,
        });
    }
    Some((readings, last?))
}

fn pam_pairs_any_order<'a>(s: &'a str, mut f: Found<'a>, sshd: bool) -> Found<'a> {
    let (mut user, mut uid, mut tty, mut rhost) = (None, None, None, None);
    let mut rhosts = 0;
    let mut free_text_before_rhost = false;
    let mut free_text_seen = false;
    for pair in s.split(' ') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        match key {
            "user" => {
                user.get_or_insert(value);
                free_text_seen = true;
            }
            // sshd sets no ruser, so its `ruser=` is empty; another service's may hold text
            // up to a later `rhost=`.
            "ruser" => free_text_seen |= !sshd || !value.is_empty(),
            "uid" => {
                uid.get_or_insert(value);
            }
            "tty" => {
                tty.get_or_insert(value);
            }
            "rhost" => {
                rhosts += 1;
                rhost = Some(value);
                free_text_before_rhost |= free_text_seen;
            }
            _ => {}
        }
    }
    if rhosts > 1 || (rhosts == 1 && free_text_before_rhost) {
        return f.ambiguous(Ambiguity::SeveralReadings);
    }
    f.set("user", user.unwrap_or(""))
        .set("uid", uid.unwrap_or(""))
        .set("tty", tty.unwrap_or(""));
    if let Some(host) = rhost.filter(|h| !h.is_empty()) {
        f.remote(host);
    }
    f
}

/// sudo's `USER : [REASON ; ]TTY=pts/0 ; PWD=/home/u ; USER=root ; [GROUP=g ; ]COMMAND=...`
/// (logging.c / eventlog.c): the reason is a fixed text (`user NOT in sudoers`, `3 incorrect
/// password attempts`, `command not allowed`, ...), the keys in that order, the command last.
fn sudo(m: &str) -> Option<Found<'_>> {
    let (user, mut rest) = m.split_once(" : ")?;
    let user = user.trim();
    if user.is_empty() || user.contains(' ') {
        return None;
    }
    let mut f = Found::new("sudo");
    f.set("user", user);
    let mut known = false;
    let mut first = true;
    while !rest.is_empty() {
        if let Some(command) = rest.strip_prefix("COMMAND=") {
            // The command may itself contain ` ; `.
            f.set("command", command);
            known = true;
            break;
        }
        let (segment, next) = rest.split_once(" ; ").unwrap_or((rest, ""));
        rest = next;
        let was_first = std::mem::replace(&mut first, false);
        if let Some(v) = segment.strip_prefix("TTY=") {
            f.set("tty", v);
        } else if let Some(v) = segment.strip_prefix("PWD=") {
            f.set("pwd", v);
        } else if let Some(v) = segment.strip_prefix("USER=") {
            f.set("target_user", v);
        } else if let Some((count, _)) = segment
            .split_once(" incorrect password attempt")
            .filter(|(c, _)| was_first && is_digits(c))
        {
            f.event = "sudo_failure";
            f.set("attempts", count);
        } else if was_first && is_sudo_refusal(segment) {
            f.event = "sudo_denied";
            f.set("reason", segment);
        } else if segment.contains('=') {
            // GROUP=, TSID=, ENV=, HOST=, CHROOT=, CWD=: known keys sudo may add.
            continue;
        } else {
            return None;
        }
        known = true;
    }
    known.then_some(f)
}

/// The reasons sudo logs before the keys when it refuses a command.
fn is_sudo_refusal(s: &str) -> bool {
    s.contains("NOT in sudoers")
        || s.starts_with("user NOT authorized")
        || s == "command not allowed"
        || s == "a password is required"
        || s.starts_with("no tty present")
        || s.starts_with("a terminal is required")
}

fn su(m: &str) -> Option<Found<'_>> {
    // shadow's su: `Successful su for root by bob`, `FAILED su for root by bob`,
    // `+ pts/0 bob:root`, `- pts/0 bob:root`; util-linux su: `(to root) bob on pts/0`,
    // `FAILED SU (to root) bob on pts/0`.
    let (event, status, r) = if let Some(r) = m.strip_prefix("Successful su for ") {
        ("su", "success", r)
    } else if let Some(r) = m.strip_prefix("FAILED su for ") {
        ("su_failure", "failed", r)
    } else {
        return su_terminal(m);
    };
    let (target, user) = r.split_once(" by ")?;
    let mut f = Found::new(event);
    f.login = Some((status, "1"));
    f.set("user", user).set("target_user", target);
    Some(f)
}

fn su_terminal(m: &str) -> Option<Found<'_>> {
    let (failed, m) = match m.strip_prefix("FAILED SU ") {
        Some(r) => (true, r),
        None => (false, m),
    };
    if let Some(r) = m.strip_prefix("(to ") {
        let (target, r) = r.split_once(") ")?;
        let (user, tty) = r.split_once(" on ").unwrap_or((r, ""));
        let mut f = Found::new(if failed { "su_failure" } else { "su" });
        f.login = Some((if failed { "failed" } else { "success" }, "1"));
        f.set("user", user)
            .set("target_user", target)
            .set("tty", tty);
        return Some(f);
    }
    if failed {
        return None;
    }
    // `+ /dev/pts/1 root:tsg` repeats `Successful su`, so it is not a second attempt.
    let (event, r) = if let Some(r) = m.strip_prefix("+ ") {
        ("su", r)
    } else if let Some(r) = m.strip_prefix("- ") {
        ("su_failure", r)
    } else {
        return None;
    };
    let (tty, users) = r.split_once(' ')?;
    let (user, target) = users.split_once(':')?;
    let mut f = Found::new(event);
    f.set("user", user)
        .set("target_user", target)
        .set("tty", tty);
    Some(f)
}

fn shadow_tool(m: &str) -> Option<Found<'_>> {
    if let Some(r) = m.strip_prefix("new user: ") {
        let mut f = Found::new("user_add");
        for pair in r.split(", ") {
            match pair.split_once('=') {
                Some(("name", v)) => f.set("user", v),
                Some(("UID", v)) => f.set("uid", v),
                Some(("GID", v)) => f.set("gid", v),
                Some(("home", v)) => f.set("home", v),
                Some(("shell", v)) => f.set("shell", v),
                _ => continue,
            };
        }
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("new group: ") {
        let mut f = Found::new("group_add");
        for pair in r.split(", ") {
            match pair.split_once('=') {
                Some(("name", v)) => f.set("group", v),
                Some(("GID", v)) => f.set("gid", v),
                _ => continue,
            };
        }
        return Some(f);
    }
    let quoted = |s: &'static str| {
        move |m: &str| -> Option<(usize, usize)> {
            let start = m.find(s)? + s.len();
            let len = m[start..].find('\'')?;
            Some((start, start + len))
        }
    };
    if m.starts_with("add '") && m.contains("' to group '") {
        // `add 'bob' to group 'sudo'` (the `shadow group` line repeats it)
        let (u0, u1) = quoted("add '")(m)?;
        let (g0, g1) = quoted("' to group '")(m)?;
        let mut f = Found::new("group_member_add");
        f.set("user", &m[u0..u1]).set("group", &m[g0..g1]);
        return Some(f);
    }
    if m.starts_with("delete user '") {
        let (u0, u1) = quoted("delete user '")(m)?;
        let mut f = Found::new("user_delete");
        f.set("user", &m[u0..u1]);
        return Some(f);
    }
    if m.starts_with("group '") && m.ends_with("' removed") {
        let mut f = Found::new("group_delete");
        f.set("group", &m["group '".len()..m.len() - "' removed".len()]);
        return Some(f);
    }
    if m.starts_with("password for '") {
        // `password for 'bob' changed by 'root'`
        let (u0, u1) = quoted("password for '")(m)?;
        let mut f = Found::new("password_change");
        f.set("user", &m[u0..u1]);
        if let Some((b0, b1)) = quoted("changed by '")(m) {
            f.set("by_user", &m[b0..b1]);
        }
        return Some(f);
    }
    if m.starts_with("changed user '") || m.starts_with("change user '") {
        let start = m.find('\'')? + 1;
        let len = m[start..].find('\'')?;
        let mut f = Found::new("user_change");
        f.set("user", &m[start..start + len]);
        return Some(f);
    }
    if let Some(user) = m.strip_prefix("changed password expiry for ") {
        let mut f = Found::new("user_change");
        f.set("user", user);
        return Some(f);
    }
    None
}

/// `(root) CMD (command)`
fn cron(m: &str) -> Option<Found<'_>> {
    let r = m.strip_prefix('(')?;
    let (user, r) = r.split_once(") CMD ")?;
    let command = r
        .strip_prefix('(')
        .and_then(|c| c.strip_suffix(')'))
        .unwrap_or(r);
    let mut f = Found::new("cron_command");
    f.set("user", user).set("command", command);
    Some(f)
}

#[cfg(test)]
mod tests;
