//! Linux authentication rules for syslog lines (also applied to Plaso's syslog records).
//!
//! | program | line | action | outcome |
//! |---|---|---|---|
//! | sshd | `Accepted <method> for U from IP` | `logon` | success |
//! | sshd | `Failed <method> for [invalid user] U from IP` | `logon` | failure |
//! | sshd | `Invalid user U from IP` | `logon` | failure |
//! | sshd | `pam_unix(sshd:session): session closed for user U` | `logoff` | success |
//! | sudo | `U : … ; USER=T ; COMMAND=…` | `privilege_escalation` | failure when it says `incorrect password`, `NOT in sudoers` or `command not allowed`, else success |
//! | su | `(to T) U on tty`, `Successful su for T by U`, `+ tty U:T` | `privilege_escalation` | success |
//! | su | `FAILED SU (to T) U on tty`, `FAILED su for T by U`, `- tty U:T` | `privilege_escalation` | failure |
//! | useradd | `new user: name=U, …` | `account_created` | success |
//! | userdel | `delete user 'U'` | `account_deleted` | success |
//! | usermod | any line naming `'U'` | `account_changed` | success |
//! | passwd, chpasswd | `password changed for U`, `password for 'U' changed` | `password_change` | success |
//! | passwd | `… authentication failure; … user=U` | `password_change` | failure |
//!
//! `sshd-session` (OpenSSH ≥ 9.8) counts as sshd. rsyslog's `message repeated N times: [ … ]`
//! is unwrapped before matching. User names sshd reports as invalid are not identities.
//!
//! Each mapped line also says which shape it had ([`LinuxMapping::key`]): the key of its
//! entry in the event catalog (`runtime/catalog/linux-auth.yaml`), which gives it its title
//! and category.

use std::net::IpAddr;

use crate::pipeline::event::{Identity, parse_ip};
use crate::vocab::{Action, Outcome};

/// The catalog keys of the line shapes [`map`] recognises (`runtime/catalog/linux-auth.yaml`).
pub const KEYS: &[&str] = &[
    SSHD_ACCEPTED,
    SSHD_FAILED,
    SSHD_FAILED_INVALID_USER,
    SSHD_INVALID_USER,
    SSHD_SESSION_CLOSED,
    SUDO_COMMAND,
    SUDO_REFUSED,
    SU_SWITCHED,
    SU_FAILED,
    USERADD_NEW_USER,
    USERDEL_DELETE_USER,
    USERMOD_CHANGE,
    PASSWD_CHANGED,
    PASSWD_FAILED,
];

const SSHD_ACCEPTED: &str = "sshd.accepted";
const SSHD_FAILED: &str = "sshd.failed";
const SSHD_FAILED_INVALID_USER: &str = "sshd.failed_invalid_user";
const SSHD_INVALID_USER: &str = "sshd.invalid_user";
const SSHD_SESSION_CLOSED: &str = "sshd.session_closed";
const SUDO_COMMAND: &str = "sudo.command";
const SUDO_REFUSED: &str = "sudo.refused";
const SU_SWITCHED: &str = "su.switched";
const SU_FAILED: &str = "su.failed";
const USERADD_NEW_USER: &str = "useradd.new_user";
const USERDEL_DELETE_USER: &str = "userdel.delete_user";
const USERMOD_CHANGE: &str = "usermod.change";
const PASSWD_CHANGED: &str = "passwd.changed";
const PASSWD_FAILED: &str = "passwd.failed";

/// What a mapped line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxMapping {
    /// The line's shape: its key in the event catalog (one of [`KEYS`]).
    pub key: &'static str,
    /// The action.
    pub action: Action,
    /// The outcome.
    pub outcome: Outcome,
    /// The user named by the line, as written (also when it is not an identity).
    pub user: Option<String>,
    /// Whether `user` exists on the host as far as the line says (`false` for sshd's
    /// invalid users).
    pub user_is_account: bool,
    /// The other user involved (sudo/su target).
    pub target_user: Option<String>,
    /// The remote address.
    pub src_ip: Option<IpAddr>,
}

impl LinuxMapping {
    fn new(
        key: &'static str,
        action: Action,
        outcome: Outcome,
        user: Option<&str>,
    ) -> LinuxMapping {
        LinuxMapping {
            key,
            action,
            outcome,
            user: user.map(|u| u.trim().to_owned()),
            user_is_account: true,
            target_user: None,
            src_ip: None,
        }
    }

    /// The identity the event is about.
    pub fn identity(&self) -> Option<Identity> {
        self.user
            .as_deref()
            .filter(|_| self.user_is_account)
            .and_then(Identity::user)
    }
}

/// Maps a syslog program and message to an action; `None` for lines that are not one of
/// the mapped events.
pub fn map(program: &str, message: &str) -> Option<LinuxMapping> {
    let message = unwrap_repeated(message.trim());
    match program {
        "sshd" | "sshd-session" => sshd(message),
        "sudo" => sudo(message),
        "su" => su(message),
        "useradd" => {
            let rest = message.strip_prefix("new user: name=")?;
            let user = rest.split(',').next()?;
            Some(LinuxMapping::new(
                USERADD_NEW_USER,
                Action::AccountCreated,
                Outcome::Success,
                Some(user),
            ))
        }
        "userdel" => {
            let rest = message.strip_prefix("delete user ")?;
            Some(LinuxMapping::new(
                USERDEL_DELETE_USER,
                Action::AccountDeleted,
                Outcome::Success,
                Some(quoted(rest)?),
            ))
        }
        "usermod" => Some(LinuxMapping::new(
            USERMOD_CHANGE,
            Action::AccountChanged,
            Outcome::Success,
            Some(quoted(message)?),
        )),
        "passwd" | "chpasswd" => passwd(message),
        _ => None,
    }
}

fn unwrap_repeated(message: &str) -> &str {
    if let Some(rest) = message.strip_prefix("message repeated ")
        && let Some((_, inner)) = rest.split_once(": [ ")
    {
        return inner.strip_suffix(']').unwrap_or(inner).trim();
    }
    message
}

/// The first `'quoted'` word.
fn quoted(s: &str) -> Option<&str> {
    let start = s.find('\'')? + 1;
    let len = s[start..].find('\'')?;
    Some(&s[start..start + len])
}

/// `U from IP port N …` → (U, IP).
fn user_from(rest: &str) -> (&str, Option<IpAddr>) {
    match rest.rsplit_once(" from ") {
        Some((user, tail)) => (user, tail.split_whitespace().next().and_then(parse_ip)),
        None => (rest.split_whitespace().next().unwrap_or(""), None),
    }
}

fn sshd(message: &str) -> Option<LinuxMapping> {
    if let Some(rest) = message.strip_prefix("Accepted ") {
        let (_method, rest) = rest.split_once(" for ")?;
        let (user, ip) = user_from(rest);
        let mut m = LinuxMapping::new(SSHD_ACCEPTED, Action::Logon, Outcome::Success, Some(user));
        m.src_ip = ip;
        return Some(m);
    }
    if let Some(rest) = message.strip_prefix("Failed ") {
        let (_method, rest) = rest.split_once(" for ")?;
        let (rest, invalid) = match rest.strip_prefix("invalid user ") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (user, ip) = user_from(rest);
        let key = if invalid {
            SSHD_FAILED_INVALID_USER
        } else {
            SSHD_FAILED
        };
        let mut m = LinuxMapping::new(key, Action::Logon, Outcome::Failure, Some(user));
        m.user_is_account = !invalid;
        m.src_ip = ip;
        return Some(m);
    }
    if let Some(rest) = message.strip_prefix("Invalid user ") {
        let (user, ip) = user_from(rest);
        let mut m = LinuxMapping::new(
            SSHD_INVALID_USER,
            Action::Logon,
            Outcome::Failure,
            Some(user),
        );
        m.user_is_account = false;
        m.src_ip = ip;
        return Some(m);
    }
    if let Some(rest) = message.strip_prefix("pam_unix(sshd:session): session closed for user ") {
        return Some(LinuxMapping::new(
            SSHD_SESSION_CLOSED,
            Action::Logoff,
            Outcome::Success,
            rest.split_whitespace().next(),
        ));
    }
    None
}

fn sudo(message: &str) -> Option<LinuxMapping> {
    let (user, rest) = message.split_once(" : ")?;
    if !rest.contains("COMMAND=") {
        return None;
    }
    let failed = [
        "incorrect password",
        "NOT in sudoers",
        "command not allowed",
        "authentication failure",
    ]
    .iter()
    .any(|f| rest.contains(f));
    let (key, outcome) = if failed {
        (SUDO_REFUSED, Outcome::Failure)
    } else {
        (SUDO_COMMAND, Outcome::Success)
    };
    let mut m = LinuxMapping::new(key, Action::PrivilegeEscalation, outcome, Some(user));
    m.target_user = rest
        .split(" ; ")
        .find_map(|kv| kv.trim().strip_prefix("USER="))
        .map(str::to_owned);
    Some(m)
}

fn su(message: &str) -> Option<LinuxMapping> {
    // `(to T) U on tty` and `FAILED SU (to T) U on tty` (util-linux)
    let (failed, rest) = match message.strip_prefix("FAILED SU ") {
        Some(r) => (true, r),
        None => (false, message),
    };
    if let Some(rest) = rest.strip_prefix("(to ") {
        let (target, rest) = rest.split_once(") ")?;
        let user = rest.split(" on ").next()?;
        return Some(su_mapping(failed, user, target));
    }
    // `Successful su for T by U` / `FAILED su for T by U` (shadow)
    for (prefix, failed) in [("Successful su for ", false), ("FAILED su for ", true)] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (target, user) = rest.split_once(" by ")?;
            return Some(su_mapping(failed, user, target));
        }
    }
    // `+ tty U:T` / `- tty U:T` (older shadow)
    let failed = match message.as_bytes().first() {
        Some(b'+') => false,
        Some(b'-') => true,
        _ => return None,
    };
    let pair = message.split_whitespace().nth(2)?;
    let (user, target) = pair.split_once(':')?;
    Some(su_mapping(failed, user, target))
}

fn su_mapping(failed: bool, user: &str, target: &str) -> LinuxMapping {
    let (key, outcome) = if failed {
        (SU_FAILED, Outcome::Failure)
    } else {
        (SU_SWITCHED, Outcome::Success)
    };
    let mut m = LinuxMapping::new(key, Action::PrivilegeEscalation, outcome, Some(user));
    m.target_user = Some(target.trim().to_owned());
    m
}

fn passwd(message: &str) -> Option<LinuxMapping> {
    if let Some((_, rest)) = message.split_once("password changed for ") {
        return Some(LinuxMapping::new(
            PASSWD_CHANGED,
            Action::PasswordChange,
            Outcome::Success,
            rest.split_whitespace().next(),
        ));
    }
    if let Some(rest) = message.strip_prefix("password for ")
        && rest.contains(" changed")
    {
        return Some(LinuxMapping::new(
            PASSWD_CHANGED,
            Action::PasswordChange,
            Outcome::Success,
            Some(quoted(message).unwrap_or(rest)),
        ));
    }
    if message.contains("authentication failure") {
        let user = message
            .split_whitespace()
            .find_map(|w| w.strip_prefix("user="));
        return Some(LinuxMapping::new(
            PASSWD_FAILED,
            Action::PasswordChange,
            Outcome::Failure,
            user,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_lines_map_with_user_and_address() {
        let m = map(
            "sshd",
            "Accepted publickey for alice from 10.0.0.5 port 50022 ssh2: RSA SHA256:x",
        )
        .unwrap();
        assert_eq!((m.action, m.outcome), (Action::Logon, Outcome::Success));
        assert_eq!(m.identity().unwrap().value, "alice");
        assert_eq!(m.src_ip, Some("10.0.0.5".parse().unwrap()));

        let m = map(
            "sshd",
            "Failed password for invalid user oracle from 203.0.113.9 port 4242 ssh2",
        )
        .unwrap();
        assert_eq!(m.outcome, Outcome::Failure);
        assert_eq!(m.user.as_deref(), Some("oracle"));
        assert_eq!(m.identity(), None, "invalid users are not identities");

        let m = map(
            "sshd",
            "message repeated 2 times: [ Failed password for root from 203.0.113.9 port 4242 ssh2]",
        )
        .unwrap();
        assert_eq!(m.identity().unwrap().value, "root");

        assert!(map("sshd", "Connection closed by 10.0.0.5 port 22 [preauth]").is_none());
    }

    #[test]
    fn sudo_and_su_are_privilege_escalations_of_the_invoking_user() {
        let m = map(
            "sudo",
            "  alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
        )
        .unwrap();
        assert_eq!(
            (m.action, m.outcome),
            (Action::PrivilegeEscalation, Outcome::Success)
        );
        assert_eq!(m.identity().unwrap().value, "alice");
        assert_eq!(m.target_user.as_deref(), Some("root"));
        let m = map(
            "sudo",
            "mallory : user NOT in sudoers ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh",
        )
        .unwrap();
        assert_eq!(m.outcome, Outcome::Failure);
        assert!(
            map(
                "sudo",
                "pam_unix(sudo:session): session opened for user root by alice(uid=0)"
            )
            .is_none()
        );

        let m = map("su", "FAILED SU (to root) bob on pts/2").unwrap();
        assert_eq!(
            (m.outcome, m.user.as_deref()),
            (Outcome::Failure, Some("bob"))
        );
        let m = map("su", "Successful su for root by bob").unwrap();
        assert_eq!(
            (m.outcome, m.user.as_deref()),
            (Outcome::Success, Some("bob"))
        );
        let m = map("su", "- pts/3 eve:root").unwrap();
        assert_eq!(
            (m.outcome, m.user.as_deref()),
            (Outcome::Failure, Some("eve"))
        );
    }
}
