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
//! - `event`: `login_success`, `login_failure`, `invalid_user`, `too_many_auth_failures`,
//!   `disconnect`, `no_identification`, `reverse_mapping_failed`, `subsystem_request`,
//!   `auth_failure`, `session_open`, `session_close`, `sudo`, `sudo_failure`, `sudo_denied`,
//!   `su`, `su_failure`, `user_add`, `user_change`, `user_delete`, `group_add`,
//!   `group_member_add`, `group_delete`, `password_change`, `cron_command`;
//! - `status` (`success` or `failed`) and `login_attempts` (a count, usually 1) on login
//!   attempts only: sshd `Accepted`/`Failed` (also inside "message repeated N times"), su
//!   successes and failures. Invalid-user notices, PAM failures and disconnects that repeat an
//!   attempt already logged are not counted again;
//! - as the message has them: `user` (who logged in, ran sudo or su, or the account a
//!   shadow tool changed), `target_user` (sudo `USER=`, su's target), `by_user` (who opened a
//!   PAM session or changed a password), `source_ip`, `source_host` (a remote host given by
//!   name), `source_port`, `auth_method` (`password`, `publickey`, ...), `invalid_user` and
//!   `preauth` (`true`), `signature` (the key sshd accepted), `tty`, `pwd`, `command`, `reason` (why sudo refused, the disconnect
//!   reason), `attempts` (sudo's incorrect password count), `uid`, `gid`, `home`, `shell`,
//!   `group`.
//!
//! Messages it does not recognise are left without `event`. It must not change labels, the
//! line or the timestamp.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

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
}

impl AuthEventStage {
    pub fn new(cfg: &AuthEventConfig) -> Result<Self, StageError> {
        let key = |value: &Option<String>, name: &str, default: &str| match value.as_deref() {
            None => Ok(default.to_string()),
            Some("") => Err(StageError::new(name, "expected a non-empty extracted key")),
            Some(k) => Ok(k.to_string()),
        };
        Ok(Self {
            program_source: key(&cfg.program_source, "program_source", "program")?,
            source: key(&cfg.source, "source", "message")?,
            owned: Vec::with_capacity(MAX_FIELDS),
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
        for (name, value) in &found.fields[..found.len] {
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

/// What one message said, borrowing from it.
#[derive(Debug)]
pub struct Found<'a> {
    pub event: &'static str,
    /// `(status, count)` of a login attempt.
    pub login: Option<(&'static str, &'a str)>,
    fields: [(&'static str, &'a str); MAX_FIELDS],
    len: usize,
}

impl<'a> Found<'a> {
    fn new(event: &'static str) -> Self {
        Self {
            event,
            login: None,
            fields: [("", ""); MAX_FIELDS],
            len: 0,
        }
    }

    /// Records a field; empty values (`rhost=`, an empty user name) are left out.
    fn set(&mut self, name: &'static str, value: &'a str) -> &mut Self {
        if !value.is_empty() && self.len < MAX_FIELDS {
            self.fields[self.len] = (name, value);
            self.len += 1;
        }
        self
    }

    /// A remote address: `source_ip` when it is one, `source_host` otherwise.
    fn remote(&mut self, host: &'a str) -> &mut Self {
        if host.parse::<IpAddr>().is_ok() {
            self.set("source_ip", host)
        } else {
            self.set("source_host", host)
        }
    }
}

/// The normalised event of `message` written by `program`, if it is one this stage knows.
pub fn normalise<'a>(program: &str, message: &'a str) -> Option<Found<'a>> {
    // `sshd(pam_unix)`: old Red Hat PAM lines name the module after the program.
    let (base, module) = match program.split_once('(') {
        Some((base, module)) => (base, module.strip_suffix(')').unwrap_or(module)),
        None => (program, ""),
    };
    if module == "pam_unix" {
        return pam_unix(message);
    }
    if message.starts_with("pam_unix(") {
        return pam_unix(message);
    }
    match base {
        "sshd" | "sshd-session" => sshd(message),
        "sudo" => sudo(message),
        "su" => su(message),
        "useradd" | "groupadd" | "usermod" | "userdel" | "groupdel" | "groupmod" | "passwd"
        | "chpasswd" | "chfn" | "chsh" | "chage" => shadow_tool(message),
        "CRON" | "cron" | "crond" => cron(message),
        _ => None,
    }
}

fn sshd(message: &str) -> Option<Found<'_>> {
    let (m, preauth) = match message.strip_suffix(" [preauth]") {
        Some(m) => (m, true),
        None => (message, false),
    };
    let mut f = sshd_event(m)?;
    if preauth {
        f.set("preauth", "true");
    }
    Some(f)
}

fn sshd_event(m: &str) -> Option<Found<'_>> {
    if let Some(r) = m.strip_prefix("Accepted ") {
        return login_attempt(r, "login_success", "success", "1");
    }
    if let Some(r) = m.strip_prefix("Failed ") {
        return login_attempt(r, "login_failure", "failed", "1");
    }
    if let Some(r) = m.strip_prefix("message repeated ") {
        // `message repeated 2 times: [ Failed password for root from 1.2.3.4 port 22 ssh2]`
        let (count, inner) = r.split_once(" times: [ ")?;
        let inner = inner.strip_suffix(']').unwrap_or(inner).trim_end();
        if let Some(r) = inner.strip_prefix("Failed ") {
            return login_attempt(r, "login_failure", "failed", count);
        }
        if let Some(r) = inner.strip_prefix("Accepted ") {
            return login_attempt(r, "login_success", "success", count);
        }
        return None;
    }
    if let Some(r) = m.strip_prefix("Invalid user ") {
        // `Invalid user bob from 1.2.3.4[ port 22]`; the name may be empty.
        let (user, addr) = r.rsplit_once(" from ")?;
        let mut f = Found::new("invalid_user");
        f.set("user", user).set("invalid_user", "true");
        address_and_port(addr, &mut f);
        return Some(f);
    }
    if let Some(user) = m.strip_prefix("input_userauth_request: invalid user ") {
        let mut f = Found::new("invalid_user");
        f.set("user", user).set("invalid_user", "true");
        return Some(f);
    }
    if let Some(r) = m
        .strip_prefix("Disconnecting: Too many authentication failures")
        .or_else(|| m.strip_prefix("error: maximum authentication attempts exceeded"))
    {
        let mut f = Found::new("too_many_auth_failures");
        if let Some(r) = r.strip_prefix(" for ") {
            let (r, invalid) = match r.strip_prefix("invalid user ") {
                Some(r) => (r, true),
                None => (r, false),
            };
            let (user, addr) = r.rsplit_once(" from ").unwrap_or((r, ""));
            f.set("user", user);
            if invalid {
                f.set("invalid_user", "true");
            }
            address_and_port(addr, &mut f);
        }
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("Disconnecting invalid user ") {
        // `Disconnecting invalid user bob 1.2.3.4 port 22: Too many authentication failures`
        let (who, reason) = r.split_once(": ").unwrap_or((r, ""));
        let event = if reason.starts_with("Too many authentication failures") {
            "too_many_auth_failures"
        } else {
            "disconnect"
        };
        let mut f = Found::new(event);
        f.set("invalid_user", "true").set("reason", reason);
        user_address_and_port(who, &mut f);
        return Some(f);
    }
    if let Some(r) = m
        .strip_prefix("Received disconnect from ")
        .or_else(|| m.strip_prefix("error: Received disconnect from "))
    {
        // `Received disconnect from 1.2.3.4[ port 22]:11: Bye Bye`
        let mut f = Found::new("disconnect");
        let (addr, reason) = match r.find(": ") {
            Some(i) => (&r[..i], &r[i + 2..]),
            None => (r, ""),
        };
        let (addr, _code) = match addr.rsplit_once(':') {
            Some((a, code)) if code.trim().bytes().all(|b| b.is_ascii_digit()) => (a, code),
            _ => (addr, ""),
        };
        let reason = match reason.split_once(": ") {
            Some((code, rest)) if code.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => reason,
        };
        address_and_port(addr, &mut f);
        f.set("reason", reason);
        return Some(f);
    }
    if let Some(r) = m
        .strip_prefix("Disconnected from ")
        .or_else(|| m.strip_prefix("Connection closed by "))
        .or_else(|| m.strip_prefix("Connection reset by "))
    {
        let mut f = Found::new("disconnect");
        user_address_and_port(r, &mut f);
        return Some(f);
    }
    if let Some(reason) = m.strip_prefix("fatal: Write failed: ") {
        let mut f = Found::new("disconnect");
        f.set("reason", reason);
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("Did not receive identification string from ") {
        let mut f = Found::new("no_identification");
        address_and_port(r, &mut f);
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("reverse mapping checking getaddrinfo for ") {
        // `... for host.example [1.2.3.4] failed - POSSIBLE BREAK-IN ATTEMPT!`
        let (host, r) = r.split_once(" [")?;
        let (ip, _) = r.split_once(']')?;
        let mut f = Found::new("reverse_mapping_failed");
        f.set("source_ip", ip).set("source_host", host);
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("PAM ") {
        // `PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root`
        let (count, r) = r.split_once(" more authentication failure")?;
        let (_, pairs) = r.split_once("; ")?;
        let mut f = Found::new("auth_failure");
        f.set("attempts", count);
        pam_pairs(pairs, &mut f);
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("error: PAM: ") {
        // `error: PAM: Authentication failure for [illegal user ]bob from host`
        let (reason, r) = r.split_once(" for ")?;
        let (r, invalid) = match r.strip_prefix("illegal user ") {
            Some(r) => (r, true),
            None => (r, false),
        };
        let (user, host) = r.rsplit_once(" from ")?;
        let mut f = Found::new("auth_failure");
        f.set("user", user).set("reason", reason);
        if invalid {
            f.set("invalid_user", "true");
        }
        f.remote(host);
        return Some(f);
    }
    if let Some(r) = m.strip_prefix("subsystem request for ") {
        let (_, user) = r.split_once(" by user ")?;
        let mut f = Found::new("subsystem_request");
        f.set("user", user);
        return Some(f);
    }
    None
}

/// After `Accepted `/`Failed `: `METHOD for [invalid user ]USER from IP port PORT PROTO[: SIG]`.
fn login_attempt<'a>(
    r: &'a str,
    event: &'static str,
    status: &'static str,
    count: &'a str,
) -> Option<Found<'a>> {
    let (method, r) = r.split_once(" for ")?;
    let (r, invalid) = match r.strip_prefix("invalid user ") {
        Some(r) => (r, true),
        None => (r, false),
    };
    let (user, addr) = r.rsplit_once(" from ")?;
    let mut f = Found::new(event);
    f.login = Some((status, count));
    f.set("user", user).set("auth_method", method);
    if invalid {
        f.set("invalid_user", "true");
    }
    address_and_port(addr, &mut f);
    if let Some((_, signature)) = addr.split_once(": ") {
        // `ssh2: RSA SHA256:...`: the key that was offered.
        f.set("signature", signature);
    }
    Some(f)
}

/// `IP[ port PORT][ anything]`; a `:` right after the address (older sshd) is not part of it.
fn address_and_port<'a>(s: &'a str, f: &mut Found<'a>) {
    let (addr, rest) = s.split_once(' ').unwrap_or((s, ""));
    let addr = match addr.strip_suffix(':') {
        Some(a) if a.parse::<IpAddr>().is_ok() => a,
        _ => addr,
    };
    f.remote(addr);
    if let Some(port) = rest.strip_prefix("port ") {
        let end = port
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(port.len());
        f.set("source_port", &port[..end]);
    }
}

/// `[user |invalid user |authenticating user ]NAME IP port PORT` or `IP[ port PORT]`.
fn user_address_and_port<'a>(s: &'a str, f: &mut Found<'a>) {
    for (prefix, invalid) in [
        ("invalid user ", true),
        ("authenticating user ", false),
        ("user ", false),
    ] {
        if let Some(r) = s.strip_prefix(prefix)
            && let Some((user, addr)) = r.split_once(' ')
        {
            f.set("user", user);
            if invalid {
                f.set("invalid_user", "true");
            }
            address_and_port(addr, f);
            return;
        }
    }
    // `Disconnecting invalid user` gives `NAME IP port PORT` without a prefix.
    if let Some((first, rest)) = s.split_once(' ')
        && first.parse::<IpAddr>().is_err()
        && rest
            .split(' ')
            .next()
            .is_some_and(|a| a.parse::<IpAddr>().is_ok())
    {
        f.set("user", first);
        address_and_port(rest, f);
        return;
    }
    address_and_port(s, f);
}

/// `pam_unix(SERVICE:TYPE): TEXT`, or TEXT alone when the program names the module.
fn pam_unix(message: &str) -> Option<Found<'_>> {
    let m = match message.strip_prefix("pam_unix(") {
        Some(r) => r.split_once("): ")?.1,
        None => message,
    };
    if let Some(r) = m.strip_prefix("session opened for user ") {
        // `root by vagrant(uid=1000)`, `root(uid=0) by (uid=0)`
        let (user, by) = r.split_once(" by ").unwrap_or((r, ""));
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
    if let Some(r) = m.strip_prefix("authentication failure; ") {
        let mut f = Found::new("auth_failure");
        pam_pairs(r, &mut f);
        return Some(f);
    }
    if m == "check pass; user unknown" {
        let mut f = Found::new("auth_failure");
        f.set("reason", "user unknown");
        return Some(f);
    }
    if let Some(user) = m.strip_prefix("password changed for ") {
        let mut f = Found::new("password_change");
        f.set("user", user);
        return Some(f);
    }
    None
}

/// `logname=bob uid=1117 euid=0 tty=/dev/pts/1 ruser=alice rhost=1.2.3.4  user=root`
fn pam_pairs<'a>(s: &'a str, f: &mut Found<'a>) {
    for pair in s.split(' ') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        match key {
            "user" => {
                f.set("user", value);
            }
            "tty" => {
                f.set("tty", value);
            }
            "uid" => {
                f.set("uid", value);
            }
            "rhost" if !value.is_empty() => {
                f.remote(value);
            }
            _ => {}
        }
    }
}

/// `USER : [reason ; ]TTY=pts/0 ; PWD=/home/u ; USER=root ; COMMAND=/bin/ls`
fn sudo(m: &str) -> Option<Found<'_>> {
    let (user, mut rest) = m.split_once(" : ")?;
    let mut f = Found::new("sudo");
    f.set("user", user.trim());
    let mut known = false;
    while !rest.is_empty() {
        if let Some(command) = rest.strip_prefix("COMMAND=") {
            // The command may itself contain ` ; `.
            f.set("command", command);
            known = true;
            break;
        }
        let (segment, next) = rest.split_once(" ; ").unwrap_or((rest, ""));
        rest = next;
        if let Some(v) = segment.strip_prefix("TTY=") {
            f.set("tty", v);
        } else if let Some(v) = segment.strip_prefix("PWD=") {
            f.set("pwd", v);
        } else if let Some(v) = segment.strip_prefix("USER=") {
            f.set("target_user", v);
        } else if let Some((count, _)) = segment.split_once(" incorrect password attempt") {
            f.event = "sudo_failure";
            f.set("attempts", count);
        } else if segment.contains("NOT in sudoers")
            || segment == "command not allowed"
            || segment == "a password is required"
            || segment.starts_with("user NOT authorized")
        {
            f.event = "sudo_denied";
            f.set("reason", segment);
        } else {
            continue;
        }
        known = true;
    }
    known.then_some(f)
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
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    fn fields(program: &str, message: &str) -> Vec<(String, String)> {
        let Some(f) = normalise(program, message) else {
            return vec![];
        };
        let mut out = vec![("event".to_string(), f.event.to_string())];
        if let Some((s, n)) = f.login {
            out.push(("status".into(), s.into()));
            out.push(("login_attempts".into(), n.into()));
        }
        out.extend(
            f.fields[..f.len]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        out.sort();
        out
    }

    fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn sshd_accepted_and_failed_logins_are_attempts() {
        assert_eq!(
            fields(
                "sshd",
                "Accepted publickey for vagrant from 10.0.2.2 port 63673 ssh2: RSA 39:33:99"
            ),
            expect(&[
                ("event", "login_success"),
                ("status", "success"),
                ("login_attempts", "1"),
                ("user", "vagrant"),
                ("auth_method", "publickey"),
                ("source_ip", "10.0.2.2"),
                ("source_port", "63673"),
                ("signature", "RSA 39:33:99"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "Failed password for invalid user admin from 2001:db8::1 port 5022 ssh2"
            ),
            expect(&[
                ("event", "login_failure"),
                ("status", "failed"),
                ("login_attempts", "1"),
                ("user", "admin"),
                ("invalid_user", "true"),
                ("auth_method", "password"),
                ("source_ip", "2001:db8::1"),
                ("source_port", "5022"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]"
            ),
            expect(&[
                ("event", "login_failure"),
                ("status", "failed"),
                ("login_attempts", "5"),
                ("user", "root"),
                ("auth_method", "password"),
                ("source_ip", "5.36.59.76"),
                ("source_port", "42393"),
            ])
        );
    }

    #[test]
    fn sshd_invalid_user_preauth_disconnects_and_too_many_failures() {
        assert_eq!(
            fields("sshd", "Invalid user test from 10.0.2.2"),
            expect(&[
                ("event", "invalid_user"),
                ("user", "test"),
                ("invalid_user", "true"),
                ("source_ip", "10.0.2.2"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "input_userauth_request: invalid user webmaster [preauth]"
            ),
            expect(&[
                ("event", "invalid_user"),
                ("user", "webmaster"),
                ("invalid_user", "true"),
                ("preauth", "true"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "Disconnecting: Too many authentication failures for admin [preauth]"
            ),
            expect(&[
                ("event", "too_many_auth_failures"),
                ("user", "admin"),
                ("preauth", "true"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "Received disconnect from 10.66.192.100: 11: disconnected by user"
            ),
            expect(&[
                ("event", "disconnect"),
                ("source_ip", "10.66.192.100"),
                ("reason", "disconnected by user"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "Received disconnect from 1.2.3.4 port 4022:11: Bye Bye [preauth]"
            ),
            expect(&[
                ("event", "disconnect"),
                ("source_ip", "1.2.3.4"),
                ("source_port", "4022"),
                ("reason", "Bye Bye"),
                ("preauth", "true"),
            ])
        );
        assert_eq!(
            fields(
                "sshd-session",
                "Connection closed by authenticating user root 1.2.3.4 port 22 [preauth]"
            ),
            expect(&[
                ("event", "disconnect"),
                ("user", "root"),
                ("source_ip", "1.2.3.4"),
                ("source_port", "22"),
                ("preauth", "true"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "Disconnecting invalid user guest 1.2.3.4 port 514: Too many authentication failures [preauth]"
            ),
            expect(&[
                ("event", "too_many_auth_failures"),
                ("user", "guest"),
                ("invalid_user", "true"),
                ("source_ip", "1.2.3.4"),
                ("source_port", "514"),
                ("reason", "Too many authentication failures"),
                ("preauth", "true"),
            ])
        );
        assert_eq!(
            fields(
                "sshd",
                "reverse mapping checking getaddrinfo for ns.example.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!"
            ),
            expect(&[
                ("event", "reverse_mapping_failed"),
                ("source_ip", "173.234.31.186"),
                ("source_host", "ns.example.com"),
            ])
        );
        assert_eq!(
            fields("sshd", "Server listening on 0.0.0.0 port 22."),
            vec![]
        );
    }

    #[test]
    fn pam_unix_sessions_and_failures_from_any_program() {
        assert_eq!(
            fields(
                "sudo",
                "pam_unix(sudo:session): session opened for user root by vagrant(uid=1000)"
            ),
            expect(&[
                ("event", "session_open"),
                ("user", "root"),
                ("by_user", "vagrant"),
                ("uid", "1000"),
            ])
        );
        assert_eq!(
            fields(
                "CRON",
                "pam_unix(cron:session): session closed for user root"
            ),
            expect(&[("event", "session_close"), ("user", "root")])
        );
        assert_eq!(
            fields(
                "sshd(pam_unix)",
                "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root"
            ),
            expect(&[
                ("event", "auth_failure"),
                ("uid", "0"),
                ("tty", "NODEVssh"),
                ("source_host", "220-135-151-1.hinet-ip.hinet.net"),
                ("user", "root"),
            ])
        );
        assert_eq!(
            fields(
                "passwd",
                "pam_unix(passwd:chauthtok): password changed for tsg"
            ),
            expect(&[("event", "password_change"), ("user", "tsg")])
        );
    }

    #[test]
    fn sudo_commands_failures_and_refusals() {
        assert_eq!(
            fields(
                "sudo",
                "vagrant : TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/sh -c a ; b"
            ),
            expect(&[
                ("event", "sudo"),
                ("user", "vagrant"),
                ("tty", "pts/1"),
                ("pwd", "/home/vagrant"),
                ("target_user", "root"),
                ("command", "/bin/sh -c a ; b"),
            ])
        );
        assert_eq!(
            fields(
                "sudo",
                "     tsg : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls"
            ),
            expect(&[
                ("event", "sudo_denied"),
                ("user", "tsg"),
                ("reason", "user NOT in sudoers"),
                ("tty", "pts/1"),
                ("pwd", "/home/vagrant"),
                ("target_user", "root"),
                ("command", "/bin/ls"),
            ])
        );
        assert_eq!(
            fields(
                "sudo",
                "bob : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id"
            )[0..2],
            expect(&[("attempts", "3"), ("command", "/bin/id")])[..]
        );
        assert_eq!(
            normalise("sudo", "bob : 3 incorrect password attempts ; TTY=pts/0")
                .unwrap()
                .event,
            "sudo_failure"
        );
        assert_eq!(fields("sudo", "(command continued) rm -rf /tmp/x"), vec![]);
    }

    #[test]
    fn su_successes_and_failures_count_once() {
        assert_eq!(
            fields("su", "Successful su for tsg by root"),
            expect(&[
                ("event", "su"),
                ("status", "success"),
                ("login_attempts", "1"),
                ("user", "root"),
                ("target_user", "tsg"),
            ])
        );
        assert_eq!(
            fields("su", "+ /dev/pts/1 root:tsg"),
            expect(&[
                ("event", "su"),
                ("user", "root"),
                ("target_user", "tsg"),
                ("tty", "/dev/pts/1"),
            ])
        );
        assert_eq!(
            fields("su", "FAILED SU (to root) bob on pts/0"),
            expect(&[
                ("event", "su_failure"),
                ("status", "failed"),
                ("login_attempts", "1"),
                ("user", "bob"),
                ("target_user", "root"),
                ("tty", "pts/0"),
            ])
        );
    }

    #[test]
    fn shadow_tools_and_cron() {
        assert_eq!(
            fields(
                "useradd",
                "new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin"
            ),
            expect(&[
                ("event", "user_add"),
                ("user", "apache"),
                ("uid", "48"),
                ("gid", "48"),
                ("home", "/usr/share/httpd"),
                ("shell", "/sbin/nologin"),
            ])
        );
        assert_eq!(
            fields("groupadd", "new group: name=apache, GID=48"),
            expect(&[("event", "group_add"), ("group", "apache"), ("gid", "48")])
        );
        assert_eq!(
            fields("groupadd", "group added to /etc/gshadow: name=tsg"),
            vec![]
        );
        assert_eq!(
            fields("usermod", "add 'bob' to group 'sudo'"),
            expect(&[
                ("event", "group_member_add"),
                ("user", "bob"),
                ("group", "sudo"),
            ])
        );
        assert_eq!(
            fields("chfn", "changed user 'tsg' information"),
            expect(&[("event", "user_change"), ("user", "tsg")])
        );
        assert_eq!(
            fields(
                "CRON",
                "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)"
            ),
            expect(&[
                ("event", "cron_command"),
                ("user", "root"),
                ("command", "   cd / && run-parts --report /etc/cron.hourly"),
            ])
        );
    }

    #[test]
    fn stage_writes_fields_only_for_known_messages() {
        let mut s = AuthEventStage::new(&AuthEventConfig::default()).unwrap();
        let mut e = entry("x", &[]);
        e.extracted.insert("program".into(), "sshd".into());
        e.extracted.insert(
            "message".into(),
            "Failed password for root from 1.2.3.4 port 22 ssh2".into(),
        );
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.extracted["event"], "login_failure");
        assert_eq!(e.extracted["status"], "failed");
        assert_eq!(e.extracted["source_ip"], "1.2.3.4");
        let mut e = entry("x", &[]);
        e.extracted.insert("program".into(), "kernel".into());
        e.extracted
            .insert("message".into(), "Failed password".into());
        s.process(&mut e);
        assert!(!e.extracted.contains_key("event"));
    }

    #[test]
    fn empty_source_keys_are_refused() {
        let err = AuthEventStage::new(&AuthEventConfig {
            program_source: Some(String::new()),
            source: None,
        })
        .err()
        .unwrap();
        assert_eq!(err.key, "program_source");
    }
}
