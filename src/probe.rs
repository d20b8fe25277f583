//! Runs health checks (`--check` of `guard` and `to`): a command through `sh -c`, an HTTP
//! GET, a CloudWatch alarm's state. Each run has its own timeout and ends in a `Verdict`
//! with a short, redacted detail; a run never fails as such.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::model::check::{self, CheckError, CheckSpec, Observation, Redactor, Verdict};
use crate::model::state::OutputSummary;
use crate::store::alarms::{AlarmError, Alarms};

/// One check, made ready against one version's outputs.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) spec: CheckSpec,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Command {
        line: String,
        env: Vec<(String, String)>,
    },
    Http {
        url: String,
    },
    Alarm {
        name: String,
    },
}

/// Runs probes: the HTTP client and CloudWatch handle are built once.
pub(crate) struct Prober {
    http: reqwest::Client,
    alarms: Alarms,
    timeout: Duration,
    redactor: Redactor,
}

impl Probe {
    /// Makes `spec` ready against the outputs of the version that is current: URL templates
    /// are filled in, the command's environment is set.
    pub(crate) fn prepare(
        spec: &CheckSpec,
        outputs: &BTreeMap<String, OutputSummary>,
    ) -> Result<Probe, CheckError> {
        let target = match spec {
            CheckSpec::Command(line) => Target::Command {
                line: line.clone(),
                env: check::output_env(outputs),
            },
            CheckSpec::Http(template) => Target::Http {
                url: check::render_url(template, outputs)?,
            },
            CheckSpec::Alarm(name) => Target::Alarm { name: name.clone() },
        };
        Ok(Probe {
            spec: spec.clone(),
            target,
        })
    }
}

/// Every check of `specs`, ready against `outputs`.
pub(crate) fn prepare_all(
    specs: &[CheckSpec],
    outputs: &BTreeMap<String, OutputSummary>,
) -> Result<Vec<Probe>, CheckError> {
    specs.iter().map(|c| Probe::prepare(c, outputs)).collect()
}

impl Prober {
    pub(crate) fn new(alarms: Alarms, timeout: Duration, redactor: Redactor) -> Prober {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("tfrollback/", env!("CARGO_PKG_VERSION"), " guard"))
            .build()
            .unwrap_or_default();
        Prober {
            http,
            alarms,
            timeout,
            redactor,
        }
    }

    /// Runs every probe at once.
    pub(crate) async fn round(&self, probes: &[Probe], first: bool) -> Vec<Observation> {
        futures_util::future::join_all(probes.iter().map(|p| self.run(p, first))).await
    }

    /// Runs one probe. `first`: the evaluation before watching, where a check that cannot
    /// be evaluated at all says so instead of counting as a failure.
    pub(crate) async fn run(&self, probe: &Probe, first: bool) -> Observation {
        let at = jiff::Timestamp::now();
        let started = Instant::now();
        let (result, detail) = match &probe.target {
            Target::Command { line, env } => self.command(line, env, first).await,
            Target::Http { url } => self.get(url).await,
            Target::Alarm { name } => self.alarm(name, first).await,
        };
        Observation {
            check: probe.spec.to_string(),
            result,
            detail: self.redactor.clean(&detail),
            at: at.to_string(),
            took_ms: started.elapsed().as_millis() as u64,
        }
    }

    async fn command(
        &self,
        line: &str,
        env: &[(String, String)],
        first: bool,
    ) -> (Verdict, String) {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(line)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches tfrollback, not the check,
            // and a timeout kills the whole check, pipelines included.
            .process_group(0)
            .kill_on_drop(true);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return (Verdict::Unevaluable, format!("cannot run sh: {e}")),
        };
        let group = GroupKill(child.id());
        let waited = tokio::time::timeout(self.timeout, child.wait_with_output()).await;
        let output = match waited {
            Err(_) => {
                return (
                    Verdict::Failing,
                    format!("timed out after {}", seconds(self.timeout)),
                );
            }
            Ok(Err(e)) => return (Verdict::Failing, format!("could not wait for it: {e}")),
            Ok(Ok(output)) => output,
        };
        group.disarm();
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !stderr.trim().is_empty() {
            if !text.trim().is_empty() {
                text.push('\n');
            }
            text.push_str(&stderr);
        }
        let said = |what: String| {
            if text.trim().is_empty() {
                what
            } else {
                format!("{what}: {text}")
            }
        };
        match output.status.code() {
            Some(0) => (Verdict::Healthy, text),
            // 126: not executable, 127: not found (sh's own codes).
            Some(code @ (126 | 127)) if first => (
                Verdict::Unevaluable,
                said(format!("exit {code} (the command cannot be run)")),
            ),
            Some(code) => (Verdict::Failing, said(format!("exit {code}"))),
            None => (Verdict::Failing, said("killed by a signal".into())),
        }
    }

    async fn get(&self, url: &str) -> (Verdict, String) {
        let answer = match self.http.get(url).send().await {
            Ok(answer) => answer,
            Err(e) if e.is_builder() => {
                return (Verdict::Unevaluable, format!("not a usable URL: {e}"));
            }
            Err(e) if e.is_timeout() => {
                return (
                    Verdict::Failing,
                    format!("no answer within {}", seconds(self.timeout)),
                );
            }
            Err(e) => return (Verdict::Failing, format!("no answer: {}", chain(&e))),
        };
        let status = answer.status();
        if status.is_success() {
            return (Verdict::Healthy, format!("HTTP {}", status.as_u16()));
        }
        let body = answer.text().await.unwrap_or_default();
        let first_line: String = body
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        (
            Verdict::Failing,
            format!("HTTP {}: {first_line}", status.as_u16()),
        )
    }

    async fn alarm(&self, name: &str, first: bool) -> (Verdict, String) {
        let state = tokio::time::timeout(self.timeout, self.alarms.state(name)).await;
        match state {
            Err(_) => (
                Verdict::Inconclusive,
                format!("CloudWatch did not answer within {}", seconds(self.timeout)),
            ),
            Ok(Err(e @ (AlarmError::NotFound { .. } | AlarmError::Service { .. }))) if first => {
                (Verdict::Unevaluable, e.to_string())
            }
            Ok(Err(e)) => (Verdict::Inconclusive, e.to_string()),
            Ok(Ok(state)) => {
                let verdict = match state.value.as_str() {
                    "OK" => Verdict::Healthy,
                    "ALARM" => Verdict::Failing,
                    _ => Verdict::Inconclusive,
                };
                let mut detail = state.value.clone();
                if !state.reason.is_empty() {
                    detail = format!("{detail}: {}", state.reason);
                }
                (verdict, detail)
            }
        }
    }
}

/// Kills a check's process group unless it ended by itself: a check that timed out, or a
/// round dropped by Ctrl-C, leaves nothing running.
struct GroupKill(Option<u32>);

impl GroupKill {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}
