//! Starting, recognising and stopping the local platform's processes.
//!
//! Processes start in their own process group (a Ctrl-C in the terminal that ran `up`
//! does not reach them) with output appended to their log file. A pid counts as ours
//! only while `/proc/<pid>/cmdline` names the program we started and the process is not
//! a zombie; stopping sends SIGTERM to that pid, then SIGKILL after a grace period.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::LocalError;

/// Spawns `cmd` detached from the terminal, its output appended to `log`.
pub fn spawn(mut cmd: Command, log: &Path) -> Result<Child, LocalError> {
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(LocalError::io("opening", log))
    };
    cmd.stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .process_group(0);
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.spawn().map_err(|e| LocalError::Start {
        component: program,
        reason: e.to_string(),
        log: log.to_path_buf(),
    })
}

/// Whether `pid` is alive (not a zombie) and runs `program`.
pub fn is_ours(pid: u32, program: &Path) -> bool {
    if !running(pid) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
    else {
        return false;
    };
    let name = program.file_name();
    cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| Path::new(std::str::from_utf8(a).unwrap_or("")).to_path_buf())
        .any(|a| a == program || (name.is_some() && a.file_name() == name))
}

/// Whether `pid` exists and is neither a zombie nor dead. A process in the middle of
/// exiting still counts (its command line already reads empty then).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)` (comm may contain anything).
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// Stops `pid` if it is still ours: SIGTERM, then SIGKILL after `grace`. Returns whether
/// it was running.
pub fn stop(pid: u32, program: &Path, grace: Duration) -> Result<bool, LocalError> {
    if !is_ours(pid, program) {
        return Ok(false);
    }
    signal(pid, "TERM")?;
    if wait_gone(pid, grace) {
        return Ok(true);
    }
    signal(pid, "KILL")?;
    wait_gone(pid, Duration::from_secs(5));
    Ok(true)
}

/// Waits until `pid` has exited or is a zombie, at most
/// `timeout`; returns whether it is gone. Liveness, not the command line, is what counts
/// here: an exiting process's command line reads empty before the process is gone.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while running(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Sends `SIG<sig>` to `pid` (through `kill(1)`).
pub(crate) fn signal(pid: u32, sig: &str) -> Result<(), LocalError> {
    // `kill(1)` instead of libc: the workspace forbids unsafe code. A process that exited
    // in between is fine.
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .map(drop)
        .map_err(LocalError::io("running", "kill"))
}

/// Runs `cmd` to completion; its combined output is the error when it fails.
pub fn run(cmd: &mut Command) -> Result<String, LocalError> {
    let line = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LocalError::Command {
            command: line.clone(),
            output: e.to_string(),
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LocalError::Command {
            command: line,
            output: text.trim().to_owned(),
        })
    }
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> Result<u16, LocalError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(LocalError::io("finding a free port on", "127.0.0.1"))
}
