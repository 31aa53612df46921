//! Starting our real binaries for tests, tools and benchmarks: the `dataserver` on a data
//! directory, any server whose first line says where it listens, and guards that kill the
//! process when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use shared::BusinessId;

use dataserver_api::client::DataClient;

/// How long a starting server may take to print its address (redb may replay after a crash).
pub const START_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug)]
pub struct DataServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub boot_epoch: u64,
    pub data_dir: PathBuf,
    pub keys: Vec<(BusinessId, String)>,
}

#[derive(Debug, Clone)]
pub struct SpawnOptions {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    pub keys: Vec<(BusinessId, String)>,
    pub listen: String,
    pub extra_args: Vec<String>,
    /// Keep the bank's state in this database instead of `data_dir` (the PostgreSQL backend).
    pub database_url: Option<String>,
    /// Where stderr goes, with its `RUST_LOG` filter (`None`: inherited, at `warn`).
    pub log: Option<LogTo>,
}

/// A process's log, captured in a file for tests that read it (secrets never logged).
#[derive(Debug, Clone)]
pub struct LogTo {
    pub file: PathBuf,
    pub filter: String,
}

impl SpawnOptions {
    pub fn new(bin: impl Into<PathBuf>, data_dir: impl Into<PathBuf>, keys: Vec<(BusinessId, String)>) -> SpawnOptions {
        SpawnOptions {
            bin: bin.into(),
            data_dir: data_dir.into(),
            keys,
            listen: "127.0.0.1:0".into(),
            extra_args: vec![],
            database_url: None,
            log: None,
        }
    }
}

/// Starts `cmd` with stdout piped and returns it with its first line of output, which our
/// servers print once they listen (after recovery). Stdout keeps being drained afterwards.
pub fn spawn_command(cmd: Command, log: Option<&LogTo>) -> std::io::Result<(Child, String)> {
    spawn_command_lines(cmd, log).map(|(child, first, _)| (child, first))
}

/// [`spawn_command`], and the lines it prints afterwards.
pub fn spawn_command_lines(
    mut cmd: Command,
    log: Option<&LogTo>,
) -> std::io::Result<(Child, String, mpsc::Receiver<String>)> {
    match log {
        Some(l) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(&l.file)?;
            cmd.env("RUST_LOG", &l.filter).stderr(file);
        }
        None => {
            cmd.env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())).stderr(Stdio::inherit());
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Every line goes to whoever still listens; the pipe is drained either way.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match rx.recv_timeout(Duration::from_millis(START_TIMEOUT_MS)) {
        Ok(line) => Ok((child, line, rx)),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait()?;
            Err(std::io::Error::other(format!("{:?} did not start ({status})", cmd.get_program())))
        }
    }
}

/// The address in a "... listening on http://ADDR ..." (or `https://`) line.
pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    line.split("listening on ").nth(1)?.split("://").nth(1)?.split_whitespace().next()?.parse().ok()
}

/// The interbank listener's address in a business server's "... interbank=https://ADDR" line.
pub fn interbank_addr(line: &str) -> Option<SocketAddr> {
    line.split("interbank=https://").nth(1)?.split_whitespace().next()?.parse().ok()
}

/// Starts the server and waits until it leads: its "listening on ... boot_epoch=N" line, or,
/// for a standby on a database whose lease is still held (a restart after kill -9), its later
/// "dataserver leader boot_epoch=N" line.
pub fn spawn(opts: &SpawnOptions) -> std::io::Result<DataServerProcess> {
    let (mut p, lines) = start(opts)?;
    if p.boot_epoch == 0 {
        let line = lines
            .recv_timeout(Duration::from_millis(START_TIMEOUT_MS))
            .map_err(|_| std::io::Error::other("the standby did not take the leader lease"))?;
        p.boot_epoch = boot_epoch(&line).ok_or_else(|| std::io::Error::other(format!("unexpected line: {line:?}")))?;
    }
    Ok(p)
}

/// Starts the server and returns once it listens, leading or standing by (`boot_epoch` 0),
/// with the lines it prints afterwards.
pub fn start(opts: &SpawnOptions) -> std::io::Result<(DataServerProcess, mpsc::Receiver<String>)> {
    let mut cmd = Command::new(&opts.bin);
    cmd.arg("--listen").arg(&opts.listen);
    match &opts.database_url {
        Some(url) => cmd.env("DATASERVER_DATABASE_URL", url),
        None => cmd.arg("--data-dir").arg(&opts.data_dir),
    };
    // Secrets go in the environment: the data server refuses them on its command line.
    let keys: Vec<String> = opts.keys.iter().map(|(b, k)| format!("{b}:{k}")).collect();
    cmd.env("DATASERVER_KEYS", keys.join(","));
    cmd.args(&opts.extra_args);
    let (child, line, lines) = spawn_command_lines(cmd, opts.log.as_ref())?;
    let addr =
        listening_addr(&line).ok_or_else(|| std::io::Error::other(format!("unexpected first line: {line:?}")))?;
    let epoch = match boot_epoch(&line) {
        Some(e) => e,
        None if line.ends_with(" standby") => 0,
        None => return Err(std::io::Error::other(format!("unexpected first line: {line:?}"))),
    };
    let p =
        DataServerProcess { child, addr, boot_epoch: epoch, data_dir: opts.data_dir.clone(), keys: opts.keys.clone() };
    Ok((p, lines))
}

/// The N of a "... boot_epoch=N" line.
fn boot_epoch(line: &str) -> Option<u64> {
    line.split("boot_epoch=").nth(1)?.trim().parse().ok()
}

impl DataServerProcess {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client authenticated as the `i`-th configured business.
    pub fn client(&self, i: usize) -> DataClient {
        let (b, k) = &self.keys[i];
        DataClient::new(&self.url(), *b, k.clone()).expect("valid URL")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown code runs, as in a power cut of the process.
    pub fn kill9(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }

    /// SIGSTOP: the process stops answering but keeps its connections open, which is how a
    /// hung process or disk, or a network dropping packets silently, looks from outside.
    pub fn pause(&self) -> std::io::Result<()> {
        self.signal("-STOP")
    }

    /// SIGCONT: the process paused by [`DataServerProcess::pause`] runs again.
    pub fn resume(&self) -> std::io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, which: &str) -> std::io::Result<()> {
        signal(self.child.id(), which)
    }

    /// Waits up to `within` for the process to exit by itself; its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// SIGTERM and wait for a clean exit; returns whether the exit status was success.
    pub fn terminate(&mut self) -> std::io::Result<bool> {
        self.signal("-TERM")?;
        Ok(self.child.wait()?.success())
    }
}

/// Sends signal `which` (`-TERM`, `-STOP`, …) to process `pid`, as `kill` does.
pub fn signal(pid: u32, which: &str) -> std::io::Result<()> {
    let status = Command::new("kill").arg(which).arg(pid.to_string()).status()?;
    if status.success() { Ok(()) } else { Err(std::io::Error::other(format!("kill {which} {pid}: {status}"))) }
}

impl Drop for DataServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `dataserver` binary next to the running executable (target/<profile>/ or its deps/).
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join(name), dir.parent()?.join(name)].into_iter().find(|p| p.is_file())
}

/// The binary `name` built beside the running executable (same cargo profile).
pub fn binary(name: &str) -> Result<PathBuf, crate::Error> {
    sibling_binary(name).ok_or_else(|| crate::Error::NoBinary(name.to_string()))
}

/// CPU time a process has used so far, user and system, all its threads, in microseconds
/// (Linux `/proc/{pid}/stat`; `None` elsewhere or once it has exited). The kernel reports it in
/// USER_HZ ticks, which Linux fixes at 100 per second for user space on every architecture, so
/// the resolution is 10 ms: meaningful over a benchmark's seconds, not for one request.
pub fn cpu_us(pid: u32) -> Option<u64> {
    const USER_HZ: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / USER_HZ)
}

/// Resident set size of a process, in bytes (Linux `/proc`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
