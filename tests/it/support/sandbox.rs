//! Sandboxes: each owns a terraform working directory (a copy of a fixture), a fresh
//! versioned S3 bucket and (optionally) a DynamoDB lock table on one of the lab's servers
//! (the patched moto unless [`SandboxBuilder::server`] names another). Tests drive
//! the real `terraform` and the real `tfrollback` binary through [`Sandbox`]; nothing goes
//! through a shell.
//!
//! Contract: every command runs with an environment built from scratch for AWS and terraform
//! (see [`Sandbox::env`]), so the developer's profile, workspace or CLI config never leak in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use md5::{Digest, Md5};

use super::aws::{Dynamo, S3};
use super::run::{Run, scrub_env};
use super::server::{Flavor, REGION, repo_root, server};

/// How the backend locks the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockStyle {
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

pub struct SandboxBuilder {
    fixture: String,
    lock: LockStyle,
    versioning: bool,
    key: String,
    backend_block: bool,
    settings: Vec<(String, String)>,
    env: Vec<(String, String)>,
    flavor: Flavor,
}

impl SandboxBuilder {
    /// One more environment variable for every command the sandbox runs (terraform's too).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// One more backend setting (as the block or `-backend-config` gives it).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_string(), value.to_string()));
        self
    }

    /// Default [`Flavor::PatchedMoto`]. The server is started if no test has started it yet.
    pub fn server(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Default [`LockStyle::DynamoDb`].
    pub fn lock(mut self, lock: LockStyle) -> Self {
        self.lock = lock;
        self
    }

    /// Default true. False creates the bucket without versioning.
    pub fn versioning(mut self, versioning: bool) -> Self {
        self.versioning = versioning;
        self
    }

    /// Default `app/terraform.tfstate`.
    pub fn key(mut self, key: &str) -> Self {
        self.key = key.to_string();
        self
    }

    /// Default true: backend.tf holds the whole `backend "s3"` block. False: backend.tf is
    /// `backend "s3" {}` and the settings go to `terraform init` as `-backend-config=K=V`, so
    /// they exist only in `.terraform/terraform.tfstate`.
    pub fn backend_block(mut self, full: bool) -> Self {
        self.backend_block = full;
        self
    }

    /// Creates the bucket (and table), copies the fixture, writes backend.tf, runs init.
    pub fn build(self) -> Sandbox {
        assert!(
            !self.lock.dynamodb() || self.flavor.has_dynamodb(),
            "{} serves no DynamoDB here: lock a sandbox on it with LockStyle::LockFile or None",
            self.flavor.name()
        );
        let lab = server(self.flavor);
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
            settings: self.settings,
            extra_env: self.env,
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
pub struct Sandbox {
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
    /// Backend settings beyond the lab's own (see [`SandboxBuilder::setting`]).
    settings: Vec<(String, String)>,
    /// Environment beyond the lab's own (see [`SandboxBuilder::env`]).
    extra_env: Vec<(String, String)>,
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
    pub fn new(fixture: &str) -> Sandbox {
        Sandbox::builder(fixture).build()
    }

    pub fn builder(fixture: &str) -> SandboxBuilder {
        SandboxBuilder {
            fixture: fixture.to_string(),
            lock: LockStyle::DynamoDb,
            versioning: true,
            key: "app/terraform.tfstate".to_string(),
            backend_block: true,
            settings: vec![],
            env: vec![],
            flavor: Flavor::PatchedMoto,
        }
    }

    fn root(&self) -> &Path {
        self.root
            .as_ref()
            .map(tempfile::TempDir::path)
            .expect("sandbox root is present until drop")
    }

    /// The S3 backend settings, in backend.tf order.
    pub fn backend_settings(&self) -> Vec<(String, String)> {
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
        settings.extend(self.settings.iter().cloned());
        settings
    }

    /// The environment given to terraform and tfrollback (on top of a scrubbed parent env).
    pub fn env(&self) -> Vec<(String, String)> {
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
            // A short heartbeat: a killed operation is recoverable after 3 s, not 30 s.
            ("TFROLLBACK_HEARTBEAT", "1".to_string()),
            ("XDG_CACHE_HOME", root.join("cache").display().to_string()),
            ("HOME", root.join("home").display().to_string()),
        ];
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.extra_env.iter().cloned())
            .collect()
    }

    /// A command for `program` in the sandbox directory with the sandbox environment and
    /// stdin closed; not started. For tests that need to spawn and signal a process.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        scrub_env(&mut cmd, &[]);
        cmd.envs(self.env());
        cmd
    }

    /// `tfrollback -C DIR ARGS...`, not started.
    pub fn tfr_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_tfrollback"));
        cmd.arg("-C").arg(&self.dir).args(args);
        cmd
    }

    /// `terraform ARGS...` in the sandbox directory.
    pub fn terraform(&self, args: &[&str]) -> Run {
        let mut cmd = self.command("terraform");
        cmd.args(args);
        Run::capture(cmd, &format!("terraform {}", args.join(" ")))
    }

    /// `terraform init -input=false` (with `-backend-config` when `backend_block(false)`).
    /// Asserts success. Already done by [`Sandbox::new`] and [`SandboxBuilder::build`].
    pub fn init(&self) {
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
    pub fn apply(&self, vars: &[(&str, &str)]) {
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

    /// The lab's two deploys: blue, then traffic flipped to green (running `green_version`
    /// when given). The states are terraform's own.
    pub fn deploy(&self, green_version: Option<&str>) {
        self.apply(&[("active_slot", "blue")]);
        match green_version {
            Some(version) => self.apply(&[("active_slot", "green"), ("green_version", version)]),
            None => self.apply(&[("active_slot", "green")]),
        }
    }

    /// `tfrollback recover --json` once the interrupted operation has stopped: retried while
    /// it refuses because the operation (or its terraform) is still running, as its heartbeat
    /// stays fresh for a few seconds after a kill; asserts it then succeeds.
    pub fn recover_when_stopped(&self) -> Run {
        let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
        loop {
            let run = self.tfr(&["recover", "--json"]);
            if run.code == 0 {
                return run;
            }
            assert!(
                run.stderr.contains("still running"),
                "recover failed: {}",
                run.stderr
            );
            assert!(std::time::Instant::now() < deadline, "{}", run.stderr);
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// `tfrollback -C DIR ARGS...` with the sandbox environment and stdin closed.
    pub fn tfr(&self, args: &[&str]) -> Run {
        self.tfr_with(args, &[])
    }

    /// Like [`Sandbox::tfr`], with extra environment variables (set after the sandbox ones).
    pub fn tfr_with(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
        let mut cmd = self.tfr_command(args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Run::capture(cmd, &format!("tfrollback -C <sandbox> {}", args.join(" ")))
    }

    /// The version ids of the state key, newest first.
    pub fn version_ids(&self) -> Vec<String> {
        self.s3()
            .versions(&self.key)
            .into_iter()
            .map(|v| v.version_id)
            .collect()
    }

    /// The current state as JSON.
    pub fn current_state(&self) -> serde_json::Value {
        self.s3().get_json(&self.key, None)
    }

    /// The value of the output `name` in the current state.
    pub fn current_output(&self, name: &str) -> serde_json::Value {
        self.current_state()["outputs"][name]["value"].clone()
    }

    /// The MD5 of the current state's bytes in hex: what the DynamoDB digest item must hold
    /// for terraform to accept the state.
    pub fn state_md5(&self) -> String {
        let body = self.s3().get(&self.key, None);
        Md5::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The records of `tfrollback history --json`, in the order it lists them.
    pub fn history(&self) -> Vec<serde_json::Value> {
        self.tfr(&["history", "--json"]).ok().json()["records"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Stores `body` as the version just before the current one: the current bytes go back
    /// on top, so the digest terraform checks still matches. Returns the planted version id.
    pub fn plant_previous(&self, body: &[u8]) -> String {
        let current = self.s3().get(&self.key, None);
        let planted = self.s3().put(&self.key, body);
        self.s3().put(&self.key, &current);
        planted
    }

    /// Direct S3 access to the sandbox bucket, for setup and assertions.
    pub fn s3(&self) -> S3 {
        S3::new(&self.endpoint, &self.bucket)
    }

    /// Direct DynamoDB access (lock and digest items).
    pub fn dynamodb(&self) -> Dynamo {
        Dynamo::new(&self.endpoint)
    }

    /// `LockID` of the state lock item: `<bucket>/<key>`.
    pub fn lock_id(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    /// `LockID` of the digest item: `<bucket>/<key>-md5`.
    pub fn digest_id(&self) -> String {
        format!("{}/{}-md5", self.bucket, self.key)
    }
}

/// The bluegreen fixture's sensitive variable: in the `db_password` output and in a resource
/// attribute. No output, report, journal, cache or log may ever show it.
pub const SECRET: &str = "s3cr3t-hunter2-do-not-print";

/// The bluegreen fixture deployed twice, blue (v1) then green: the deploy a rollback undoes.
/// `green_version` is the build the second apply puts on green; `None` keeps the fixture's
/// v1 there, so only the slot changes.
pub fn deployed(lock: LockStyle, green_version: Option<&str>) -> Sandbox {
    deployed_on(Flavor::PatchedMoto, lock, green_version)
}

/// [`deployed`] on the server of `flavor`.
pub fn deployed_on(flavor: Flavor, lock: LockStyle, green_version: Option<&str>) -> Sandbox {
    let sb = Sandbox::builder("bluegreen")
        .lock(lock)
        .server(flavor)
        .build();
    sb.deploy(green_version);
    sb
}

impl Sandbox {
    /// CloudWatch on the sandbox's server.
    pub fn cloudwatch(&self) -> crate::support::aws::CloudWatch {
        crate::support::aws::CloudWatch::new(&self.endpoint)
    }

    /// No lock is left: neither a lock file nor a DynamoDB lock item.
    #[track_caller]
    pub fn assert_unlocked(&self) {
        assert!(
            !self.s3().exists(&format!("{}.tflock", self.key)),
            "lock file left behind"
        );
        if let Some(table) = &self.table {
            assert_eq!(
                self.dynamodb().get(table, &self.lock_id()),
                None,
                "DynamoDB lock item left behind"
            );
        }
    }

    /// Where the backend has a DynamoDB table, its digest is the MD5 of the current state
    /// bytes, as terraform checks on every read. Without a table there is no digest to keep.
    #[track_caller]
    pub fn assert_digest_matches(&self) {
        if let Some(table) = &self.table {
            let item = self.dynamodb().get(table, &self.digest_id());
            assert_eq!(
                item.and_then(|i| i.get("Digest").cloned()),
                Some(self.state_md5()),
                "the DynamoDB digest does not match the state"
            );
        }
    }
}
