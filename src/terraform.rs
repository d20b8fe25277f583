//! The terraform (or tofu) binary. Always run directly, never through a shell, with
//! `-input=false` and in its own process group: a terminal's Ctrl-C reaches tfrollback only,
//! which forwards it once. Stderr is drained on its own task so a chatty child cannot block.
//! Results are read from plan files and JSON, never from scraped human output.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub(crate) enum TerraformError {
    #[error("no `{bin}` binary on PATH")]
    NotFound { bin: String },
    #[error("cannot run {bin}: {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("`{command}` failed (exit {code}){}", diagnostics_text(.diagnostics))]
    Failed {
        command: String,
        code: i32,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("`{command}` printed JSON tfrollback cannot read: {detail}")]
    BadJson { command: String, detail: String },
    #[error("`{command}` was stopped by a signal")]
    Killed { command: String },
    #[error("cannot create terraform's output file {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot read the saved plan {path}: {detail}")]
    PlanUnreadable { path: String, detail: String },
    #[error("cannot prepare the plan file {path}: {source}")]
    PlanFile {
        path: String,
        source: std::io::Error,
    },
}

fn diagnostics_text(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("\n  {d}"))
        .collect::<String>()
}

/// An error or warning terraform reported.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Diagnostic {
    pub(crate) severity: String,
    pub(crate) summary: String,
    #[serde(default)]
    pub(crate) detail: String,
    #[serde(default)]
    pub(crate) address: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.severity, self.summary)?;
        if let Some(a) = &self.address {
            write!(f, " ({a})")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail.trim().replace('\n', " "))?;
        }
        Ok(())
    }
}

/// One event of `terraform apply -json`, as far as progress needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ApplyEvent {
    Started { address: String, action: String },
    Completed { address: String },
    Errored { address: String },
    Diagnostic(Diagnostic),
}

impl PlanSummary {
    /// Whether applying the plan would change anything at all.
    pub(crate) fn has_changes(&self) -> bool {
        !self.addresses.is_empty() || !self.outputs.is_empty()
    }
}

/// Add/change/destroy counts and output changes of a saved plan.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct PlanSummary {
    pub(crate) add: u64,
    pub(crate) change: u64,
    pub(crate) destroy: u64,
    /// Output name -> action (`create`, `update`, `delete`).
    #[serde(skip)]
    pub(crate) outputs: BTreeMap<String, String>,
    /// Addresses of the resource instances the plan creates, updates or destroys.
    #[serde(skip)]
    pub(crate) addresses: Vec<String>,
}

/// Which state a terraform child works on: the working directory, its data directory
/// (`TF_DATA_DIR`, else `.terraform`) and the workspace tfrollback locked. Every child gets
/// `TF_WORKSPACE`, so the directory's selected workspace can never send an apply elsewhere.
#[derive(Debug, Clone)]
pub(crate) struct Pinned {
    pub(crate) dir: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) workspace: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Terraform {
    bin: PathBuf,
    dir: PathBuf,
    data_dir: PathBuf,
    workspace: String,
    /// Becomes true when tfrollback is asked to stop; the running child then gets SIGINT.
    interrupt: tokio::sync::watch::Receiver<bool>,
}

impl Terraform {
    /// `--terraform-bin`, else `TFROLLBACK_TERRAFORM`, else `terraform` on PATH.
    pub(crate) fn locate(
        flag: Option<&Path>,
        env: Option<OsString>,
        pinned: Pinned,
        interrupt: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Terraform, TerraformError> {
        let wanted: PathBuf = flag
            .map(Path::to_path_buf)
            .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("terraform"));
        let bin = if wanted.components().count() > 1 {
            Some(wanted.clone()).filter(|p| p.is_file())
        } else {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(&wanted))
                    .find(|p| is_executable(p))
            })
        };
        let bin = bin.ok_or_else(|| TerraformError::NotFound {
            bin: wanted.display().to_string(),
        })?;
        let bin = unwrap_setup_terraform(bin, std::env::var_os("TERRAFORM_CLI_PATH"));
        Ok(Terraform {
            bin,
            dir: pinned.dir,
            data_dir: pinned.data_dir,
            workspace: pinned.workspace,
            interrupt,
        })
    }

    pub(crate) fn name(&self) -> String {
        self.bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "terraform".into())
    }

    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("TF_WORKSPACE", &self.workspace)
            .env("TF_DATA_DIR", &self.data_dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and calls only
        // async-signal-safe functions (prctl, getppid). The one unsafe block of the crate.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                // If tfrollback dies (even by SIGKILL), terraform is interrupted the way a
                // Ctrl-C would: it stops cleanly and persists what it did, and
                // `tfrollback recover` takes over from the journal.
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGINT)?;
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(std::io::Error::other(
                        "tfrollback exited before terraform started",
                    ));
                }
                Ok(())
            });
        }
        cmd
    }

    fn spawn(&self, args: &[String], out: Stdio, err: Stdio) -> Result<Child, TerraformError> {
        // `-var` values may be secrets: logs show their names only.
        let shown: Vec<String> = args
            .iter()
            .map(
                |a| match a.strip_prefix("-var=").and_then(|kv| kv.split_once('=')) {
                    Some((k, _)) => format!("-var={k}=(redacted)"),
                    None => a.clone(),
                },
            )
            .collect();
        tracing::info!(bin = %self.bin.display(), args = ?shown, "running terraform");
        self.command(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| TerraformError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })
    }

    fn describe(&self, args: &[String]) -> String {
        format!(
            "{} {}",
            self.name(),
            args.first().map(String::as_str).unwrap_or("")
        )
    }

    /// Runs terraform to completion, handing each stdout line to `on_line`, and forwarding an
    /// interrupt (once) as SIGINT. Returns the exit code (130 when interrupted) and stderr.
    ///
    /// terraform writes to files under `.tfrollback/logs/`, never to pipes: if tfrollback dies
    /// (SIGKILL, OOM, a dropped SSH session), terraform, interrupted by the parent-death
    /// signal, must still be able to print "Stopping operation..." and persist its state,
    /// where a dead pipe would kill it with SIGPIPE first. tfrollback reads the file as it
    /// grows; the files go away when the command ends normally.
    async fn run(
        &mut self,
        args: &[String],
        on_line: &mut dyn FnMut(&str),
        on_spawn: &mut dyn FnMut(u32),
    ) -> Result<(i32, String), TerraformError> {
        let (out_path, err_path) = self.log_files(args)?;
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| self.log_error(path, source))
        };
        let (out, err) = (open(&out_path)?, open(&err_path)?);
        let mut reader = tokio::fs::File::open(&out_path)
            .await
            .map_err(|source| self.log_error(&out_path, source))?;
        let mut child = self.spawn(args, Stdio::from(out), Stdio::from(err))?;
        if let Some(pid) = child.id() {
            on_spawn(pid);
        }
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut forwarded = false;
        let mut emit = |pending: &mut Vec<u8>, bytes: &[u8]| {
            pending.extend_from_slice(bytes);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                on_line(String::from_utf8_lossy(&line[..end]).trim_end_matches('\r'));
            }
        };
        let status = loop {
            let n = reader.read(&mut chunk).await.unwrap_or(0);
            if n > 0 {
                emit(&mut pending, &chunk[..n]);
                continue;
            }
            let exited = child.try_wait().map_err(|source| TerraformError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })?;
            if let Some(status) = exited {
                // terraform is gone: what it wrote last is all there is.
                loop {
                    let n = reader.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    emit(&mut pending, &chunk[..n]);
                }
                break status;
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
                changed = self.interrupt.changed(), if !forwarded => {
                    if changed.is_err() {
                        // No sender any more: nothing can interrupt; stop watching.
                        forwarded = true;
                    } else if *self.interrupt.borrow() {
                        forwarded = true;
                        if let Some(pid) = child.id() {
                            interrupt_child(pid);
                        }
                    }
                }
            }
        };
        if !pending.is_empty() {
            let rest = std::mem::take(&mut pending);
            on_line(String::from_utf8_lossy(&rest).trim_end());
        }
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        let _ = std::fs::remove_file(&err_path);
        let interrupted = *self.interrupt.borrow();
        match status.code() {
            Some(0) if interrupted => Ok((130, stderr)),
            Some(code) => Ok((code, stderr)),
            None => Err(TerraformError::Killed {
                command: self.describe(args),
            }),
        }
    }

    /// The stdout and stderr files of one terraform command.
    fn log_files(&self, args: &[String]) -> Result<(PathBuf, PathBuf), TerraformError> {
        let dir = crate::store::journal::local_dir(&self.dir, "logs")
            .map_err(|source| self.log_error(&self.dir.join(".tfrollback/logs"), source))?;
        let stamp = jiff::Timestamp::now().as_millisecond();
        let name = format!(
            "{stamp}-{}-{}",
            std::process::id(),
            args.first().map_or("terraform", String::as_str)
        );
        Ok((
            dir.join(format!("{name}.out")),
            dir.join(format!("{name}.err")),
        ))
    }

    fn log_error(&self, path: &Path, source: std::io::Error) -> TerraformError {
        TerraformError::Log {
            path: path.display().to_string(),
            source,
        }
    }

    /// Runs to completion and returns the exit code, stdout and stderr.
    async fn output(&mut self, args: &[String]) -> Result<(i32, Vec<u8>, String), TerraformError> {
        let mut stdout = Vec::new();
        let (code, stderr) = self
            .run(
                args,
                &mut |line| {
                    stdout.extend_from_slice(line.as_bytes());
                    stdout.push(b'\n');
                },
                &mut |_| {},
            )
            .await?;
        Ok((code, stdout, stderr))
    }

    /// The version of the binary, from `version -json` (OpenTofu prints the same key).
    pub(crate) async fn version(&mut self) -> Result<String, TerraformError> {
        let args = strings(&["version", "-json"]);
        let (code, stdout, stderr) = self.output(&args).await?;
        if code != 0 {
            return Err(self.failed(&args, code, &stdout, &stderr));
        }
        #[derive(Deserialize)]
        struct Version {
            terraform_version: String,
        }
        first_json::<Version>(&stdout)
            .map(|v| v.terraform_version)
            .map_err(|e| TerraformError::BadJson {
                command: self.describe(&args),
                detail: e.to_string(),
            })
    }

    /// The lineage and serial of the state a saved plan was made against: terraform keeps
    /// that state as the `tfstate` entry of the plan file (a zip archive).
    pub(crate) fn planned_against(plan: &Path) -> Result<(String, u64), TerraformError> {
        let unreadable = |detail: String| TerraformError::PlanUnreadable {
            path: plan.display().to_string(),
            detail,
        };
        let file = std::fs::File::open(plan).map_err(|e| unreadable(e.to_string()))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| unreadable(e.to_string()))?;
        let mut entry = archive
            .by_name("tfstate")
            .map_err(|e| unreadable(format!("no prior state in it ({e})")))?;
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut body).map_err(|e| unreadable(e.to_string()))?;
        let summary =
            crate::model::state::summarize(&body).map_err(|e| unreadable(e.to_string()))?;
        Ok((summary.lineage, summary.serial))
    }

    pub(crate) fn is_initialized(&self) -> bool {
        self.data_dir.join("terraform.tfstate").is_file()
    }

    pub(crate) async fn init(&mut self) -> Result<(), TerraformError> {
        let args = strings(&["init", "-input=false", "-no-color"]);
        let (code, stdout, stderr) = self.output(&args).await?;
        if code != 0 {
            return Err(self.failed(&args, code, &stdout, &stderr));
        }
        Ok(())
    }

    /// `plan -lock=false -out=PLAN`, then the saved plan's summary from `show -json`.
    ///
    /// Whether anything changes is read from the saved plan, never from the exit code:
    /// wrappers such as setup-terraform's turn `-detailed-exitcode`'s 2 into 0.
    pub(crate) async fn plan(
        &mut self,
        var_args: &[String],
        out: &Path,
    ) -> Result<PlanSummary, TerraformError> {
        let mut args = strings(&[
            "plan",
            "-input=false",
            "-lock=false",
            "-detailed-exitcode",
            "-json",
        ]);
        args.push(format!("-out={}", out.display()));
        args.extend(var_args.iter().cloned());
        // A saved plan holds the state, secrets in clear. terraform creates it 0666 less the
        // umask but truncates an existing file in place, keeping its mode: so it starts 0600.
        crate::store::fsx::write_atomic(out, b"", 0o600).map_err(|source| {
            TerraformError::PlanFile {
                path: out.display().to_string(),
                source,
            }
        })?;
        let (code, stdout, stderr) = self.output(&args).await?;
        if code != 0 && code != 2 {
            return Err(self.failed(&args, code, &stdout, &stderr));
        }
        self.show_plan(out).await
    }

    /// The summary of a saved plan, from `show -json`. Values are not kept: `show -json` prints
    /// sensitive ones in clear.
    pub(crate) async fn show_plan(&mut self, plan: &Path) -> Result<PlanSummary, TerraformError> {
        let args = vec![
            "show".to_string(),
            "-json".to_string(),
            plan.display().to_string(),
        ];
        let (code, stdout, stderr) = self.output(&args).await?;
        if code != 0 {
            return Err(self.failed(&args, code, &stdout, &stderr));
        }
        parse_plan(&stdout).map_err(|detail| TerraformError::BadJson {
            command: self.describe(&args),
            detail,
        })
    }

    /// `apply -json -lock=false PLAN`, reporting each event as it streams in and the child's
    /// pid as soon as it runs (the journal records it).
    pub(crate) async fn apply(
        &mut self,
        plan: &Path,
        on_event: &mut dyn FnMut(ApplyEvent),
        on_spawn: &mut dyn FnMut(u32),
    ) -> Result<(), TerraformError> {
        let args = vec![
            "apply".to_string(),
            "-input=false".to_string(),
            "-lock=false".to_string(),
            "-auto-approve".to_string(),
            "-json".to_string(),
            plan.display().to_string(),
        ];
        let mut diagnostics = vec![];
        let (code, stderr) = self
            .run(
                &args,
                &mut |line| {
                    if let Some(event) = parse_event(line) {
                        if let ApplyEvent::Diagnostic(d) = &event
                            && d.severity == "error"
                        {
                            diagnostics.push(d.clone());
                        }
                        on_event(event);
                    }
                },
                on_spawn,
            )
            .await?;
        if code == 0 {
            return Ok(());
        }
        if diagnostics.is_empty() {
            diagnostics.push(stderr_diagnostic(&stderr));
        }
        Err(TerraformError::Failed {
            command: self.describe(&args),
            code,
            diagnostics,
        })
    }

    fn failed(&self, args: &[String], code: i32, stdout: &[u8], stderr: &str) -> TerraformError {
        let mut diagnostics: Vec<Diagnostic> = String::from_utf8_lossy(stdout)
            .lines()
            .filter_map(parse_event)
            .filter_map(|e| match e {
                ApplyEvent::Diagnostic(d) if d.severity == "error" => Some(d),
                _ => None,
            })
            .collect();
        if diagnostics.is_empty() {
            diagnostics.push(stderr_diagnostic(stderr));
        }
        TerraformError::Failed {
            command: self.describe(args),
            code,
            diagnostics,
        }
    }
}

/// hashicorp/setup-terraform installs a Node.js wrapper as `terraform` (it rewrites stdout and
/// turns exit code 2 into 0) next to the real binary, `terraform-bin`, in TERRAFORM_CLI_PATH.
/// tfrollback talks to the real one: exit codes, signals and the recorded pid must be
/// terraform's own.
fn unwrap_setup_terraform(bin: PathBuf, cli_path: Option<OsString>) -> PathBuf {
    let Some(dir) = cli_path.map(PathBuf::from) else {
        return bin;
    };
    let real = dir.join("terraform-bin");
    let same_dir = bin.parent().map(|p| p.canonicalize().ok()) == Some(dir.canonicalize().ok());
    if same_dir && real.is_file() {
        tracing::info!(
            "using {} instead of setup-terraform's wrapper",
            real.display()
        );
        return real;
    }
    bin
}

/// Sends SIGINT to a terraform child (and its process group), which makes it stop cleanly.
pub(crate) fn interrupt_child(pid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGINT);
    }
}

fn stderr_diagnostic(stderr: &str) -> Diagnostic {
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = tail.len().saturating_sub(12);
    Diagnostic {
        severity: "error".into(),
        summary: "terraform failed".into(),
        detail: tail[start..].join("\n"),
        address: None,
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(std::string::ToString::to_string).collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The first JSON document in a command's stdout: a wrapper around terraform may print lines
/// of its own before or after it.
fn first_json<T: serde::de::DeserializeOwned>(stdout: &[u8]) -> Result<T, serde_json::Error> {
    let start = stdout.iter().position(|b| *b == b'{').unwrap_or(0);
    let mut docs = serde_json::Deserializer::from_slice(&stdout[start..]).into_iter::<T>();
    match docs.next() {
        Some(doc) => doc,
        None => serde_json::from_slice(b""),
    }
}

/// One line of terraform's `-json` stream.
pub(crate) fn parse_event(line: &str) -> Option<ApplyEvent> {
    #[derive(Deserialize)]
    struct Line {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        hook: Option<Hook>,
        #[serde(default)]
        diagnostic: Option<Diagnostic>,
    }
    #[derive(Deserialize)]
    struct Hook {
        resource: Option<Resource>,
        #[serde(default)]
        action: Option<String>,
    }
    #[derive(Deserialize)]
    struct Resource {
        addr: String,
    }
    let line: Line = serde_json::from_str(line).ok()?;
    let address = || {
        line.hook
            .as_ref()
            .and_then(|h| h.resource.as_ref())
            .map(|r| r.addr.clone())
    };
    match line.kind.as_str() {
        "apply_start" => Some(ApplyEvent::Started {
            address: address()?,
            action: line.hook.as_ref()?.action.clone().unwrap_or_default(),
        }),
        "apply_complete" => Some(ApplyEvent::Completed {
            address: address()?,
        }),
        "apply_errored" => Some(ApplyEvent::Errored {
            address: address()?,
        }),
        "diagnostic" => line.diagnostic.map(ApplyEvent::Diagnostic),
        _ => None,
    }
}

/// Counts a `show -json` plan the way terraform's own summary does (a replacement is one add
/// and one destroy).
pub(crate) fn parse_plan(json: &[u8]) -> Result<PlanSummary, String> {
    #[derive(Deserialize)]
    struct Plan {
        #[serde(default)]
        resource_changes: Vec<ResourceChange>,
        #[serde(default)]
        output_changes: BTreeMap<String, Change>,
    }
    #[derive(Deserialize)]
    struct ResourceChange {
        address: String,
        change: Change,
    }
    #[derive(Deserialize)]
    struct Change {
        actions: Vec<String>,
    }
    let plan: Plan = first_json(json).map_err(|e| e.to_string())?;
    let mut summary = PlanSummary::default();
    for rc in plan.resource_changes {
        let actions: Vec<&str> = rc.change.actions.iter().map(String::as_str).collect();
        let counted = match actions.as_slice() {
            ["create"] => {
                summary.add += 1;
                true
            }
            ["update"] => {
                summary.change += 1;
                true
            }
            ["delete"] => {
                summary.destroy += 1;
                true
            }
            ["delete", "create"] | ["create", "delete"] => {
                summary.add += 1;
                summary.destroy += 1;
                true
            }
            // `no-op` and `read` change nothing; anything else (`forget`, ...) does.
            ["no-op" | "read"] => false,
            _ => true,
        };
        if counted {
            summary.addresses.push(rc.address);
        }
    }
    for (name, change) in plan.output_changes {
        let action = change.actions.join("/");
        if action != "no-op" {
            summary.outputs.insert(name, action);
        }
    }
    Ok(summary)
}

/// `-var-file` and `-var` arguments, in the order terraform should read them.
pub(crate) fn var_args(
    var_files: &[PathBuf],
    vars: &[String],
    rollback_file: Option<&Path>,
) -> Vec<String> {
    let mut args: Vec<String> = var_files
        .iter()
        .map(|f| format!("-var-file={}", f.display()))
        .collect();
    args.extend(vars.iter().map(|v| format!("-var={v}")));
    if let Some(f) = rollback_file {
        args.push(format!("-var-file={}", f.display()));
    }
    args
}

/// Whether version `a` is newer than `b`: the rule lives with the state model.
pub(crate) use crate::model::state::is_newer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_plans_like_terraform() {
        let plan = br#"{"format_version":"1.2","resource_changes":[
            {"address":"terraform_data.router","change":{"actions":["delete","create"],"before":{"input":"s3cret"}}},
            {"address":"terraform_data.blue[0]","change":{"actions":["no-op"]}},
            {"address":"terraform_data.green[2]","change":{"actions":["create"]}},
            {"address":"terraform_data.old","change":{"actions":["delete"]}},
            {"address":"terraform_data.cfg","change":{"actions":["update"]}}],
            "output_changes":{"active_slot":{"actions":["update"],"before":"green","after":"blue"},
                              "same":{"actions":["no-op"]}}}"#;
        let s = parse_plan(plan).unwrap();
        assert!(s.has_changes());
        assert!(
            !parse_plan(
                br#"{"resource_changes":[{"address":"a.b","change":{"actions":["no-op"]}}]}"#
            )
            .unwrap()
            .has_changes()
        );
        assert_eq!((s.add, s.change, s.destroy), (2, 1, 2));
        assert_eq!(s.outputs.len(), 1);
        assert_eq!(s.addresses.len(), 4);
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn reads_apply_events() {
        let start = r#"{"@level":"info","type":"apply_start","hook":{"resource":{"addr":"terraform_data.router"},"action":"create"}}"#;
        assert_eq!(
            parse_event(start),
            Some(ApplyEvent::Started {
                address: "terraform_data.router".into(),
                action: "create".into()
            })
        );
        let diag = r#"{"type":"diagnostic","diagnostic":{"severity":"error","summary":"local-exec provisioner error","detail":"exit status 3","address":"terraform_data.health_check"}}"#;
        assert!(
            matches!(parse_event(diag), Some(ApplyEvent::Diagnostic(d)) if d.detail == "exit status 3")
        );
        assert_eq!(parse_event("not json"), None);
        assert_eq!(parse_event(r#"{"type":"version"}"#), None);
    }

    #[test]
    fn setup_terraforms_wrapper_is_bypassed() {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("terraform");
        std::fs::write(&wrapper, "").unwrap();
        std::fs::write(dir.path().join("terraform-bin"), "").unwrap();
        let cli_path = Some(dir.path().as_os_str().to_owned());
        assert_eq!(
            unwrap_setup_terraform(wrapper.clone(), cli_path),
            dir.path().join("terraform-bin")
        );
        assert_eq!(unwrap_setup_terraform(wrapper.clone(), None), wrapper);
        let elsewhere = Some(std::ffi::OsString::from("/nonexistent"));
        assert_eq!(unwrap_setup_terraform(wrapper.clone(), elsewhere), wrapper);
    }

    #[test]
    fn user_vars_come_before_the_rollback_file() {
        let args = var_args(
            &[PathBuf::from("prod.tfvars")],
            &["region=eu-west-1".into()],
            Some(Path::new("tfrollback.tfvars.json")),
        );
        assert_eq!(
            args,
            [
                "-var-file=prod.tfvars",
                "-var=region=eu-west-1",
                "-var-file=tfrollback.tfvars.json"
            ]
        );
    }
}
