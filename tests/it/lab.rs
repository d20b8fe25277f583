//! The test lab: one local AWS server (moto) per test binary, and sandboxes that each own a
//! terraform working directory, a fresh versioned S3 bucket and (optionally) a DynamoDB lock
//! table on that server. Tests drive the real `terraform` and the real `tfrollback` binary
//! through [`Sandbox`]; nothing goes through a shell.
//!
//! Contract: every command runs with an environment built from scratch for AWS and terraform
//! (see [`Sandbox::env`]), so the developer's profile, workspace or CLI config never leak in.
//! The moto server exits when this process does (it watches its stdin), even on SIGKILL.
//!
//! Functions here must be called from plain `#[test]` functions; the S3 helpers also work
//! inside a tokio runtime (they then block on a scoped thread).

// Each test module uses a part of this API; the rest is dead code for that build.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};

/// Region every sandbox uses.
pub(crate) const REGION: &str = "us-east-1";

/// How long one terraform or tfrollback invocation may run before the lab kills it and fails
/// the test (a hung lock wait must not hang CI). Override with `TFR_LAB_TIMEOUT_SECS`.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_mins(5);

/// Variables removed from every child's environment on top of all `AWS_*`, `TF_*` and
/// `TFROLLBACK_*` ones: they change output or behaviour and must come from the test only.
const SCRUBBED_VARS: &[&str] = &[
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "GITHUB_STEP_SUMMARY",
    "CHECKPOINT_DISABLE",
];

// ---------------------------------------------------------------------------------------------
// The moto server
// ---------------------------------------------------------------------------------------------

/// The local AWS endpoint shared by all tests of this binary.
pub(crate) struct Lab {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub port: u16,
    child: Mutex<Child>,
    /// Kept open for the life of the process: moto exits when it reads EOF here.
    _stdin: ChildStdin,
    /// Unlinked temporary file receiving moto's stderr (tracebacks), see [`Lab::log`].
    log: fs::File,
}

static LAB: OnceLock<Lab> = OnceLock::new();

/// The lab's moto server, started on first use.
pub(crate) fn lab() -> &'static Lab {
    LAB.get_or_init(Lab::start)
}

impl Lab {
    fn start() -> Lab {
        let script = repo_root().join("scripts").join("moto-server.py");
        let mut last_failure = String::new();
        // A port found free can be taken before moto binds it: try a few.
        for _ in 0..5 {
            match Lab::try_start(&script) {
                Ok(lab) => return lab,
                Err(Failure::Retry(failure)) => last_failure = failure,
                Err(Failure::Fatal(failure)) => {
                    last_failure = failure;
                    break;
                }
            }
        }
        panic!(
            "the local S3 server (moto) did not start: {last_failure}\n\
             hint: run scripts/test, which installs moto (python3 -m pip install 'moto[server]')"
        );
    }

    fn try_start(script: &Path) -> Result<Lab, Failure> {
        let port = free_port();
        let log = tempfile::tempfile()
            .map_err(|e| Failure::Fatal(format!("cannot create a log file: {e}")))?;
        let log_for_child = log
            .try_clone()
            .map_err(|e| Failure::Fatal(format!("cannot clone the log file handle: {e}")))?;
        let mut child = Command::new("python3")
            .arg(script)
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
        // The script prints `ready PORT` or exits (it gives up by itself after 30 s).
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() == format!("ready {port}") {
            return Ok(Lab {
                endpoint: format!("http://127.0.0.1:{port}"),
                port,
                child: Mutex::new(child),
                _stdin: stdin,
                log,
            });
        }
        drop(stdin);
        let status = child.wait().ok();
        let message = format!(
            "python3 {} --port {port} exited ({}) without printing `ready {port}`; \
             its stderr:\n{}",
            script.display(),
            status.map(|s| s.to_string()).unwrap_or_default(),
            read_all(&log)
        );
        // Exit code 2: moto cannot be imported (or bad arguments); another port won't help.
        if status.and_then(|s| s.code()) == Some(2) {
            Err(Failure::Fatal(message))
        } else {
            Err(Failure::Retry(message))
        }
    }

    /// Everything moto wrote on stderr so far (request errors, Python tracebacks).
    pub(crate) fn log(&self) -> String {
        read_all(&self.log)
    }

    /// Resident memory of the server in KiB (Linux), to watch moto's listing cost in heavy tests.
    pub(crate) fn server_rss_kib(&self) -> Option<u64> {
        let pid = self.child.lock().unwrap().id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

enum Failure {
    /// Possibly a port taken between our probe and moto's bind: try another port.
    Retry(String),
    Fatal(String),
}

/// Reads the whole file with positioned reads: the file offset is shared with moto's
/// stderr (a dup), so seeking would make moto write over what it wrote before.
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
        .port()
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn command_timeout() -> Duration {
    std::env::var("TFR_LAB_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_COMMAND_TIMEOUT)
}

// ---------------------------------------------------------------------------------------------
// Sandboxes
// ---------------------------------------------------------------------------------------------

/// How the backend locks the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockStyle {
    None,
    /// `dynamodb_table` (a fresh table with hash key `LockID`).
    DynamoDb,
    /// `use_lockfile = true` (`<key>.tflock` in the bucket).
    LockFile,
    Both,
}

impl LockStyle {
    fn dynamodb(self) -> bool {
        matches!(self, LockStyle::DynamoDb | LockStyle::Both)
    }
    fn lockfile(self) -> bool {
        matches!(self, LockStyle::LockFile | LockStyle::Both)
    }
}

pub(crate) struct SandboxBuilder {
    fixture: String,
    lock: LockStyle,
    versioning: bool,
    key: String,
    backend_block: bool,
}

impl SandboxBuilder {
    /// Default [`LockStyle::DynamoDb`].
    pub(crate) fn lock(mut self, lock: LockStyle) -> Self {
        self.lock = lock;
        self
    }

    /// Default true. False creates the bucket without versioning.
    pub(crate) fn versioning(mut self, versioning: bool) -> Self {
        self.versioning = versioning;
        self
    }

    /// Default `app/terraform.tfstate`.
    pub(crate) fn key(mut self, key: &str) -> Self {
        self.key = key.to_string();
        self
    }

    /// Default true: backend.tf holds the whole `backend "s3"` block. False: backend.tf is
    /// `backend "s3" {}` and the settings go to `terraform init` as `-backend-config=K=V`, so
    /// they exist only in `.terraform/terraform.tfstate`.
    pub(crate) fn backend_block(mut self, full: bool) -> Self {
        self.backend_block = full;
        self
    }

    /// Creates the bucket (and table), copies the fixture, writes backend.tf, runs init.
    pub(crate) fn build(self) -> Sandbox {
        let lab = lab();
        let n = SANDBOX_COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let bucket = format!("tfr-{pid}-{n}");
        let table = self.lock.dynamodb().then(|| format!("tfr-locks-{pid}-{n}"));

        let fixture_dir = repo_root().join("fixtures").join(&self.fixture);
        assert!(
            fixture_dir.is_dir(),
            "no fixture named {:?} (looked for {})",
            self.fixture,
            fixture_dir.display()
        );
        let root = tempfile::Builder::new()
            .prefix("tfr-lab-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let dir = root.path().join("work");
        copy_dir(&fixture_dir, &dir);
        for sub in ["home", "cache"] {
            fs::create_dir_all(root.path().join(sub)).expect("cannot create sandbox directory");
        }
        let cli_config = root.path().join("terraformrc");
        fs::write(&cli_config, "disable_checkpoint = true\n").expect("cannot write terraformrc");

        let sandbox = Sandbox {
            dir,
            bucket,
            key: self.key,
            table,
            root: Some(root),
            endpoint: lab.endpoint.clone(),
            lock: self.lock,
            backend_block: self.backend_block,
        };

        let s3 = sandbox.s3();
        s3.create_bucket(self.versioning);
        if let Some(table) = &sandbox.table {
            sandbox.dynamodb().create_lock_table(table);
        }
        let backend = if sandbox.backend_block {
            let mut block = String::from("terraform {\n  backend \"s3\" {\n");
            for (k, v) in sandbox.backend_settings() {
                let value = if v == "true" { v } else { format!("\"{v}\"") };
                block.push_str(&format!("    {k:<14} = {value}\n"));
            }
            block.push_str("  }\n}\n");
            block
        } else {
            "terraform {\n  backend \"s3\" {}\n}\n".to_string()
        };
        fs::write(sandbox.dir.join("backend.tf"), backend).expect("cannot write backend.tf");
        sandbox.init();
        sandbox
    }
}

static SANDBOX_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("cannot create the sandbox work directory");
    for entry in fs::read_dir(from).expect("cannot read fixture directory") {
        let entry = entry.expect("cannot read fixture directory entry");
        let name = entry.file_name();
        // A fixture may have been initialised by hand: never copy its local state.
        if name == ".terraform" || name == ".terraform.lock.hcl" || name == "terraform.tfstate" {
            continue;
        }
        let target = to.join(&name);
        if entry
            .file_type()
            .expect("cannot stat fixture entry")
            .is_dir()
        {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("cannot copy fixture file");
        }
    }
}

/// A terraform working directory bound to its own bucket on the lab server.
pub(crate) struct Sandbox {
    /// The terraform working directory (fixture copy + backend.tf).
    pub dir: PathBuf,
    pub bucket: String,
    pub key: String,
    /// The DynamoDB lock table, when the lock style uses one.
    pub table: Option<String>,
    /// Temporary root holding `dir`, `home`, `cache`, `terraformrc`; removed on drop unless
    /// `TFR_LAB_KEEP=1`.
    root: Option<tempfile::TempDir>,
    endpoint: String,
    lock: LockStyle,
    backend_block: bool,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::env::var_os("TFR_LAB_KEEP").is_some_and(|v| v == "1")
            && let Some(root) = self.root.take()
        {
            eprintln!("TFR_LAB_KEEP: sandbox kept at {}", root.keep().display());
        }
    }
}

impl Sandbox {
    /// A sandbox with the builder's defaults, initialised.
    pub(crate) fn new(fixture: &str) -> Sandbox {
        Sandbox::builder(fixture).build()
    }

    pub(crate) fn builder(fixture: &str) -> SandboxBuilder {
        SandboxBuilder {
            fixture: fixture.to_string(),
            lock: LockStyle::DynamoDb,
            versioning: true,
            key: "app/terraform.tfstate".to_string(),
            backend_block: true,
        }
    }

    fn root(&self) -> &Path {
        self.root
            .as_ref()
            .map(tempfile::TempDir::path)
            .expect("sandbox root is present until drop")
    }

    /// The S3 backend settings, in backend.tf order.
    pub(crate) fn backend_settings(&self) -> Vec<(String, String)> {
        let mut settings = vec![
            ("bucket".to_string(), self.bucket.clone()),
            ("key".to_string(), self.key.clone()),
            ("region".to_string(), REGION.to_string()),
            ("use_path_style".to_string(), "true".to_string()),
        ];
        if let Some(table) = &self.table {
            settings.push(("dynamodb_table".to_string(), table.clone()));
        }
        if self.lock.lockfile() {
            settings.push(("use_lockfile".to_string(), "true".to_string()));
        }
        settings
    }

    /// The environment given to terraform and tfrollback (on top of a scrubbed parent env).
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        let root = self.root();
        let pairs = [
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            (
                "TF_CLI_CONFIG_FILE",
                root.join("terraformrc").display().to_string(),
            ),
            ("CHECKPOINT_DISABLE", "1".to_string()),
            ("TF_IN_AUTOMATION", "1".to_string()),
            ("XDG_CACHE_HOME", root.join("cache").display().to_string()),
            ("HOME", root.join("home").display().to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// A command for `program` in the sandbox directory with the sandbox environment and
    /// stdin closed; not started. For tests that need to spawn and signal a process.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        for (name, _) in std::env::vars_os() {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with("AWS_")
                || name.starts_with("TF_")
                || name.starts_with("TFROLLBACK_")
                || SCRUBBED_VARS.contains(&name)
            {
                cmd.env_remove(name);
            }
        }
        cmd.envs(self.env());
        cmd
    }

    /// `tfrollback -C DIR ARGS...`, not started.
    pub(crate) fn tfr_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_tfrollback"));
        cmd.arg("-C").arg(&self.dir).args(args);
        cmd
    }

    /// `terraform ARGS...` in the sandbox directory.
    pub(crate) fn terraform(&self, args: &[&str]) -> Run {
        let mut cmd = self.command("terraform");
        cmd.args(args);
        Run::capture(cmd, &format!("terraform {}", args.join(" ")))
    }

    /// `terraform init -input=false` (with `-backend-config` when `backend_block(false)`).
    /// Asserts success. Already done by [`Sandbox::new`] and [`SandboxBuilder::build`].
    pub(crate) fn init(&self) {
        let mut args = vec![
            "init".to_string(),
            "-input=false".to_string(),
            "-no-color".to_string(),
        ];
        if !self.backend_block {
            for (k, v) in self.backend_settings() {
                args.push(format!("-backend-config={k}={v}"));
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.terraform(&args).ok();
    }

    /// `terraform apply -auto-approve -input=false -var K=V...`; asserts success.
    pub(crate) fn apply(&self, vars: &[(&str, &str)]) {
        let mut args = vec![
            "apply".to_string(),
            "-auto-approve".to_string(),
            "-input=false".to_string(),
            "-no-color".to_string(),
        ];
        for (k, v) in vars {
            args.push("-var".to_string());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.terraform(&args).ok();
    }

    /// `tfrollback -C DIR ARGS...` with the sandbox environment and stdin closed.
    pub(crate) fn tfr(&self, args: &[&str]) -> Run {
        self.tfr_with(args, &[])
    }

    /// Like [`Sandbox::tfr`], with extra environment variables (set after the sandbox ones).
    pub(crate) fn tfr_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let mut cmd = self.tfr_command(args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Run::capture(cmd, &format!("tfrollback -C <sandbox> {}", args.join(" ")))
    }

    /// Direct S3 access to the sandbox bucket, for setup and assertions.
    /// The version ids of the state key, newest first.
    pub(crate) fn version_ids(&self) -> Vec<String> {
        self.s3()
            .versions(&self.key)
            .into_iter()
            .map(|v| v.version_id)
            .collect()
    }

    /// The current state as JSON.
    pub(crate) fn current_state(&self) -> serde_json::Value {
        self.s3().get_json(&self.key, None)
    }

    /// Stores `body` as the version just before the current one: the current bytes go back
    /// on top, so the digest terraform checks still matches. Returns the planted version id.
    pub(crate) fn plant_previous(&self, body: &[u8]) -> String {
        let current = self.s3().get(&self.key, None);
        let planted = self.s3().put(&self.key, body);
        self.s3().put(&self.key, &current);
        planted
    }

    pub(crate) fn s3(&self) -> S3 {
        S3::new(&self.endpoint, &self.bucket)
    }

    /// Direct DynamoDB access (lock and digest items).
    pub(crate) fn dynamodb(&self) -> Dynamo {
        Dynamo::new(&self.endpoint)
    }

    /// `LockID` of the state lock item: `<bucket>/<key>`.
    pub(crate) fn lock_id(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    /// `LockID` of the digest item: `<bucket>/<key>-md5`.
    pub(crate) fn digest_id(&self) -> String {
        format!("{}/{}-md5", self.bucket, self.key)
    }
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// A finished command. `code` is the exit code, or 128 + signal number when it was killed.
pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    what: String,
}

impl Run {
    /// Runs `cmd` to completion with captured output, killing it after the lab timeout.
    fn capture(mut cmd: Command, what: &str) -> Run {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            assert!(
                e.kind() != std::io::ErrorKind::NotFound,
                "`{program}` not found; the tests need terraform >= 1.5 on PATH \
                 (scripts/test checks it) and the tfrollback binary built by cargo"
            );
            panic!("cannot run `{what}`: {e}")
        });
        // Drain both pipes on their own threads so a chatty child never blocks.
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let deadline = Instant::now() + command_timeout();
        let status = loop {
            if let Some(status) = child.try_wait().expect("cannot wait for child") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let out = stdout.join().unwrap_or_default();
                let err = stderr.join().unwrap_or_default();
                panic!(
                    "`{what}` did not finish within {:?} and was killed \
                     (set TFR_LAB_TIMEOUT_SECS to change)\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                    command_timeout()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        });
        Run {
            code,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            what: what.to_string(),
        }
    }

    /// Panics (showing both streams) unless the exit code is 0.
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        self.code(0)
    }

    /// Panics (showing both streams) unless the exit code is `expected`.
    #[track_caller]
    pub(crate) fn code(self, expected: i32) -> Self {
        assert!(
            self.code == expected,
            "`{}` exited with {} (expected {expected})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout parsed as JSON; panics with the text when it is not.
    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of `{}` is not JSON ({e})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.what, self.stdout, self.stderr
            )
        })
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

// ---------------------------------------------------------------------------------------------
// Direct AWS access
// ---------------------------------------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

/// Runs `future` to completion on `rt`, also when called from inside another runtime.
fn block_on<F>(rt: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(future))
                .join()
                .expect("S3 helper thread panicked")
        })
    } else {
        rt.block_on(future)
    }
}

/// Renders an SDK error with its service code and message (never just "service error").
fn sdk_error<E, R>(error: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown code"),
            service.message().unwrap_or("no message")
        ),
        None => format!("{}", aws_sdk_s3::error::DisplayErrorContext(error)),
    }
}

/// One entry of a version listing: an object version or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    /// Body size; 0 for delete markers.
    pub size: i64,
    /// Seconds since the epoch (S3 has one-second resolution).
    pub last_modified: i64,
}

/// Synchronous S3 access to one bucket on the lab server.
pub(crate) struct S3 {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    rt: tokio::runtime::Runtime,
}

impl S3 {
    pub(crate) fn new(endpoint: &str, bucket: &str) -> S3 {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "tfr-lab"))
            .force_path_style(true)
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_mins(1))
                    .build(),
            )
            .build();
        S3 {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.to_string(),
            rt: runtime(),
        }
    }

    fn create_bucket(&self, versioning: bool) {
        block_on(&self.rt, async {
            self.client
                .create_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateBucket {}: {}", self.bucket, sdk_error(&e)));
            if versioning {
                self.client
                    .put_bucket_versioning()
                    .bucket(&self.bucket)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PutBucketVersioning {}: {}", self.bucket, sdk_error(&e))
                    });
            }
        });
    }

    /// All versions and delete markers of exactly `key`, newest first.
    ///
    /// The SDK returns versions and delete markers as two lists, so they are merged by
    /// LastModified (one-second resolution), the latest entry first; a version and a delete
    /// marker written within the same second may come out in either order below the latest.
    pub(crate) fn versions(&self, key: &str) -> Vec<Version> {
        block_on(&self.rt, async {
            let mut all = Vec::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let page = self
                    .client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(key)
                    .set_key_marker(key_marker.clone())
                    .set_version_id_marker(version_marker.clone())
                    .send()
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "ListObjectVersions {}/{key}: {}",
                            self.bucket,
                            sdk_error(&e)
                        )
                    });
                let mut rank = all.len();
                for v in page.versions().iter().filter(|v| v.key() == Some(key)) {
                    all.push((
                        rank,
                        Version {
                            version_id: v.version_id().unwrap_or("null").to_string(),
                            is_latest: v.is_latest().unwrap_or(false),
                            delete_marker: false,
                            size: v.size().unwrap_or(0),
                            last_modified: v
                                .last_modified()
                                .map(aws_sdk_dynamodb::primitives::DateTime::secs)
                                .unwrap_or(0),
                        },
                    ));
                    rank += 1;
                }
                for m in page
                    .delete_markers()
                    .iter()
                    .filter(|m| m.key() == Some(key))
                {
                    all.push((
                        rank,
                        Version {
                            version_id: m.version_id().unwrap_or("null").to_string(),
                            is_latest: m.is_latest().unwrap_or(false),
                            delete_marker: true,
                            size: 0,
                            last_modified: m
                                .last_modified()
                                .map(aws_sdk_dynamodb::primitives::DateTime::secs)
                                .unwrap_or(0),
                        },
                    ));
                    rank += 1;
                }
                if !page.is_truncated().unwrap_or(false) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
                assert!(
                    key_marker.is_some() && version_marker.is_some(),
                    "truncated ListObjectVersions page without markers"
                );
            }
            // Latest first, then newest first; the listing order breaks ties within a kind.
            all.sort_by_key(|(rank, v)| {
                (
                    std::cmp::Reverse(v.is_latest),
                    std::cmp::Reverse(v.last_modified),
                    *rank,
                )
            });
            all.into_iter().map(|(_, v)| v).collect()
        })
    }

    /// Body of `key` (its latest version, or `version_id`).
    pub(crate) fn get(&self, key: &str, version_id: Option<&str>) -> Vec<u8> {
        block_on(&self.rt, async {
            let out = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .set_version_id(version_id.map(str::to_string))
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "GetObject {}/{key} version {version_id:?}: {}",
                        self.bucket,
                        sdk_error(&e)
                    )
                });
            out.body
                .collect()
                .await
                .unwrap_or_else(|e| panic!("reading {}/{key}: {e}", self.bucket))
                .into_bytes()
                .to_vec()
        })
    }

    /// Body of `key` parsed as JSON (a state file).
    pub(crate) fn get_json(&self, key: &str, version_id: Option<&str>) -> serde_json::Value {
        let body = self.get(key, version_id);
        serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{}/{key} version {version_id:?} is not JSON ({e}): {}",
                self.bucket,
                String::from_utf8_lossy(&body)
            )
        })
    }

    /// Writes `body` at `key`; returns the new version id ("null" when unversioned).
    pub(crate) fn put(&self, key: &str, body: &[u8]) -> String {
        block_on(&self.rt, async {
            let out = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("PutObject {}/{key}: {}", self.bucket, sdk_error(&e)));
            out.version_id().unwrap_or("null").to_string()
        })
    }

    /// Plain delete; in a versioned bucket it returns the new delete marker's version id.
    pub(crate) fn delete(&self, key: &str) -> String {
        block_on(&self.rt, async {
            let out = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| {
                    panic!("DeleteObject {}/{key}: {}", self.bucket, sdk_error(&e))
                });
            out.version_id().unwrap_or("null").to_string()
        })
    }

    /// Whether `key` currently exists (false when its latest version is a delete marker).
    /// The tags of one version of `key`.
    pub(crate) fn tags(
        &self,
        key: &str,
        version_id: &str,
    ) -> std::collections::BTreeMap<String, String> {
        block_on(&self.rt, async {
            let out = self
                .client
                .get_object_tagging()
                .bucket(&self.bucket)
                .key(key)
                .version_id(version_id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetObjectTagging {key}: {}", sdk_error(&e)));
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()
        })
    }

    /// Every version (and delete marker) of every key under `prefix`, as (key, version id).
    pub(crate) fn versions_under(&self, prefix: &str) -> Vec<(String, String)> {
        block_on(&self.rt, async {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListObjectVersions {prefix}: {}", sdk_error(&e)));
            out.versions()
                .iter()
                .map(|v| {
                    (
                        v.key().unwrap_or_default().to_string(),
                        v.version_id().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    }

    /// The current keys under `prefix`.
    pub(crate) fn keys(&self, prefix: &str) -> Vec<String> {
        block_on(&self.rt, async {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap_or_else(|e| panic!("ListObjectsV2 {prefix}: {}", sdk_error(&e)));
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        })
    }

    pub(crate) fn exists(&self, key: &str) -> bool {
        block_on(&self.rt, async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(_) => true,
                Err(e)
                    if e.as_service_error().is_some_and(
                        aws_sdk_s3::operation::head_object::HeadObjectError::is_not_found,
                    ) =>
                {
                    false
                }
                Err(e) => panic!("HeadObject {}/{key}: {}", self.bucket, sdk_error(&e)),
            }
        })
    }
}

/// Synchronous DynamoDB access on the lab server, for lock and digest items.
pub(crate) struct Dynamo {
    pub client: aws_sdk_dynamodb::Client,
    rt: tokio::runtime::Runtime,
}

impl Dynamo {
    pub(crate) fn new(endpoint: &str) -> Dynamo {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "tfr-lab"))
            .build();
        Dynamo {
            client: aws_sdk_dynamodb::Client::from_conf(config),
            rt: runtime(),
        }
    }

    fn create_lock_table(&self, table: &str) {
        block_on(&self.rt, async {
            self.client
                .create_table()
                .table_name(table)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("LockID")
                        .key_type(KeyType::Hash)
                        .build()
                        .expect("valid key schema"),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("LockID")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .expect("valid attribute definition"),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateTable {table}: {}", sdk_error(&e)));
        });
    }

    /// The string attributes of the item `LockID = lock_id`, if it exists.
    pub(crate) fn get(&self, table: &str, lock_id: &str) -> Option<HashMap<String, String>> {
        block_on(&self.rt, async {
            let out = self
                .client
                .get_item()
                .table_name(table)
                .key("LockID", AttributeValue::S(lock_id.to_string()))
                .consistent_read(true)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetItem {table} {lock_id}: {}", sdk_error(&e)));
            out.item.map(|item| {
                item.into_iter()
                    .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
                    .collect()
            })
        })
    }

    /// Writes the item `LockID = lock_id` with string attributes `attrs` (unconditionally).
    pub(crate) fn put(&self, table: &str, lock_id: &str, attrs: &[(&str, &str)]) {
        block_on(&self.rt, async {
            let mut req = self
                .client
                .put_item()
                .table_name(table)
                .item("LockID", AttributeValue::S(lock_id.to_string()));
            for (k, v) in attrs {
                req = req.item(*k, AttributeValue::S(v.to_string()));
            }
            req.send()
                .await
                .unwrap_or_else(|e| panic!("PutItem {table} {lock_id}: {}", sdk_error(&e)));
        });
    }

    /// Deletes the item `LockID = lock_id` (no error when absent).
    pub(crate) fn delete(&self, table: &str, lock_id: &str) {
        block_on(&self.rt, async {
            self.client
                .delete_item()
                .table_name(table)
                .key("LockID", AttributeValue::S(lock_id.to_string()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("DeleteItem {table} {lock_id}: {}", sdk_error(&e)));
        });
    }
}
