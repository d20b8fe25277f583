//! `tfrollback guard`: watch a deploy's health for a window and roll back by itself when a
//! check fails `--failures` times in a row, through `to` and all its guarantees; then watch
//! the rollback the same way. A deploy that stays healthy is marked good; one that was rolled
//! back is frozen, so it is neither guarded nor (with `status --check-frozen`) applied again.
//!
//! Phases: start (every check validated and run once, the target resolved, fail-closed),
//! watch, and either pass (mark) or roll back, freeze and validate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::cli::{CheckArgs, GuardArgs, RunArgs, ToArgs};
use crate::commands::audit::early_report;
use crate::commands::notify::Notifier;
use crate::commands::prompt::require_answerable;
use crate::commands::versions::Freshness;
use crate::commands::{Context, Outcome, to};
use crate::error::{Error, Exit, Refusal};
use crate::model::check::{CheckError, Observation, Redactor, Streaks, Verdict, outputs_digest};
use crate::model::selector::{self, Selector, VersionRef};
use crate::model::state::{OutputSummary, output_summaries};
use crate::operation::report::{Report, Status, checks_table, write_markdown};
use crate::operation::signals::{WINDING_DOWN, interrupts_saying};
use crate::probe::{Probe, Prober, prepare_all};
use crate::store::freezes::Freeze;
use crate::store::marks::Mark;

/// What the first Ctrl-C is answered with while guard only watches.
const WATCHING: &str = "tfrollback: stopping the watch; nothing was changed";

/// How the guarded run ended, for JSON (`result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Ending {
    /// Healthy through the window, and marked.
    Healthy,
    /// No check failed, but some never gave a conclusive result: not marked.
    NotProven,
    /// A check failed, guard rolled back, and the rollback is healthy.
    RolledBack,
    /// Rolled back, but the checks did not pass afterwards.
    RolledBackUnhealthy,
    /// A check failed and the rollback did not complete (the `to` report says how it ended).
    RollbackFailed,
    /// Interrupted while watching: nothing was changed.
    Interrupted,
}

impl Ending {
    fn headline(self) -> &'static str {
        match self {
            Ending::Healthy => "healthy through the window",
            Ending::NotProven => "no check failed, but not every check gave a result",
            Ending::RolledBack => "a check failed: rolled back, and the rollback is healthy",
            Ending::RolledBackUnhealthy => {
                "a check failed: rolled back, but the checks still fail afterwards"
            }
            Ending::RollbackFailed => "a check failed, and the rollback did not complete",
            Ending::Interrupted => "interrupted while watching; nothing was changed",
        }
    }
}

/// One run of one check, with the phase it belonged to.
#[derive(Debug, Clone, Serialize)]
struct Run {
    phase: &'static str,
    #[serde(flatten)]
    observation: Observation,
}

/// The check that set off the rollback.
#[derive(Debug, Clone, Serialize)]
struct Trigger {
    check: String,
    failures_in_a_row: u32,
    detail: String,
    at: String,
}

/// The one document of `guard --json`.
#[derive(Debug, Serialize)]
struct GuardView {
    command: &'static str,
    location: String,
    result: Ending,
    exit_code: u8,
    deploy: VersionRef,
    target: VersionRef,
    checks: Vec<String>,
    window_seconds: u64,
    interval_seconds: u64,
    failures: u32,
    started_at: String,
    finished_at: String,
    /// The label the deploy was marked with, when it was.
    marked: Option<String>,
    trigger: Option<Trigger>,
    frozen: bool,
    runs: Vec<Run>,
    rollback: Option<Report>,
    notes: Vec<String>,
    notifications_failed: u32,
}

pub(crate) async fn run(ctx: &Context, args: &GuardArgs) -> Result<Outcome, Error> {
    let answer = Arc::new(Mutex::new(WATCHING));
    let interrupt = interrupts_saying(answer.clone());
    let started_at = jiff::Timestamp::now();
    let start = match start(ctx, args).await {
        Ok(start) => start,
        Err(e) => {
            // CI reads the step summary: a guard that did not start says why there too.
            let md = early_report(
                "guard",
                &ctx.location(),
                e.exit() as u8,
                "guard did not start, nothing was changed",
                "Error",
                &e.to_string(),
                e.hint(),
            );
            if let Err(io) = write_markdown(
                &md,
                args.run.report.as_deref(),
                ctx.settings.step_summary.as_deref(),
            ) {
                ctx.printer
                    .note(&format!("warning: could not write the report: {io}"));
            }
            return Err(e);
        }
    };
    let notifier = Notifier::new(args.notify.clone(), ctx.printer.clone(), ctx.location());
    let mut guard = Guard {
        ctx,
        args,
        interrupt,
        answer,
        notifier,
        runs: vec![],
        notes: vec![],
        live: ctx.printer.spinner(),
        deploy: start.deploy,
        deploy_digest: start.deploy_digest,
        target_outputs: start.target_outputs,
        target: start.target,
        probes: start.probes,
        prober: start.prober,
    };
    let first = start.first;
    let outcome = guard.watch_and_act(first).await;
    let (ending, exit, trigger, marked, frozen, rollback) = outcome;
    guard.live.finish_and_clear();
    let failed = guard.notifier.finish().await;
    let view = GuardView {
        command: "guard",
        location: ctx.location(),
        result: ending,
        exit_code: exit as u8,
        deploy: guard.deploy.clone(),
        target: guard.target.clone(),
        checks: args.check.checks.iter().map(ToString::to_string).collect(),
        window_seconds: args.window.as_secs(),
        interval_seconds: args.interval.as_secs(),
        failures: args.failures,
        started_at: started_at.to_string(),
        finished_at: jiff::Timestamp::now().to_string(),
        marked,
        trigger,
        frozen,
        runs: guard.runs,
        rollback,
        notes: guard.notes,
        notifications_failed: failed,
    };
    if let Err(e) = write_markdown(
        &markdown(&view),
        args.run.report.as_deref(),
        ctx.settings.step_summary.as_deref(),
    ) {
        ctx.printer
            .note(&format!("warning: could not write the report: {e}"));
    }
    ctx.emit(&view, text)?;
    Ok(Outcome::Done(exit))
}

/// What the start established: nothing has been changed.
struct Start {
    deploy: VersionRef,
    /// The digest of the deploy's recorded outputs, for its freeze.
    deploy_digest: String,
    /// The target's outputs: what the rolled-back version holds (`to` verifies it), for the
    /// checks that validate the rollback.
    target_outputs: BTreeMap<String, OutputSummary>,
    target: VersionRef,
    probes: Vec<Probe>,
    prober: Prober,
    first: Vec<Observation>,
}

/// Validates everything before watching, fail-closed: the checks (each run once), the
/// deploy (not frozen), the target (resolved, not the deploy), and someone to approve.
async fn start(ctx: &Context, args: &GuardArgs) -> Result<Start, Error> {
    if args.check.checks.is_empty() {
        return Err(CheckError::NoChecks.into());
    }
    require_answerable(ctx.terminal, args.run.auto_approve, false)?;
    let location = ctx.location();
    let listing = ctx.listing(&[&args.target], Freshness::Live).await?;
    let current = selector::current(&listing, &location)?;
    let body = ctx.read_text(&current).await?;
    let state = ctx.parse(&current.version_id, &body)?;
    let outputs = output_summaries(&state.outputs);
    let deploy = VersionRef {
        version_id: current.version_id.clone(),
        serial: state.serial,
    };
    // A rollback left unfinished (a guard killed mid-rollback, say) comes first: `recover`.
    if let Some(other) = ctx.store.unfinished().await? {
        return Err(Refusal::Unfinished {
            operation_id: other.operation_id,
            command: other.command,
            who: other.who,
            started_at: other.started_at,
        }
        .into());
    }
    refuse_frozen(ctx, &deploy, &outputs).await?;

    let target = args.target.resolve(&listing, &location, ctx.now)?;
    if target.version_id == deploy.version_id {
        return Err(Refusal::TargetIsDeploy {
            selector: args.target.to_string(),
            version: deploy.version_id.clone(),
        }
        .into());
    }
    if target.delete_marker {
        return Err(Error::DeleteMarker {
            version: target.version_id.clone(),
        });
    }
    let target_body = ctx.read_text(target).await?;
    let target_state = ctx.parse(&target.version_id, &target_body)?;
    let target_ref = VersionRef {
        version_id: target.version_id.clone(),
        serial: target_state.serial,
    };

    let probes = prepare_all(&args.check.checks, &outputs)?;
    let runner = Prober::new(
        ctx.store.alarms(),
        args.check.check_timeout,
        Redactor::of_both(&state.outputs, &target_state.outputs),
    );
    ctx.printer.note(&format!(
        "guard      deploy {} (serial {}), rollback target {} (serial {})",
        deploy.version_id, deploy.serial, target_ref.version_id, target_ref.serial
    ));
    let first = runner.round(&probes, true).await;
    if let Some(bad) = first.iter().find(|o| o.result == Verdict::Unevaluable) {
        for o in &first {
            ctx.printer.note(&format!(
                "check      {} {}: {}",
                o.result.word(),
                o.check,
                o.detail
            ));
        }
        return Err(Refusal::CannotEvaluate {
            check: bad.check.clone(),
            detail: bad.detail.clone(),
        }
        .into());
    }
    Ok(Start {
        deploy_digest: outputs_digest(&outputs),
        target_outputs: output_summaries(&target_state.outputs),
        deploy,
        target: target_ref,
        probes,
        prober: runner,
        first,
    })
}

/// Refuses a deploy that guard rolled back before (by id, or by the same recorded outputs:
/// a re-apply of that release), and the version a guard rollback wrote.
async fn refuse_frozen(
    ctx: &Context,
    deploy: &VersionRef,
    outputs: &BTreeMap<String, OutputSummary>,
) -> Result<(), Error> {
    let digest = outputs_digest(outputs);
    for f in ctx.store.freezes.list().await? {
        if f.rollback_version_id.as_ref() == Some(&deploy.version_id) {
            return Err(Refusal::AlreadyRolledBack {
                version: deploy.version_id.clone(),
                frozen: f.version.version_id,
                frozen_at: f.frozen_at,
            }
            .into());
        }
        if f.version.version_id == deploy.version_id || f.outputs_digest == digest {
            return Err(Refusal::Frozen {
                version: f.version.version_id,
                frozen_at: f.frozen_at,
                check: f.check,
                detail: f.detail,
            }
            .into());
        }
    }
    Ok(())
}

struct Guard<'a> {
    ctx: &'a Context,
    args: &'a GuardArgs,
    interrupt: watch::Receiver<bool>,
    answer: Arc<Mutex<&'static str>>,
    notifier: Notifier,
    runs: Vec<Run>,
    notes: Vec<String>,
    live: ProgressBar,
    deploy: VersionRef,
    deploy_digest: String,
    target_outputs: BTreeMap<String, OutputSummary>,
    target: VersionRef,
    probes: Vec<Probe>,
    prober: Prober,
}

/// How a phase of watching ended.
enum Watched {
    Passed,
    Tripped(usize),
    Interrupted,
}

type Ended = (
    Ending,
    Exit,
    Option<Trigger>,
    Option<String>,
    bool,
    Option<Report>,
);

impl Guard<'_> {
    async fn watch_and_act(&mut self, first: Vec<Observation>) -> Ended {
        self.notifier.send(
            "guard.started",
            format!(
                "guard started on {}: watching deploy {} for {} with {} check(s); rollback target {}",
                self.ctx.location(),
                self.deploy.version_id,
                human(self.args.window),
                self.probes.len(),
                self.target.version_id
            ),
            json!({"deploy": self.deploy, "target": self.target, "checks": first}),
        );
        let mut streaks = Streaks::new(self.probes.len());
        let deadline = Instant::now() + self.args.window;
        self.record("watch", first, &mut streaks, deadline);
        match self.watch(&mut streaks, deadline).await {
            Watched::Interrupted => {
                self.notifier.send(
                    "guard.interrupted",
                    format!(
                        "guard on {} was interrupted while watching; nothing was changed",
                        self.ctx.location()
                    ),
                    json!({}),
                );
                (
                    Ending::Interrupted,
                    Exit::Interrupted,
                    None,
                    None,
                    false,
                    None,
                )
            }
            Watched::Passed => self.passed(&streaks).await,
            Watched::Tripped(check) => self.roll_back(check, &streaks).await,
        }
    }

    /// Runs rounds until the window passes with no check in a run of failures, or one check
    /// fails `--failures` times in a row.
    async fn watch(&mut self, streaks: &mut Streaks, deadline: Instant) -> Watched {
        loop {
            if let Some(check) = streaks.tripped(self.args.failures) {
                return Watched::Tripped(check);
            }
            if Instant::now() >= deadline && !streaks.any_failing() {
                return Watched::Passed;
            }
            if !self.wait(deadline, "watching").await {
                return Watched::Interrupted;
            }
            let round = self.prober.round(&self.probes, false).await;
            self.record("watch", round, streaks, deadline);
        }
    }

    /// Waits one interval, keeping the live line's countdown; false when interrupted.
    async fn wait(&mut self, deadline: Instant, doing: &str) -> bool {
        let next = Instant::now() + self.args.interval;
        loop {
            if *self.interrupt.borrow() {
                return false;
            }
            let now = Instant::now();
            if now >= next {
                return true;
            }
            self.live.set_prefix(format!(
                "{doing}, {} left",
                human(deadline.saturating_duration_since(now))
            ));
            let step = (next - now).min(Duration::from_secs(1));
            tokio::select! {
                () = tokio::time::sleep(step) => {}
                changed = self.interrupt.changed() => {
                    // No signal listener (it could not be installed): only the clock wakes us.
                    if changed.is_err() {
                        tokio::time::sleep(step).await;
                    }
                }
            }
        }
    }

    /// Takes a round's results into the timeline, the streaks, the live line and the log.
    fn record(
        &mut self,
        phase: &'static str,
        round: Vec<Observation>,
        streaks: &mut Streaks,
        deadline: Instant,
    ) {
        let mut parts = vec![];
        for (i, o) in round.into_iter().enumerate() {
            streaks.record(i, o.result);
            let mut part = format!("{} {}", o.check_short(), o.result.word());
            if o.result == Verdict::Failing {
                let _ = write!(part, " ({}/{})", streaks.failing(i), self.args.failures);
                self.notifier.send(
                    "check.failed",
                    format!(
                        "{}: check `{}` failed ({} of {} in a row): {}",
                        self.ctx.location(),
                        o.check,
                        streaks.failing(i),
                        self.args.failures,
                        o.detail
                    ),
                    json!({"phase": phase, "check": o}),
                );
            }
            parts.push(part);
            self.runs.push(Run {
                phase,
                observation: o,
            });
        }
        let left = human(deadline.saturating_duration_since(Instant::now()));
        let line = parts.join(" · ");
        let doing = if phase == "watch" {
            "watching"
        } else {
            "validating the rollback"
        };
        self.live.set_prefix(format!("{doing}, {left} left"));
        self.live.set_message(line.clone());
        if self.live.is_hidden() {
            self.ctx
                .printer
                .note(&format!("{phase:<10} {line} ({left} left)"));
        }
    }

    /// The window passed healthy: mark the deploy (when every check gave a result and the
    /// deploy is still the current version).
    async fn passed(&mut self, streaks: &Streaks) -> Ended {
        self.live.finish_and_clear();
        let unproven: Vec<String> = streaks
            .never_conclusive()
            .into_iter()
            .map(|i| self.probes[i].spec.to_string())
            .collect();
        if !unproven.is_empty() {
            self.note(format!(
                "not marked `{}`: no conclusive result from {} during the window",
                self.args.label,
                unproven.join(", ")
            ));
            self.notifier.send(
                "guard.passed",
                format!(
                    "{}: no check failed on deploy {}, but {} never gave a result; not marked",
                    self.ctx.location(),
                    self.deploy.version_id,
                    unproven.join(", ")
                ),
                json!({"marked": null}),
            );
            return (Ending::NotProven, Exit::Ok, None, None, false, None);
        }
        let marked = match self.mark().await {
            Ok(()) => Some(self.args.label.clone()),
            Err(why) => {
                self.note(why);
                None
            }
        };
        self.notifier.send(
            "guard.passed",
            format!(
                "{}: deploy {} stayed healthy for {}{}",
                self.ctx.location(),
                self.deploy.version_id,
                human(self.args.window),
                marked
                    .as_ref()
                    .map(|l| format!("; marked `{l}`"))
                    .unwrap_or_default()
            ),
            json!({"marked": marked}),
        );
        (Ending::Healthy, Exit::Ok, None, marked, false, None)
    }

    async fn mark(&self) -> Result<(), String> {
        let ctx = self.ctx;
        let listing = ctx
            .listing(&[], Freshness::Live)
            .await
            .map_err(|e| format!("not marked: {e}"))?;
        let current =
            selector::current(&listing, &ctx.location()).map_err(|e| format!("not marked: {e}"))?;
        if current.version_id != self.deploy.version_id {
            return Err(format!(
                "not marked `{}`: the state changed during the window ({} is current now, not the deploy {})",
                self.args.label, current.version_id, self.deploy.version_id
            ));
        }
        ctx.store
            .marks
            .mark(Mark {
                version_id: self.deploy.version_id.clone(),
                label: self.args.label.clone(),
                note: Some(self.args.note.clone().unwrap_or_else(|| {
                    format!(
                        "guard: healthy for {} ({})",
                        human(self.args.window),
                        self.probes
                            .iter()
                            .map(|p| p.spec.kind())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })),
                who: ctx.settings.identity.user.clone(),
                at: jiff::Timestamp::now().to_string(),
            })
            .await
            .map_err(|e| format!("could not mark the deploy `{}`: {e}", self.args.label))?;
        ctx.printer.note(&format!(
            "marked     {} as `{}`",
            self.deploy.version_id, self.args.label
        ));
        Ok(())
    }

    /// A check tripped: freeze the deploy, roll back through `to`, validate the rollback.
    async fn roll_back(&mut self, check: usize, streaks: &Streaks) -> Ended {
        let ctx = self.ctx;
        let last = self
            .runs
            .iter()
            .rev()
            .find(|r| r.observation.check == self.probes[check].spec.to_string())
            .map(|r| r.observation.clone());
        let trigger = Trigger {
            check: self.probes[check].spec.to_string(),
            failures_in_a_row: streaks.failing(check),
            detail: last.as_ref().map(|o| o.detail.clone()).unwrap_or_default(),
            at: last.map(|o| o.at).unwrap_or_default(),
        };
        if let Ok(mut said) = self.answer.lock() {
            *said = WINDING_DOWN;
        }
        self.live.finish_and_clear();
        ctx.printer.note(&format!(
            "guard      `{}` failed {} times in a row: rolling back to {}",
            trigger.check, trigger.failures_in_a_row, self.target.version_id
        ));
        // Frozen first: whatever happens to the rollback, this deploy is not guarded again.
        let mut freeze = Freeze {
            version: self.deploy.clone(),
            outputs_digest: self.deploy_digest.clone(),
            frozen_at: jiff::Timestamp::now().to_string(),
            who: ctx.settings.identity.user.clone(),
            check: trigger.check.clone(),
            detail: trigger.detail.clone(),
            target: self.target.clone(),
            rollback_version_id: None,
            operation_id: None,
            result: None,
        };
        let mut frozen = self.save_freeze(&freeze).await;
        self.notifier.send(
            "rollback.started",
            format!(
                "{}: check `{}` failed {} times in a row on deploy {}: rolling back to {}. Last output: {}",
                ctx.location(),
                trigger.check,
                trigger.failures_in_a_row,
                self.deploy.version_id,
                self.target.version_id,
                trigger.detail
            ),
            json!({"trigger": trigger, "deploy": self.deploy, "target": self.target}),
        );
        let to_args = self.to_args();
        let automatic = to::Automatic {
            interrupt: self.interrupt.clone(),
            trigger: serde_json::to_value(&trigger).unwrap_or(Value::Null),
            expect_current: Some(self.deploy.version_id.clone()),
        };
        let (result, report) = to::automatic(ctx, &to_args, automatic).await;
        let rolled_back = match &result {
            Ok(Outcome::Done(Exit::Ok)) => true,
            Ok(Outcome::NothingToDo { reason }) => {
                self.note(format!("nothing to roll back: {reason}"));
                true
            }
            Ok(Outcome::Done(_)) => false,
            Err(e) => {
                ctx.printer.note(&e.render());
                self.note(format!("the rollback failed: {e}"));
                false
            }
        };
        if let Some(r) = &report {
            freeze.rollback_version_id.clone_from(&r.new_version_id);
            freeze.operation_id = Some(r.operation_id.clone());
            freeze.result = serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
        } else if let Err(e) = &result {
            freeze.result = Some(e.kind());
        }
        let untouched = matches!(&result, Err(e) if matches!(e.exit(), Exit::Error | Exit::Usage | Exit::Locked));
        if untouched {
            // Refused before it changed anything: the deploy is live as it was, and a guard run
            // after the cause is fixed (a lock released, --max-destroy raised) may try again.
            frozen = match ctx.store.freezes.lift(&freeze.version.version_id).await {
                Ok(_) => false,
                Err(e) => {
                    self.note(format!(
                        "the rollback changed nothing, but the freeze of {} could not be lifted ({e}): `tfrollback unfreeze` lifts it",
                        freeze.version.version_id
                    ));
                    true
                }
            };
        } else {
            frozen = self.save_freeze(&freeze).await || frozen;
        }
        let status = report.as_ref().map(|r| r.status);
        self.notifier.send(
            "rollback.finished",
            format!(
                "{}: rollback to {} {}",
                ctx.location(),
                self.target.version_id,
                status.map_or("failed before it began", Status::headline)
            ),
            json!({"report": report}),
        );
        if !rolled_back {
            let exit = match &result {
                Ok(Outcome::Done(exit)) => *exit,
                Err(e) => e.exit(),
                Ok(Outcome::NothingToDo { .. }) => Exit::Ok,
            };
            return (
                Ending::RollbackFailed,
                exit,
                Some(trigger),
                None,
                frozen,
                report,
            );
        }
        let healthy = self.validate().await;
        let (ending, exit, event, said) = if healthy {
            (
                Ending::RolledBack,
                Exit::GuardRolledBack,
                "rollback.healthy",
                "the rollback is healthy",
            )
        } else {
            (
                Ending::RolledBackUnhealthy,
                Exit::Unverified,
                "rollback.unhealthy",
                "the checks still fail after the rollback: the deploy may not have been the cause",
            )
        };
        self.notifier.send(
            event,
            format!("{}: {said}", ctx.location()),
            json!({"target": self.target}),
        );
        (ending, exit, Some(trigger), None, frozen, report)
    }

    /// The checks again, against the rolled-back version: healthy once every check passed
    /// `--failures` times in a row within the next window.
    async fn validate(&mut self) -> bool {
        self.probes = match prepare_all(&self.args.check.checks, &self.target_outputs) {
            Ok(probes) => probes,
            Err(e) => {
                self.note(format!(
                    "the checks cannot run against the rolled-back version: {e}"
                ));
                return false;
            }
        };
        self.live = self.ctx.printer.spinner();
        let mut streaks = Streaks::new(self.probes.len());
        let deadline = Instant::now() + self.args.window;
        loop {
            let round = self.prober.round(&self.probes, false).await;
            self.record("validate", round, &mut streaks, deadline);
            if streaks.all_passed(self.args.failures) {
                self.live.finish_and_clear();
                return true;
            }
            if Instant::now() >= deadline {
                break;
            }
            if !self.wait(deadline, "validating the rollback").await {
                self.note("interrupted while validating the rollback".into());
                break;
            }
        }
        self.live.finish_and_clear();
        false
    }

    async fn save_freeze(&mut self, freeze: &Freeze) -> bool {
        match self.ctx.store.freezes.freeze(freeze).await {
            Ok(()) => true,
            Err(e) => {
                self.note(format!(
                    "could not record the freeze of {} ({e}); `status --check-frozen` will not see it",
                    freeze.version.version_id
                ));
                false
            }
        }
    }

    /// The `to` this rollback is.
    fn to_args(&self) -> ToArgs {
        let a = self.args;
        ToArgs {
            version: Selector::Id(self.target.version_id.clone()),
            dry_run: false,
            values: a.values.clone(),
            allow_lineage_change: false,
            mapping: a.mapping.clone(),
            check: CheckArgs {
                checks: vec![],
                check_timeout: a.check.check_timeout,
            },
            run: RunArgs {
                report: None,
                ..a.run.clone()
            },
        }
    }

    fn note(&mut self, text: String) {
        self.ctx.printer.note(&format!("warning: {text}"));
        self.notes.push(text);
    }
}

/// A duration as people read it: 9m30s, 45s.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn text(v: &GuardView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: guard {}", v.location, v.result.headline());
    let _ = writeln!(
        out,
        "  deploy       {} (serial {})",
        v.deploy.version_id, v.deploy.serial
    );
    let _ = writeln!(
        out,
        "  target       {} (serial {})",
        v.target.version_id, v.target.serial
    );
    let _ = writeln!(
        out,
        "  watched      {} every {}s, rollback after {} failures in a row; {} check runs",
        human(Duration::from_secs(v.window_seconds)),
        v.interval_seconds,
        v.failures,
        v.runs.len()
    );
    if let Some(t) = &v.trigger {
        let _ = writeln!(
            out,
            "  trigger      `{}` failed {} times in a row: {}",
            t.check, t.failures_in_a_row, t.detail
        );
    }
    if let Some(l) = &v.marked {
        let _ = writeln!(out, "  marked       `{l}`");
    }
    if v.frozen {
        let _ = writeln!(
            out,
            "  frozen       {}: guard will not watch it again; `tfrollback unfreeze {}` lifts it",
            v.deploy.version_id, v.deploy.version_id
        );
    }
    for n in &v.notes {
        let _ = writeln!(out, "  note         {n}");
    }
    out
}

fn markdown(v: &GuardView) -> String {
    let mut md = format!(
        "## tfrollback guard: {}\n\n| | |\n|---|---|\n",
        v.result.headline()
    );
    let _ = writeln!(md, "| State | `{}` |", v.location);
    let _ = writeln!(
        md,
        "| Deploy | `{}` (serial {}) |",
        v.deploy.version_id, v.deploy.serial
    );
    let _ = writeln!(
        md,
        "| Rollback target | `{}` (serial {}) |",
        v.target.version_id, v.target.serial
    );
    let _ = writeln!(
        md,
        "| Window | {} every {} s, {} failures in a row |",
        human(Duration::from_secs(v.window_seconds)),
        v.interval_seconds,
        v.failures
    );
    let _ = writeln!(md, "| Exit code | {} |", v.exit_code);
    if let Some(t) = &v.trigger {
        let _ = writeln!(
            md,
            "| Trigger | `{}` failed {} times in a row |",
            t.check.replace('|', "\\|"),
            t.failures_in_a_row
        );
    }
    if let Some(l) = &v.marked {
        let _ = writeln!(md, "| Marked | `{l}` |");
    }
    if v.frozen {
        let _ = writeln!(
            md,
            "| Frozen | yes: `tfrollback unfreeze {}` lifts it |",
            v.deploy.version_id
        );
    }
    for phase in ["watch", "validate"] {
        let runs: Vec<Observation> = v
            .runs
            .iter()
            .filter(|r| r.phase == phase)
            .map(|r| r.observation.clone())
            .collect();
        if !runs.is_empty() {
            let title = if phase == "watch" {
                "Checks of the deploy"
            } else {
                "Checks of the rollback"
            };
            let _ = writeln!(md, "\n### {title}\n\n{}", checks_table(&runs));
        }
    }
    for n in &v.notes {
        let _ = writeln!(md, "\n> {n}");
    }
    if let Some(r) = &v.rollback {
        let _ = writeln!(
            md,
            "\n{}",
            r.markdown().replacen("## ", "### Rollback: ", 1)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_mins(10)), "10m");
        assert_eq!(human(Duration::from_secs(570)), "9m30s");
        assert_eq!(human(Duration::from_mins(90)), "1h30m");
    }
}
