//! Running a binary to completion: [`Run`] holds the exit code and both streams, drained on
//! their own threads; `ok()`, `code()` and `json()` fail the test showing both streams. A
//! command that outlives the lab timeout is killed and fails the test. [`run_logged`] is the
//! same with both streams merged into one log, for scripts read the way a CI log shows them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::server::command_timeout;

/// Variables removed from every child's environment on top of all `AWS_*`, `TF_*` and
/// `TFROLLBACK_*` ones: they change output or behaviour and must come from the test only.
const SCRUBBED_VARS: &[&str] = &[
    "NO_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "GITHUB_STEP_SUMMARY",
    "CHECKPOINT_DISABLE",
];

/// Removes from `cmd`'s environment every variable of this process that could reach AWS,
/// terraform or tfrollback (`AWS_*`, `TF_*`, `TFROLLBACK_*`, [`SCRUBBED_VARS`]), and `also`.
pub fn scrub_env(cmd: &mut Command, also: &[&str]) {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("AWS_")
            || name.starts_with("TF_")
            || name.starts_with("TFROLLBACK_")
            || SCRUBBED_VARS.contains(&name)
            || also.contains(&name)
        {
            cmd.env_remove(name);
        }
    }
}

/// A finished command. `code` is the exit code, or 128 + signal number when it was killed.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    what: String,
}

impl Run {
    /// Runs `cmd` to completion with captured output, killing it after the lab timeout.
    pub(super) fn capture(mut cmd: Command, what: &str) -> Run {
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
    pub fn ok(self) -> Self {
        self.code(0)
    }

    /// Panics (showing both streams) unless the exit code is `expected`.
    #[track_caller]
    pub fn code(self, expected: i32) -> Self {
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
    pub fn json(&self) -> serde_json::Value {
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

/// A finished command whose stdout and stderr went to one pipe, in the order written.
pub struct Logged {
    pub code: i32,
    pub output: String,
}

/// Runs `cmd` to completion with stdout and stderr merged into one log, as a CI log or a
/// terminal shows them; kills it and fails the test after `timeout`.
pub fn run_logged(mut cmd: Command, what: &str, timeout: Duration) -> Logged {
    let (reader, writer) = std::io::pipe().unwrap();
    cmd.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    // `cmd` holds our copies of the write end: the log only ends once they are closed.
    drop(cmd);
    let output = drain(reader);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Logged {
        code: status.code().unwrap_or(128),
        output: output.join().unwrap(),
    }
}

/// The first file named `program` in a directory of `PATH`.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Writes `text` to `path` as a script anyone may run (mode 755).
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Sends Ctrl-C's SIGINT to `child` and waits for it to exit; fails the test with `ignored`
/// when it is still running after `within`.
pub fn interrupt_and_wait(
    child: &mut std::process::Child,
    within: Duration,
    ignored: &str,
) -> std::process::ExitStatus {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).expect("send SIGINT");
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for child") {
            return status;
        }
        assert!(Instant::now() < deadline, "{ignored}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
