//! A throw-away PostgreSQL cluster, for tests and benchmarks.
//!
//! # Design
//!
//! [`Cluster::start`] makes a cluster of its own in a fresh temporary
//! directory and starts it on a free loopback port, never touching a
//! cluster a distribution package set up (Debian's on port 5432 stays as it
//! is). Three rules from the toolchain notes:
//!
//! * `initdb` refuses to run as root: as root, the directory is given to
//!   the `postgres` user and `initdb` and the server run as that user
//!   (`setpriv`), trusting local connections for the user `outbox`.
//! * The server is the child of the thread that started it, run in the
//!   foreground, with a *parent-death signal* (`setpriv --pdeathsig`): if
//!   the test or benchmark process dies (a panic that aborts, `SIGKILL`,
//!   Ctrl-C), the kernel stops the server with it, so no cluster outlives
//!   its run. A normal end stops it in [`Drop`] (a fast shutdown) and
//!   removes the directory.
//! * The binaries are found in `OUTBOX_PG_BIN`, else in the newest
//!   `/usr/lib/postgresql/*/bin` (Debian's layout), else on `PATH`.
//!
//! [`shared_url`] is what test binaries use: the URL in
//! `OUTBOX_TEST_DATABASE_URL` when set (`cargo xtask test` starts one
//! cluster for the whole run and sets it), else one cluster per test
//! process, started on first use from a thread that lives as long as the
//! process.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The environment variable naming a database for the tests.
pub const ENV_URL: &str = "OUTBOX_TEST_DATABASE_URL";

/// The environment variable naming the directory of PostgreSQL's binaries.
pub const ENV_BIN: &str = "OUTBOX_PG_BIN";

/// The database user the cluster trusts.
pub const USER: &str = "outbox";

/// Why a cluster could not be had.
#[derive(Debug)]
pub enum Error {
    /// PostgreSQL's server binaries are not installed.
    NotInstalled(String),
    /// A step failed.
    Step {
        /// What was being done.
        doing: &'static str,
        /// What went wrong (the command's output, or the I/O error).
        detail: String,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInstalled(why) => write!(
                f,
                "PostgreSQL is not installed ({why}): `cargo xtask test` installs it \
                 (as root: apt-get install -y postgresql-15), or set {ENV_BIN}"
            ),
            Self::Step { doing, detail } => write!(f, "throw-away PostgreSQL: {doing}: {detail}"),
        }
    }
}

impl std::error::Error for Error {}

fn step(doing: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Step {
        doing,
        detail: e.to_string(),
    }
}

/// A running throw-away cluster. Dropping it stops the server and removes
/// its directory.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    server: Child,
}

/// The directory of PostgreSQL's server binaries.
pub fn bin_dir() -> Result<PathBuf, Error> {
    if let Some(dir) = std::env::var_os(ENV_BIN) {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").exists() {
            Ok(dir)
        } else {
            Err(Error::NotInstalled(format!(
                "no initdb in {ENV_BIN}={}",
                dir.display()
            )))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("initdb").exists() && dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    Err(Error::NotInstalled(
        "no initdb in /usr/lib/postgresql/*/bin nor on PATH".into(),
    ))
}

/// Whether this process runs as root (then the cluster runs as `postgres`).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_ids() -> Result<(u32, u32), Error> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(step("reading /etc/passwd"))?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&"postgres"))
                .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            Error::NotInstalled("running as root, and there is no `postgres` user".into())
        })
}

/// A command that runs `program` as the cluster's user (as `postgres` when
/// this process is root), killed by the kernel if the calling thread dies
/// when `tied`.
fn as_owner(program: &Path, tied: bool) -> Command {
    let mut cmd = Command::new("setpriv");
    if is_root() {
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]);
        // The parent-death signal is cleared when the user changes: set it
        // in a second setpriv, already running as `postgres`.
        cmd.arg("setpriv");
    }
    if tied {
        cmd.arg("--pdeathsig=QUIT");
    }
    cmd.arg("--").arg(program);
    cmd
}

fn output_of(cmd: &mut Command, doing: &'static str) -> Result<(), Error> {
    let out = cmd.output().map_err(step(doing))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Step {
            doing,
            detail: format!(
                "{}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// A free loopback port (free when asked; the server binds it next).
fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(step("finding a free port"))?;
    Ok(listener
        .local_addr()
        .map_err(step("finding a free port"))?
        .port())
}

/// Removes the directories of earlier clusters whose server is gone (a
/// run that was killed cannot remove its own).
fn sweep(tmp: &Path) {
    for entry in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("outbox-pg-") {
            continue;
        }
        let pid_file = entry.path().join("data").join("postmaster.pid");
        let alive = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60));
        if !alive && old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Cluster {
    /// Makes and starts a cluster (see the [crate](crate) doc). Takes a
    /// second or two.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start), with server settings (`name=value`, as
    /// `postgres -c` takes them).
    pub fn start_with(settings: &[&str]) -> Result<Self, Error> {
        let bin = bin_dir()?;
        let tmp = std::env::temp_dir();
        sweep(&tmp);
        let dir = tmp.join(format!(
            "outbox-pg-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(free_port()?)
        ));
        std::fs::create_dir_all(&dir).map_err(step("making its directory"))?;
        if is_root() {
            let (uid, gid) = postgres_ids()?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(step("giving its directory to postgres"))?;
        }
        let data = dir.join("data");
        output_of(
            as_owner(&bin.join("initdb"), false)
                .arg("-D")
                .arg(&data)
                .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"])
                .env("LC_ALL", "C"),
            "initdb",
        )?;
        let port = free_port()?;
        let mut cmd = as_owner(&bin.join("postgres"), true);
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"]);
        for s in settings {
            cmd.args(["-c", s]);
        }
        let log = std::fs::File::create(dir.join("log")).map_err(step("opening its log"))?;
        let log2 = log.try_clone().map_err(step("opening its log"))?;
        let server = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(step("starting the server"))?;
        let mut cluster = Self { dir, port, server };
        cluster.wait_ready(&bin)?;
        Ok(cluster)
    }

    fn wait_ready(&mut self, bin: &Path) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                return Err(Error::Step {
                    doing: "starting the server",
                    detail: format!("it exited ({status}):\n{}", self.log()),
                });
            }
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Step {
                    doing: "waiting for the server",
                    detail: format!("not ready after 60 s:\n{}", self.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(self.dir.join("log")).map(|mut f| f.read_to_string(&mut text));
        text
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for the database `postgres` as the trusted user.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGINT: a fast shutdown (sessions ended, a clean checkpoint).
        let _ = Command::new("kill")
            .args(["-INT", &self.server.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.server.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The URL of a database for tests: `OUTBOX_TEST_DATABASE_URL` when set,
/// else a cluster of this process's own, started once, on first use, from
/// a thread that lives as long as the process (the server dies with the
/// process).
pub fn shared_url() -> Result<String, String> {
    if let Ok(url) = std::env::var(ENV_URL) {
        return Ok(url);
    }
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("pg-throwaway".into())
            .spawn(move || match Cluster::start() {
                Ok(cluster) => {
                    let _ = tx.send(Ok(cluster.url()));
                    // Keep the cluster (and this thread, its parent) for
                    // the life of the process.
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            });
        match spawned {
            Ok(_) => rx
                .recv()
                .unwrap_or_else(|_| Err("the cluster's thread died".into())),
            Err(e) => Err(e.to_string()),
        }
    })
    .clone()
}
