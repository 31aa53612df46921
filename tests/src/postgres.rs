//! A private PostgreSQL cluster, for the tests of the data server's database backend and for
//! `interbank up --postgres`: Debian's `postgresql` binaries (installed by `scripts/setup.sh`),
//! a cluster created with `initdb` in a folder of ours, fsync on, one database per bank or test.
//!
//! It listens on no TCP port, only on a Unix socket inside its own folder (0700): it trusts
//! whoever connects, so only whoever can enter that folder may (its owner, and root), as only
//! they could read an embedded store's files. On 127.0.0.1 any local user could have rewritten
//! a bank's balances.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the cluster's folder belongs to
//! the `postgres` system user and the server runs as it. A small shell watchdog stops the server
//! when the process that started it is gone (a test binary never runs the destructors of its
//! statics), and removes a temporary cluster's folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Error;

/// How long a new cluster may take to accept connections.
const READY_TIMEOUT_MS: u64 = 60_000;
/// How long between two readiness probes while it starts.
const READY_PROBE_INTERVAL_MS: u64 = 50;
/// Connections the cluster accepts: every data server takes a writer, a lease and up to its
/// readers' pool, and a test binary runs many at once.
const CONNECTIONS_MAX: u32 = 500;

#[derive(Debug)]
pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
}

/// Where Debian's PostgreSQL server binaries are: `PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else whatever `initdb` is on the PATH.
pub fn bin_dir() -> Result<PathBuf, Error> {
    if let Ok(d) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").is_file())
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| d.join("initdb").is_file())
        .ok_or_else(|| Error::Unexpected("PostgreSQL is not installed (run scripts/setup.sh)".into()))
}

/// The uid and gid the server runs as: ours, or the `postgres` user's when we are root.
fn server_user() -> Result<Option<(u32, u32)>, Error> {
    use std::os::unix::fs::MetadataExt;
    // A file we just made tells our uid without unsafe code.
    let probe = tempfile::tempfile().map_err(|e| Error::Unexpected(format!("tempfile: {e}")))?;
    let uid = probe.metadata().map_err(|e| Error::Unexpected(e.to_string()))?.uid();
    if uid != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| Error::file(Path::new("/etc/passwd"), e))?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
        })
        .map(Some)
        .ok_or_else(|| Error::Unexpected("running as root, and there is no `postgres` user to run PostgreSQL".into()))
}

fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), Error> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|source| Error::Start { what: what.into(), source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Unexpected(format!(
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).chars().take(2000).collect::<String>()
    )))
}

impl Cluster {
    /// The cluster this process shares among its tests, started at the first call in a
    /// temporary folder and stopped (and removed) when the process ends.
    pub fn shared() -> Result<&'static Cluster, Error> {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let dir = std::env::temp_dir().join(format!("interbank-pg-{}", std::process::id()));
                Cluster::start(&dir, true).map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| Error::Unexpected(e.clone()))
    }

    /// Starts a cluster in `dir` (created with `initdb` when it has none yet) on a free port.
    /// `temporary`: the folder is removed when the server stops.
    pub fn start(dir: &Path, temporary: bool) -> Result<Cluster, Error> {
        let bin = bin_dir()?;
        let user = server_user()?;
        if user.is_some()
            && let Some(parent) = dir.parent()
        {
            // The server runs as `postgres`, which must pass through the (private, 0700) data
            // folder to reach its own: it gets the right to pass (o+x), not to list or read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(parent).map_err(|e| Error::file(parent, e))?;
            let mode = std::fs::metadata(parent).map_err(|e| Error::file(parent, e))?.permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o001))
                    .map_err(|e| Error::file(parent, e))?;
            }
        }
        if !dir.join("PG_VERSION").is_file() {
            std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| Error::file(dir, e))?;
            }
            let mut initdb = Command::new(bin.join("initdb"));
            initdb.arg("-D").arg(dir).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"]);
            as_server_user(&mut initdb, user);
            run(initdb, "initdb")?;
        }
        let port = crate::cluster::free_port()?;
        let owner = std::process::id();
        // Stops the server once `owner` is gone (polling: the only portable way for a process
        // to learn that an unrelated one ended), and removes a temporary folder.
        let script = r#"
            "$0" -D "$1" -p "$2" -k "$1" -c listen_addresses= -c fsync=on \
                 -c max_connections="$5" -c shared_buffers=64MB -c synchronous_commit=on &
            pg=$!
            while [ -d "/proc/$3" ] && kill -0 "$pg" 2>/dev/null; do sleep 0.2; done
            kill -INT "$pg" 2>/dev/null
            wait "$pg"
            [ "$4" = 1 ] && rm -rf "$1"
        "#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg(bin.join("postgres"))
            .arg(dir)
            .arg(port.to_string())
            .arg(owner.to_string())
            .arg(if temporary { "1" } else { "0" })
            .arg(CONNECTIONS_MAX.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).map_or_else(|_| Stdio::null(), Stdio::from));
        as_server_user(&mut cmd, user);
        // A group of its own: a Ctrl-C or a kill of the test's process group must not take the
        // watchdog with it (the server would be left running).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd.spawn().map_err(|source| Error::Start { what: "postgres".into(), source })?;
        let cluster = Cluster { port, dir: dir.to_path_buf(), bin };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    fn wait_ready(&self) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .arg("-q")
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", &self.port.to_string(), "-U", "postgres"])
                .stdin(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if started.elapsed() > Duration::from_millis(READY_TIMEOUT_MS) {
                return Err(Error::NotReady {
                    within_ms: started.elapsed().as_millis(),
                    missing: format!("PostgreSQL on port {}", self.port),
                });
            }
            std::thread::sleep(Duration::from_millis(READY_PROBE_INTERVAL_MS));
        }
    }

    /// How to reach database `name` (a libpq key-value string: the socket's folder, no password).
    pub fn url(&self, name: &str) -> String {
        format!("host={} port={} user=postgres dbname={name}", self.dir.display(), self.port)
    }

    /// Creates database `name` unless it exists; its URL.
    pub fn database(&self, name: &str) -> Result<String, Error> {
        let out = Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", name])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Start { what: "createdb".into(), source })?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains("already exists") {
            return Err(Error::Unexpected(format!("createdb {name}: {stderr}")));
        }
        Ok(self.url(name))
    }
}

impl Drop for Cluster {
    /// A fast shutdown (the watchdog then ends, and removes a temporary folder). The shared
    /// cluster is never dropped: its watchdog stops it when the process ends.
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::trim).map(str::to_string));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
        }
    }
}

/// Whether the tests run the data server on PostgreSQL (`INTERBANK_TEST_BACKEND=postgres`,
/// set by `scripts/test.sh` for its second pass over the data server's tests).
pub fn tests_use_postgres() -> bool {
    std::env::var("INTERBANK_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

/// A database of the shared cluster named after `dir` (a test's data folder), so that a server
/// started again on the same folder finds the same database.
pub fn database_for(dir: &Path) -> Result<String, Error> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    Cluster::shared()?.database(&format!("t{:016x}", h.finish()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The attack: another local user connects to the bank's database over loopback and
    /// rewrites balances. The cluster takes no TCP connection, and its socket's folder is its
    /// owner's only (fails with `listen_addresses=127.0.0.1`: the connection is accepted).
    #[test]
    fn the_private_cluster_is_reachable_only_through_its_own_folder() {
        use std::os::unix::fs::PermissionsExt;
        let c = Cluster::shared().unwrap();
        let url = c.database("reach").unwrap();
        assert!(url.starts_with(&format!("host={}", c.dir.display())), "{url}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", c.port)).is_err(),
            "PostgreSQL accepts TCP connections on 127.0.0.1:{}",
            c.port
        );
        let mode = std::fs::metadata(&c.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the cluster's folder is open to others: {mode:o}");
    }
}
