//! The private PostgreSQL cluster of local mode: the system's `initdb`/`pg_ctl` on a data
//! directory of the project (`<dir>/pg`), listening on loopback only. PostgreSQL refuses
//! to run as root, so when `chronoctl` runs as root the server commands run as the
//! `postgres` OS user (the data directory and the log file are handed to it).
//!
//! As strict as Aurora: the superuser `postgres` only bootstraps the cluster. The
//! migrations and every runtime process log in as [`MASTER_USER`], a role like the Aurora
//! master user (LOGIN CREATEROLE CREATEDB, not a superuser; the owner of the database), so
//! what needs a superuser fails here as it would in AWS. Local clusters use `trust`
//! authentication on 127.0.0.1 (the machine's users are the only clients); the tests
//! (`tests/with-postgres.sh`) check passwords.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::LocalError;
use super::layout::Layout;
use super::process;

/// Superuser of the local cluster: bootstraps it ([`Binaries::ensure_master`]), nothing
/// else.
pub const SUPERUSER: &str = "postgres";

/// The login of the migrations and the runtime: the Aurora master user's name
/// (`chrono_stacks::data::MASTER_USERNAME`) with what Aurora gives it (CREATEROLE,
/// CREATEDB; `rds_superuser` does not exist here).
pub const MASTER_USER: &str = chrono_stacks::data::MASTER_USERNAME;

const INSTALL: &str = "install them with `sudo apt-get install -y postgresql` (or `make postgres-bin`), or set DATABASE_URL to use an existing server";

/// The system's PostgreSQL server binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    bindir: PathBuf,
    as_postgres: bool,
}

impl Binaries {
    /// Finds `initdb`/`pg_ctl`: `pg_config --bindir`, the newest `/usr/lib/postgresql/*/bin`,
    /// or `PATH`.
    pub fn find() -> Result<Self, LocalError> {
        let mut candidates = Vec::new();
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
        let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versioned.into_iter().map(|(_, p)| p));
        candidates.extend(
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        let bindir = candidates
            .into_iter()
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
            .ok_or_else(|| LocalError::Missing {
                what: "PostgreSQL server binaries (initdb, pg_ctl)".into(),
                install: INSTALL.into(),
            })?;
        Ok(Binaries {
            bindir,
            as_postgres: running_as_root(),
        })
    }

    /// The server program (what the postmaster's command line names).
    pub fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }

    fn server_command(&self, tool: &str) -> Command {
        let program = self.bindir.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", SUPERUSER, "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn hand_over(&self, path: &Path) -> Result<(), LocalError> {
        if self.as_postgres {
            process::run(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{SUPERUSER}:"))
                    .arg(path),
            )?;
        }
        Ok(())
    }

    /// When the server runs as the `postgres` OS user, that user must be able to enter
    /// the data directory (a checkout under a `0700` home directory is the usual trap);
    /// say so plainly instead of letting `initdb` fail with a permission error.
    fn check_reachable(&self, data: &Path) -> Result<(), LocalError> {
        if !self.as_postgres {
            return Ok(());
        }
        let reachable = Command::new("runuser")
            .args(["-u", SUPERUSER, "--", "test", "-x"])
            .arg(data)
            .status()
            .is_ok_and(|s| s.success());
        if reachable {
            Ok(())
        } else {
            Err(LocalError::Unreachable(data.to_path_buf()))
        }
    }

    /// Creates the cluster in `layout.pg_data()` unless it exists.
    pub fn init(&self, layout: &Layout) -> Result<bool, LocalError> {
        let data = layout.pg_data();
        if data.join("PG_VERSION").is_file() {
            return Ok(false);
        }
        std::fs::create_dir_all(&data).map_err(LocalError::io("creating", &data))?;
        self.hand_over(&data)?;
        self.check_reachable(&data)?;
        process::run(self.server_command("initdb").arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]))?;
        Ok(true)
    }

    /// The postmaster's pid, if it runs.
    pub fn running_pid(&self, layout: &Layout) -> Option<u32> {
        let text = std::fs::read_to_string(layout.pg_data().join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse().ok()?;
        process::is_ours(pid, &self.postgres()).then_some(pid)
    }

    /// Starts the server on `port` (loopback, no Unix socket) unless it runs; returns
    /// its pid once it accepts connections.
    pub fn start(&self, layout: &Layout, port: u16) -> Result<u32, LocalError> {
        if let Some(pid) = self.running_pid(layout) {
            return Ok(pid);
        }
        let log = layout.log("postgres");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(LocalError::io("creating", &log))?;
        self.hand_over(&log)?;
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200"
        );
        process::run(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(layout.pg_data())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        )
        .map_err(|e| LocalError::Start {
            component: "postgres".into(),
            reason: e.to_string(),
            log: log.clone(),
        })?;
        self.running_pid(layout).ok_or_else(|| LocalError::Start {
            component: "postgres".into(),
            reason: "pg_ctl reported success but no postmaster runs".into(),
            log,
        })
    }

    /// Stops the server (fast shutdown); returns whether it was running.
    pub fn stop(&self, layout: &Layout) -> Result<bool, LocalError> {
        let Some(pid) = self.running_pid(layout) else {
            return Ok(false);
        };
        let stopped = process::run(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(layout.pg_data())
                .args(["-m", "fast", "-w", "-t", "30", "stop"]),
        );
        // `pg_ctl -w` returns once `postmaster.pid` is removed, a moment before the
        // postmaster itself has exited: wait for the process, or stop it by pid.
        if stopped.is_err() || !process::wait_gone(pid, Duration::from_secs(10)) {
            process::stop(pid, &self.postgres(), Duration::from_secs(10))?;
        }
        Ok(true)
    }

    /// Runs SQL as the superuser against `database`; returns the unaligned output.
    pub fn psql(&self, port: u16, database: &str, sql: &str) -> Result<String, LocalError> {
        process::run(
            Command::new(self.bindir.join("psql"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", SUPERUSER])
                .args(["-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql]),
        )
    }

    /// Creates [`MASTER_USER`] (LOGIN CREATEROLE CREATEDB, not a superuser) and `database`
    /// owned by it, as Aurora does for its master user, unless they exist. A cluster made
    /// before local mode ran as that user (the database and tables owned by `postgres`,
    /// the group roles created by it) is handed over: ownership of the database and of
    /// the schema's tables, views and functions (not an extension's), and the group roles
    /// with ADMIN OPTION, which a role's creator holds on PostgreSQL 16+.
    pub fn ensure_master(&self, port: u16, database: &str) -> Result<(), LocalError> {
        self.psql(
            port,
            "postgres",
            &format!(
                "DO $$ BEGIN \
                   IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MASTER_USER}') THEN \
                     CREATE ROLE {MASTER_USER} LOGIN CREATEROLE CREATEDB NOSUPERUSER; \
                   ELSE \
                     ALTER ROLE {MASTER_USER} LOGIN CREATEROLE CREATEDB NOSUPERUSER; \
                   END IF; \
                 END $$;"
            ),
        )?;
        let owner = self.psql(
            port,
            "postgres",
            &format!(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'"
            ),
        )?;
        match owner.trim() {
            "" => {
                self.psql(
                    port,
                    "postgres",
                    &format!("CREATE DATABASE \"{database}\" OWNER {MASTER_USER}"),
                )?;
            }
            MASTER_USER => {}
            _ => {
                self.psql(
                    port,
                    "postgres",
                    &format!("ALTER DATABASE \"{database}\" OWNER TO {MASTER_USER}"),
                )?;
                self.psql(port, database, &hand_over_sql())?;
            }
        }
        Ok(())
    }
}

/// Hands the objects of schema `public` that `postgres` created to [`MASTER_USER`], and
/// the group roles with ADMIN OPTION (an older local cluster's state).
fn hand_over_sql() -> String {
    format!(
        "DO $$ DECLARE r record; BEGIN \
           FOR r IN SELECT c.oid::regclass AS obj, c.relkind FROM pg_class c \
                    JOIN pg_namespace n ON n.oid = c.relnamespace \
                    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm') \
                      AND pg_get_userbyid(c.relowner) <> '{MASTER_USER}' LOOP \
             EXECUTE format('ALTER %s %s OWNER TO {MASTER_USER}', \
               CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, r.obj); \
           END LOOP; \
           FOR r IN SELECT p.oid::regprocedure AS f FROM pg_proc p \
                    JOIN pg_namespace n ON n.oid = p.pronamespace \
                    WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> '{MASTER_USER}' \
                      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                                      AND d.objid = p.oid AND d.deptype = 'e') LOOP \
             EXECUTE format('ALTER FUNCTION %s OWNER TO {MASTER_USER}', r.f); \
           END LOOP; \
           FOR r IN SELECT rolname FROM pg_roles WHERE rolname IN ('chrono_rw', 'chrono_ro') LOOP \
             EXECUTE format('GRANT %I TO {MASTER_USER} WITH ADMIN OPTION', r.rolname); \
           END LOOP; \
         END $$;"
    )
}

/// The URL of `database` on the local cluster as `user`.
pub fn url(port: u16, user: &str, database: &str) -> String {
    format!("postgres://{user}@127.0.0.1:{port}/{database}")
}

/// Whether this process runs as root (uid 0), read from `/proc/self/status`.
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}
