//! The local S3 servers: one per flavor ([`Flavor`]) and test binary, started on first use by
//! its launcher script (scripts/moto-server.py, scripts/localstack-server.py) on a free port.
//! Each exits when this process does (it watches its stdin), even on SIGKILL. Also where the
//! repository is and how long one command may run.
//!
//! [`lab()`] is the AWS-faithful (patched) moto most scenarios use; [`server`] gives the
//! others. LocalStack takes seconds and about 500 MiB to start, so only the tests that name it
//! start it, and never more than one.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Region every sandbox uses.
pub const REGION: &str = "us-east-1";

/// How long one terraform or tfrollback invocation may run before the lab kills it and fails
/// the test (a hung lock wait must not hang CI). Override with `TFR_LAB_TIMEOUT_SECS`.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_mins(5);

/// The S3 servers users run tfrollback against, as the suite starts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// moto 5.2.1 with its invented XML roots renamed to AWS's: answers as AWS does.
    PatchedMoto,
    /// moto 5.2.1 as `moto_server` runs it: no answer rewritten.
    StockMoto,
    /// LocalStack 2026.3.0 (S3, STS, KMS; no DynamoDB).
    LocalStack,
}

impl Flavor {
    /// Its name in messages and test names.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::PatchedMoto => "patched moto",
            Flavor::StockMoto => "stock moto",
            Flavor::LocalStack => "LocalStack",
        }
    }

    /// Whether the server also serves DynamoDB (terraform's `dynamodb_table` locking).
    pub fn has_dynamodb(self) -> bool {
        self != Flavor::LocalStack
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The launcher script and its arguments besides `--port`.
    fn launcher(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Flavor::PatchedMoto => ("moto-server.py", &[]),
            Flavor::StockMoto => ("moto-server.py", &["--stock"]),
            Flavor::LocalStack => ("localstack-server.py", &[]),
        }
    }

    /// What to do when the server does not start.
    fn install_hint(self) -> &'static str {
        match self {
            Flavor::PatchedMoto | Flavor::StockMoto => {
                "run scripts/test, which installs moto (python3 -m pip install 'moto[server]==5.2.1')"
            }
            Flavor::LocalStack => {
                "run scripts/install-test-servers, which installs LocalStack into .venv-localstack \
                 (it needs a Python 3.13; see docs/test-servers.md)"
            }
        }
    }
}

/// One local AWS endpoint shared by all tests of this binary that use its flavor.
// `port`, `log()` and `server_rss_kib()` are there for debugging a test: no test calls them.
#[allow(dead_code)]
pub struct Lab {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub port: u16,
    pub flavor: Flavor,
    child: Mutex<Child>,
    /// Kept open for the life of the process: the server exits when it reads EOF here.
    _stdin: ChildStdin,
    /// Unlinked temporary file receiving the server's stderr (tracebacks), see [`Lab::log`].
    log: fs::File,
}

static LABS: [OnceLock<Lab>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];

/// The lab's AWS-faithful moto server, started on first use.
pub fn lab() -> &'static Lab {
    server(Flavor::PatchedMoto)
}

/// The server of `flavor`, started on first use (by one test; the others wait for it).
pub fn server(flavor: Flavor) -> &'static Lab {
    LABS[flavor.index()].get_or_init(|| Lab::start(flavor))
}

impl Lab {
    fn start(flavor: Flavor) -> Lab {
        let (script, args) = flavor.launcher();
        let script = repo_root().join("scripts").join(script);
        let mut last_failure = String::new();
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..5 {
            match Lab::try_start(flavor, &script, args) {
                Ok(lab) => return lab,
                Err(Failure::Retry(failure)) => last_failure = failure,
                Err(Failure::Fatal(failure)) => {
                    last_failure = failure;
                    break;
                }
            }
        }
        panic!(
            "the local S3 server ({}) did not start: {last_failure}\nhint: {}",
            flavor.name(),
            flavor.install_hint()
        );
    }

    fn try_start(flavor: Flavor, script: &Path, args: &[&str]) -> Result<Lab, Failure> {
        let port = free_port();
        let log = tempfile::tempfile()
            .map_err(|e| Failure::Fatal(format!("cannot create a log file: {e}")))?;
        let log_for_child = log
            .try_clone()
            .map_err(|e| Failure::Fatal(format!("cannot clone the log file handle: {e}")))?;
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_for_child)
            .spawn()
            .map_err(|e| {
                Failure::Fatal(if e.kind() == std::io::ErrorKind::NotFound {
                    "python3 is not on PATH".to_string()
                } else {
                    format!("cannot run python3 {}: {e}", script.display())
                })
            })?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        // The script prints `ready PORT` or exits (it gives up by itself: moto after 30 s,
        // LocalStack after 60 s).
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() == format!("ready {port}") {
            return Ok(Lab {
                endpoint: format!("http://127.0.0.1:{port}"),
                port,
                flavor,
                child: Mutex::new(child),
                _stdin: stdin,
                log,
            });
        }
        drop(stdin);
        let status = child.wait().ok();
        let message = format!(
            "python3 {} {} --port {port} exited ({}) without printing `ready {port}`; \
             its stderr:\n{}",
            script.display(),
            args.join(" "),
            status.map(|s| s.to_string()).unwrap_or_default(),
            read_all(&log)
        );
        // Exit code 2: the server is not installed (or would listen beyond loopback, or bad
        // arguments); another port won't help.
        if status.and_then(|s| s.code()) == Some(2) {
            Err(Failure::Fatal(message))
        } else {
            Err(Failure::Retry(message))
        }
    }

    /// Everything the server wrote on stderr so far (request errors, Python tracebacks).
    #[allow(dead_code)]
    pub fn log(&self) -> String {
        read_all(&self.log)
    }

    /// Resident memory of the server's process in KiB (Linux), to watch moto's listing cost in
    /// heavy tests.
    #[allow(dead_code)]
    pub fn server_rss_kib(&self) -> Option<u64> {
        let pid = self.child.lock().unwrap().id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

enum Failure {
    /// Possibly a port taken between our probe and the server's bind: try another port.
    Retry(String),
    Fatal(String),
}

/// Reads the whole file with positioned reads: the file offset is shared with the server's
/// stderr (a dup), so seeking would make it write over what it wrote before.
fn read_all(file: &fs::File) -> String {
    use std::os::unix::fs::FileExt;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = file.read_at(&mut chunk, bytes.len() as u64) {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
        .port()
}

/// The repository root: fixtures, scripts and docs are read from there.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of a file of the repository (a doc page, a CI recipe), `path` from the root.
pub fn repo_file(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// How long one command may run: `TFR_LAB_TIMEOUT_SECS`, or five minutes.
pub fn command_timeout() -> Duration {
    std::env::var("TFR_LAB_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_COMMAND_TIMEOUT)
}
