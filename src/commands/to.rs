//! `tfrollback to VERSION`: put the infrastructure back the way it was at VERSION, through
//! terraform itself, under one held lock, and never leave the state worse than it was found.
//! Steps: preflight, lock, snapshot, tfvars, plan, confirm, apply, verify, (restore), unlock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::watch;

use crate::cli::ToArgs;
use crate::commands::audit::Audit;
use crate::commands::preflight::{
    Endpoints, Resolved, find_terraform, prepare_terraform, same_lineage, target_still,
    user_var_files,
};
use crate::commands::prompt::{approve, require_answerable};
use crate::commands::{Context, Outcome};
use crate::error::{Error, Exit, Refusal};
use crate::model::check::{Redactor, Verdict};
use crate::model::diff::Orphan;
use crate::model::mapping::{self, Mapping, MappingOptions, Skipped, Source};
use crate::model::redact;
use crate::model::selector::{ObjectVersion, VersionId, VersionRef};
use crate::model::state::{Output, output_summaries};
use crate::operation::report::{PlanCounts, Report, Status, VariableChange};
use crate::operation::signals::interrupts;
use crate::operation::{Operation, Verb};
use crate::probe::{Probe, Prober, prepare_all};
use crate::store::fsx::{self, absolute};
use crate::store::journal::{Journal, Step, StepStatus};
use crate::store::s3::Fetched;
use crate::terraform::{self, ApplyEvent, PlanSummary, Terraform};
use crate::workdir;

/// What preflight established; nothing has been changed yet.
struct Prepared {
    target: ObjectVersion,
    target_serial: u64,
    target_lineage: String,
    target_outputs: BTreeMap<String, Output>,
    current: VersionRef,
    /// The current state as preflight read it: the snapshot checks it again under the lock
    /// (and takes it).
    found: Fetched,
    /// What preflight found of a rollback left unfinished (`Operation::start` refuses it).
    unfinished: Result<Option<Journal>, Error>,
    mapping: Mapping,
    terraform: Terraform,
    terraform_version: String,
    /// `-var-file`/`-var` arguments the user passes, with paths made absolute.
    user_var_args: (Vec<PathBuf>, Vec<String>),
    var_file: PathBuf,
    /// `--check`: the health checks, ready against the target's outputs.
    checks: Option<(Vec<Probe>, Redactor)>,
}

/// What `finish` does besides closing the operation.
struct End<'o> {
    checks: Option<(Vec<Probe>, Redactor)>,
    embedded: bool,
    out: &'o mut Option<Report>,
}

pub(crate) async fn run(ctx: &Context, args: &ToArgs) -> Result<Outcome, Error> {
    run_with(ctx, args, None).await.0
}

/// A rollback `guard` started: its interrupt flag (one Ctrl-C for the whole run) and the
/// check that set it off, for the history record.
pub(crate) struct Automatic {
    pub(crate) interrupt: watch::Receiver<bool>,
    pub(crate) trigger: serde_json::Value,
    /// The deploy guard watched: if another version is current by the time the rollback
    /// reads the state, it refuses (someone else's deploy is not guard's to roll back).
    pub(crate) expect_current: Option<VersionId>,
}

/// `to` as `guard` runs it: the same guarantees, its report handed back rather than
/// published (guard's own report holds it), printed only as text.
pub(crate) async fn automatic(
    ctx: &Context,
    args: &ToArgs,
    auto: Automatic,
) -> (Result<Outcome, Error>, Option<Report>) {
    run_with(ctx, args, Some(auto)).await
}

async fn run_with(
    ctx: &Context,
    args: &ToArgs,
    auto: Option<Automatic>,
) -> (Result<Outcome, Error>, Option<Report>) {
    // `@-2h` is recorded as the moment it meant, never to be read against another clock.
    let command = Verb::To.command(&args.version.pinned(ctx.now));
    ctx.store.look_up_caller();
    let embedded = auto.is_some();
    let (mut audit, interrupt, expect_current) = match auto {
        Some(auto) => {
            let mut audit = Audit::new(command.clone());
            audit.trigger = Some(auto.trigger);
            (audit, auto.interrupt, auto.expect_current)
        }
        None => (
            Audit::reported(command.clone(), args.run.report.clone()),
            interrupts(),
            None,
        ),
    };
    let mut report = None;
    let how = How {
        interrupt,
        embedded,
        expect_current,
    };
    let result = roll_back(ctx, args, command, &mut audit, how, &mut report).await;
    audit.conclude(ctx, &result).await;
    (result, report)
}

/// How this run of `to` was started.
struct How {
    interrupt: watch::Receiver<bool>,
    /// Run by `guard`: the report is handed back instead of published.
    embedded: bool,
    expect_current: Option<VersionId>,
}

async fn roll_back(
    ctx: &Context,
    args: &ToArgs,
    command: String,
    audit: &mut Audit,
    how: How,
    out: &mut Option<Report>,
) -> Result<Outcome, Error> {
    let How {
        interrupt,
        embedded,
        expect_current,
    } = how;
    let started = Instant::now();
    let mut prepared = match preflight(ctx, args, interrupt.clone(), expect_current).await? {
        Ok(prepared) => prepared,
        Err(reason) => return Ok(Outcome::NothingToDo { reason }),
    };
    audit.from = Some(prepared.current.clone());
    let target = VersionRef {
        version_id: prepared.target.version_id.clone(),
        serial: prepared.target_serial,
    };
    let mut op =
        Operation::new(ctx.engine(), command, target, started).interruptible(interrupt.clone());
    audit.operation(&op.journal);
    ctx.printer.note(&format!(
        "preflight  target {} (serial {}), current {}",
        prepared.target.version_id, prepared.target_serial, prepared.current.version_id
    ));
    let unfinished = std::mem::replace(&mut prepared.unfinished, Ok(None));
    op.start(
        prepared.terraform_version.clone(),
        args.run.lock_timeout,
        args.run.no_lock,
        unfinished?,
    )
    .await?;
    ctx.printer.note("lock       held");

    let checks = prepared.checks.take();
    let mut run = Rollback {
        ctx,
        args,
        prepared,
        interrupt,
    };
    match run.locked(&mut op).await {
        Ok(outcome) => {
            let end = End {
                checks,
                embedded,
                out,
            };
            finish(ctx, args, op, outcome, audit, end).await
        }
        // Nothing was applied: release the lock and report the error.
        Err(e) => Err(op.abort(e).await),
    }
}

/// How the locked part ended.
struct Ended {
    status: Status,
    plan: Option<PlanCounts>,
    new_version_id: Option<VersionId>,
    verified: bool,
    orphans: Vec<Orphan>,
    error: Option<String>,
    variables: Vec<VariableChange>,
    unset: Vec<Skipped>,
    var_file: Option<String>,
    /// Once the state may have changed, a journal write that failed: the operation then ends
    /// with its lock held, for `recover`, whatever else happened.
    journal_failure: Option<String>,
}

struct Rollback<'a> {
    ctx: &'a Context,
    args: &'a ToArgs,
    prepared: Prepared,
    interrupt: watch::Receiver<bool>,
}

impl Rollback<'_> {
    fn check_interrupt(&self) -> Result<(), Error> {
        if *self.interrupt.borrow() {
            return Err(Refusal::Interrupted.into());
        }
        Ok(())
    }

    /// Everything under the lock. An `Err` means nothing was applied; once the apply has
    /// begun, every ending is an `Ended`.
    async fn locked(&mut self, op: &mut Operation<'_>) -> Result<Ended, Error> {
        self.snapshot(op).await?;
        self.check_interrupt()?;
        let (var_file, var_args, variables) = self.tfvars(op).await?;
        let plan_file = op.local_file("plans", ".tfplan")?;
        let summary = self.plan(op, &var_args, &plan_file).await?;
        let base = Ended {
            status: Status::AlreadyAtTarget,
            plan: Some(PlanCounts::default()),
            new_version_id: None,
            verified: false,
            orphans: vec![],
            error: None,
            variables,
            unset: self.prepared.mapping.unset(),
            var_file: Some(var_file.display().to_string()),
            journal_failure: None,
        };
        if !summary.has_changes() {
            self.ctx.printer.note(&format!(
                "plan       no changes: the infrastructure is already at {}",
                self.prepared.target.version_id
            ));
            for step in [Step::Confirm, Step::Apply, Step::Verify] {
                op.skip(step);
            }
            let _ = std::fs::remove_file(&plan_file);
            return Ok(Ended {
                verified: true,
                ..base
            });
        }
        let counts = PlanCounts {
            add: summary.add,
            change: summary.change,
            destroy: summary.destroy,
        };
        let base = Ended {
            status: Status::Planned,
            plan: Some(counts.clone()),
            ..base
        };
        // Nobody is asked with --auto-approve or --dry-run: the step ends at once.
        if self.args.run.auto_approve || self.args.dry_run {
            op.begin_brief(Step::Confirm).await?;
        } else {
            op.begin(Step::Confirm).await?;
        }
        if self.args.dry_run {
            self.ctx
                .printer
                .note("confirm    --dry-run: stopping before the apply; nothing was changed");
            op.finish_step(StepStatus::Skipped);
            op.skip(Step::Apply);
            op.skip(Step::Verify);
            let _ = std::fs::remove_file(&plan_file);
            return Ok(base);
        }
        self.confirm(&counts).await?;
        self.check_interrupt()?;

        // From here on the state may change: failures restore the snapshot.
        op.begin(Step::Apply).await?;
        let applied = self
            .apply(op, &plan_file, summary.addresses.len() as u64)
            .await;
        let _ = std::fs::remove_file(&plan_file);
        if let Err(e) = applied {
            // The apply failed part way: the snapshot goes back.
            op.finish_step(StepStatus::Failed);
            let failure = e.render();
            self.ctx.printer.note(&failure);
            return Ok(restore(op, failure, base).await);
        }
        let base = Ended {
            journal_failure: record(op, Step::Verify).await,
            ..base
        };
        Ok(match self.verify(op, &var_args).await {
            Ok(new_version) => Ended {
                status: Status::RolledBack,
                new_version_id: new_version,
                verified: true,
                ..base
            },
            // The apply succeeded: the state terraform wrote is its accurate record of what
            // exists now. Writing the snapshot back would drop the objects it created.
            Err(e) => {
                op.finish_step(StepStatus::Failed);
                let failure = e.render();
                self.ctx.printer.note(&failure);
                Ended {
                    status: Status::RolledBackUnverified,
                    new_version_id: op.current().await.ok().and_then(|now| now.version_id),
                    error: Some(failure),
                    ..base
                }
            }
        })
    }

    async fn snapshot(&mut self, op: &mut Operation<'_>) -> Result<(), Error> {
        let found = std::mem::take(&mut self.prepared.found);
        let (snap, _) = op.snapshot(found).await?;
        if snap.version_id != self.prepared.current.version_id {
            self.ctx
                .printer
                .note("note: the state changed while the lock was being taken; checking again");
            target_still(
                self.ctx,
                &self.args.version,
                &self.prepared.target.version_id,
            )
            .await?;
            same_lineage(
                &self.prepared.target_lineage,
                &snap.lineage,
                self.args.allow_lineage_change,
            )?;
        }
        self.ctx.printer.note(&format!(
            "snapshot   {} (serial {})",
            snap.file, snap.serial
        ));
        Ok(())
    }

    /// Writes the rollback var file; returns it, terraform's var arguments, and the changes.
    async fn tfvars(
        &self,
        op: &mut Operation<'_>,
    ) -> Result<(PathBuf, Vec<String>, Vec<VariableChange>), Error> {
        op.begin_brief(Step::Tfvars).await?;
        let mapping = &self.prepared.mapping;
        let var_file = write_var_file(&self.prepared.var_file, mapping)?;
        let variables = variable_changes(mapping);
        for v in &variables {
            self.ctx
                .printer
                .note(&format!("tfvars     {} = {}", v.name, v.rollback));
        }
        let var_args = terraform::var_args(
            &self.prepared.user_var_args.0,
            &self.prepared.user_var_args.1,
            Some(&var_file),
        );
        Ok((var_file, var_args, variables))
    }

    async fn plan(
        &mut self,
        op: &mut Operation<'_>,
        var_args: &[String],
        plan_file: &Path,
    ) -> Result<PlanSummary, Error> {
        op.begin(Step::Plan).await?;
        let summary = self.prepared.terraform.plan(var_args, plan_file).await?;
        self.check_interrupt()?;
        // The plan must be of the state the lock protects, as the snapshot saw it: one made
        // against a state someone wrote since (ignoring the lock) is never applied.
        let (lineage, serial) = Terraform::planned_against(plan_file)?;
        if let Some(snap) = &op.journal.snapshot
            && (lineage != snap.lineage || serial != snap.serial)
        {
            return Err(Refusal::PlanOfAnotherState {
                snapshot_serial: snap.serial,
                planned_serial: serial,
                planned_lineage: lineage,
            }
            .into());
        }
        if summary.has_changes() {
            self.ctx.printer.note(&format!(
                "plan       {} to add, {} to change, {} to destroy{}",
                summary.add,
                summary.change,
                summary.destroy,
                if summary.outputs.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; outputs changing: {}",
                        summary
                            .outputs
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
            for address in &summary.addresses {
                self.ctx.printer.note(&format!("             {address}"));
            }
        }
        Ok(summary)
    }

    /// `--max-destroy` guards an auto-approved apply; otherwise the person at the terminal
    /// says yes or the rollback is cancelled.
    async fn confirm(&self, counts: &PlanCounts) -> Result<(), Error> {
        if self.args.run.auto_approve && counts.destroy > self.args.values.max_destroy {
            return Err(Refusal::TooManyDestroys {
                destroy: counts.destroy,
                max: self.args.values.max_destroy,
                selector: self.args.version.to_string(),
            }
            .into());
        }
        approve(
            self.args.run.auto_approve,
            &format!(
                "Apply this rollback to {}? [y/N] ",
                self.prepared.target.version_id
            ),
            "rollback",
            &self.interrupt,
        )
        .await
    }

    async fn apply(
        &mut self,
        op: &mut Operation<'_>,
        plan_file: &Path,
        total: u64,
    ) -> Result<(), Error> {
        let printer = self.ctx.printer.clone();
        let bar = printer.bar("apply");
        bar.set_length(total);
        let journals = op.store().journals.clone();
        let journal = op.journal.clone();
        let mut pid_write = None;
        let result = self
            .prepared
            .terraform
            .apply(
                plan_file,
                &mut |event| match event {
                    ApplyEvent::Started { address, action } => {
                        bar.suspend(|| printer.note(&format!("apply      {address}: {action}")));
                    }
                    ApplyEvent::Completed { address } => {
                        bar.inc(1);
                        bar.suspend(|| printer.note(&format!("apply      {address}: done")));
                    }
                    ApplyEvent::Errored { address } => {
                        bar.suspend(|| printer.note(&format!("apply      {address}: failed")));
                    }
                    ApplyEvent::Diagnostic(d) if d.severity == "error" => {
                        bar.suspend(|| printer.note(&format!("terraform  {d}")));
                    }
                    ApplyEvent::Diagnostic(d) => tracing::info!("terraform {d}"),
                },
                &mut |pid| {
                    let mut j = journal.clone();
                    j.terraform_pid = Some(pid);
                    let store = journals.clone();
                    pid_write = Some(tokio::spawn(async move { store.write(&j).await }));
                },
            )
            .await;
        bar.finish_and_clear();
        if let Some(write) = pid_write {
            let _ = write.await;
        }
        op.journal.terraform_pid = None;
        result.map_err(Error::from)
    }

    /// The mapped outputs now hold VERSION's values, and a follow-up plan shows no changes.
    /// The state terraform wrote is read while the follow-up plan runs.
    async fn verify(
        &mut self,
        op: &mut Operation<'_>,
        var_args: &[String],
    ) -> Result<Option<VersionId>, Error> {
        let verify_plan = op.local_file("plans", "-verify.tfplan")?;
        let (now, follow_up) = tokio::join!(
            op.current(),
            self.prepared.terraform.plan(var_args, &verify_plan)
        );
        let _ = std::fs::remove_file(&verify_plan);
        let now = now?;
        let text = String::from_utf8(now.body).unwrap_or_default();
        let version = now.version_id.clone().unwrap_or_else(VersionId::null);
        let state = self.ctx.parse(&version, &text)?;
        for v in &self.prepared.mapping.variables {
            let Source::Output(path) = &v.source else {
                continue;
            };
            let wanted = mapping::lookup(&self.prepared.target_outputs, path).map(|(v, _)| v);
            let got = mapping::lookup(&state.outputs, path).map(|(v, _)| v);
            if wanted != got {
                return Err(Refusal::OutputMismatch {
                    path: path.clone(),
                    version: self.prepared.target.version_id.clone(),
                    variable: v.name.clone(),
                }
                .into());
            }
        }
        if follow_up?.has_changes() {
            return Err(Refusal::NotConverged.into());
        }
        self.ctx
            .printer
            .note("verify     outputs match the target; follow-up plan: no changes");
        Ok(Some(version))
    }
}

/// Records `step` once the state may have changed. A journal that cannot be written no longer
/// stops anything there (stopping would skip the verify or the restore): the failure is
/// returned, and the operation ends with its lock held for `recover`.
async fn record(op: &mut Operation<'_>, step: Step) -> Option<String> {
    let failed = op.begin(step).await.err()?.render();
    op.printer().note(&format!(
        "warning: the journal could not record the {step} step ({failed}); going on, and keeping the lock for `tfrollback recover`"
    ));
    Some(failed)
}

/// After a failed apply: the snapshot goes back as the current state.
async fn restore(op: &mut Operation<'_>, failure: String, base: Ended) -> Ended {
    let base = Ended {
        journal_failure: record(op, Step::Restore).await,
        ..base
    };
    op.printer().note("restore    putting the snapshot back");
    match op.restore_snapshot().await {
        Ok((new_version, orphans)) => Ended {
            status: Status::Restored,
            new_version_id: new_version,
            orphans,
            error: Some(failure),
            ..base
        },
        Err(e) => Ended {
            status: Status::RestoreFailed,
            error: Some(format!("{failure}\n{}", e.render())),
            ..base
        },
    }
}

async fn finish(
    ctx: &Context,
    args: &ToArgs,
    mut op: Operation<'_>,
    ended: Ended,
    audit: &mut Audit,
    end: End<'_>,
) -> Result<Outcome, Error> {
    let changed = matches!(
        ended.status,
        Status::RolledBack
            | Status::RolledBackUnverified
            | Status::Restored
            | Status::RestoreFailed
    );
    let mut ended = ended;
    let mut next = vec![];
    // Past the apply, the end must not fail silently: a journal or lock that cannot be closed
    // leaves the operation to `recover`, and the report says what was done.
    let mut held = match (&ended.journal_failure, ended.status) {
        (_, Status::RestoreFailed) => Some(String::new()),
        (Some(failure), _) => Some(failure.clone()),
        (None, _) => None,
    };
    if held.is_none() {
        let closed = async {
            op.begin_brief(Step::Unlock).await?;
            op.close().await
        }
        .await;
        match closed {
            Ok(()) => {}
            Err(e) if changed => held = Some(e.render()),
            Err(e) => return Err(e),
        }
    }
    let exit = if let Some(failure) = held {
        // The lock stays held and the journal unfinished: `recover` continues from here.
        op.finish_step(StepStatus::Failed);
        op.save().await.ok();
        if ended.status != Status::RestoreFailed {
            let done = ended.status;
            ended.error = Some(match ended.error.take() {
                Some(error) => format!("{error}\n{failure}"),
                None => failure,
            });
            next.push(format!(
                "What was done: {}. The operation could not be closed cleanly, so it was left for `tfrollback recover`.",
                done.headline()
            ));
            ended.status = Status::Unfinished;
        }
        next.push(format!(
            "The state lock is still held by this operation ({}) so nobody applies over a state in doubt.",
            op.journal.operation_id
        ));
        if let Some(s) = &op.journal.snapshot {
            next.push(format!(
                "The snapshot is saved at {} and is S3 version {} of {}.",
                s.file,
                s.version_id,
                ctx.location()
            ));
        }
        next.push(
            "Run `tfrollback recover` to finish it: it keeps the state of an apply that finished and puts the snapshot back otherwise, then releases the lock."
                .into(),
        );
        Exit::RestoreFailed
    } else {
        if ended.status == Status::RolledBack {
            next.push(format!(
                "Note: the next normal `terraform apply` undoes this rollback unless the values in {} go into your configuration or pipeline variables.",
                ended.var_file.clone().unwrap_or_default()
            ));
        }
        if ended.status == Status::RolledBackUnverified {
            next.push(format!(
                "The apply succeeded but verification did not: the state is terraform's record of what it did. Run `terraform plan -var-file={}` to see what does not converge.",
                ended.var_file.clone().unwrap_or_default()
            ));
        }
        if ended.status == Status::Restored {
            next.push("The infrastructure may be partly changed; run `terraform plan` to see where it stands.".into());
        }
        match ended.status {
            Status::Restored => Exit::Restored,
            Status::RolledBackUnverified => Exit::Unverified,
            _ => Exit::Ok,
        }
    };
    // `--check`: the health checks, once the rollback is verified and the lock released.
    let mut checks = vec![];
    let mut exit = exit;
    if let (Some((probes, redactor)), Status::RolledBack) = (end.checks, ended.status) {
        let prober = Prober::new(ctx.store.alarms(), args.check.check_timeout, redactor);
        checks = prober.round(&probes, false).await;
        let failing: Vec<&str> = checks
            .iter()
            .filter(|c| c.result == Verdict::Failing)
            .map(|c| c.check.as_str())
            .collect();
        if !failing.is_empty() {
            next.push(format!(
                "The rollback is verified, but its health checks still fail ({}): the deploy may not have been the cause.",
                failing.join(", ")
            ));
            exit = Exit::Unverified;
        }
    }
    let mut report = Report::new(ended.status, &op.journal, ctx.location());
    report.new_version_id = ended.new_version_id;
    report.var_file = ended.var_file;
    report.plan = ended.plan;
    report.verified = ended.verified;
    report.orphans = ended.orphans;
    report.variables = ended.variables;
    report.unset_variables = ended.unset;
    report.error = ended.error;
    report.checks = checks;
    report.next = next;
    if !end.embedded
        && let Err(e) = report.publish(
            args.run.report.as_deref(),
            ctx.settings.step_summary.as_deref(),
        )
    {
        ctx.printer
            .note(&format!("warning: could not write the report: {e}"));
    }
    audit.report(&report);
    if !(end.embedded && ctx.printer.json) {
        ctx.emit(&report, Report::text)?;
    }
    *end.out = Some(report);
    Ok(Outcome::Done(exit))
}

/// Resolves, reads and checks everything before the lock; `Ok(Err(reason))` when there is
/// nothing to roll back.
async fn preflight(
    ctx: &Context,
    args: &ToArgs,
    interrupt: watch::Receiver<bool>,
    expect_current: Option<VersionId>,
) -> Result<Result<Prepared, String>, Error> {
    require_answerable(ctx.terminal, args.run.auto_approve, args.dry_run)?;
    let (ends, found_terraform) = tokio::join!(
        Endpoints::read(ctx, &args.version, "roll back"),
        find_terraform(ctx, args.run.terraform_bin.as_deref(), interrupt)
    );
    let mut ends = match ends? {
        Resolved::Endpoints(ends) => ends,
        Resolved::AlreadyThere { reason } => return Ok(Err(reason)),
    };
    if let Some(watched) = expect_current
        && ends.current.version_id != watched
    {
        return Err(Refusal::DeployReplaced {
            watched,
            now: ends.current.version_id.clone(),
        }
        .into());
    }
    let (current_state, target_state) = ends.states(ctx, args.allow_lineage_change)?;
    let target = ends.target.clone();

    let config = workdir::configuration(&ctx.settings.workdir)?;
    let options = MappingOptions {
        maps: args.mapping.maps.clone(),
        slot_var: args.mapping.slot_var.clone(),
        include_sensitive: args.mapping.include_sensitive,
    };
    let mut mapping = mapping::map_variables(
        &config,
        &options,
        &current_state.outputs,
        &target_state.outputs,
        target.version_id.as_str(),
    )?;
    if args.values.only_slot {
        if mapping.slot().is_none() {
            return Err(Refusal::NoSlotValue {
                version: target.version_id.clone(),
                variable: mapping.slot_variable.clone(),
            }
            .into());
        }
        mapping.only_slot();
    }
    if mapping.variables.is_empty() {
        return Err(Refusal::NothingMapped {
            version: target.version_id.clone(),
        }
        .into());
    }

    let (terraform, terraform_version) = prepare_terraform(
        ctx,
        found_terraform?,
        &target.version_id,
        &target_state.terraform_version,
    )
    .await?;

    let checks = if args.check.checks.is_empty() {
        None
    } else {
        let outputs = output_summaries(&target_state.outputs);
        let probes = prepare_all(&args.check.checks, &outputs)?;
        Some((
            probes,
            Redactor::of_both(&current_state.outputs, &target_state.outputs),
        ))
    };

    let absolute_files = user_var_files(&args.values.var_files)?;
    let var_file = absolute(
        &args
            .values
            .var_file_out
            .clone()
            .unwrap_or_else(|| ctx.settings.workdir.join("tfrollback.tfvars.json")),
    );
    let target_serial = target_state.serial;
    let target_lineage = target_state.lineage.clone();
    let target_outputs = target_state.outputs.clone();
    let current = VersionRef {
        version_id: ends.current.version_id.clone(),
        serial: current_state.serial,
    };
    Ok(Ok(Prepared {
        target_serial,
        target_lineage,
        target_outputs,
        current,
        found: ends.found(),
        unfinished: std::mem::replace(&mut ends.unfinished, Ok(None)),
        target,
        mapping,
        terraform,
        terraform_version,
        user_var_args: (absolute_files, args.values.vars.clone()),
        var_file,
        checks,
    }))
}

/// The rollback variables as a JSON var file, 0600: the values a rollback sets are nobody
/// else's business, sensitive or not.
fn write_var_file(path: &Path, mapping: &Mapping) -> Result<PathBuf, Error> {
    let mut body = serde_json::to_vec_pretty(&mapping.tfvars()).unwrap_or_default();
    body.push(b'\n');
    fsx::write_atomic(path, &body, 0o600).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(path.to_path_buf())
}

fn variable_changes(mapping: &Mapping) -> Vec<VariableChange> {
    mapping
        .variables
        .iter()
        .map(|v| VariableChange {
            name: v.name.clone(),
            current: v.current.as_ref().map(|c| redact(c, v.sensitive)),
            rollback: redact(&v.rollback, v.sensitive),
        })
        .collect()
}
