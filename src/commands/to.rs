//! `tfrollback to VERSION`: put the infrastructure back the way it was at VERSION, through
//! terraform itself, under one held lock, and never leave the state worse than it was found.
//! Steps: preflight, lock, snapshot, tfvars, plan, confirm, apply, verify, (restore), unlock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tokio::sync::watch;

use crate::cli::ToArgs;
use crate::commands::{
    Context, Endpoints, absolute, confirm, lineage_error, prepare_terraform, require_answerable,
    user_var_files,
};
use crate::config::Configuration;
use crate::error::{Error, Exit};
use crate::fsx;
use crate::history::Audit;
use crate::journal::{LOCAL_DIR, StepRecord, StepStatus, VersionRef};
use crate::mapping::{self, Mapping, MappingOptions, Source};
use crate::operation::{self, Operation};
use crate::report::{PlanCounts, Report, Status, StepView, VariableChange};
use crate::selector::ObjectVersion;
use crate::state::Output;
use crate::terraform::{self, ApplyEvent, Terraform};

/// What preflight established; nothing has been changed yet.
struct Prepared {
    target: ObjectVersion,
    target_serial: u64,
    target_lineage: String,
    target_outputs: BTreeMap<String, Output>,
    current: ObjectVersion,
    current_serial: u64,
    mapping: Mapping,
    terraform: Terraform,
    terraform_version: String,
    /// `-var-file`/`-var` arguments the user passes, with paths made absolute.
    user_var_args: (Vec<PathBuf>, Vec<String>),
    var_file: PathBuf,
}

pub async fn run(ctx: &Context, args: &ToArgs, audit: &mut Audit) -> Result<Exit, Error> {
    let interrupt = operation::interrupts();
    let started = Instant::now();
    let prepared = preflight(ctx, args, interrupt.clone()).await?;
    audit.from = Some(VersionRef {
        version_id: prepared.current.version_id.to_string(),
        serial: prepared.current_serial,
    });

    let command = format!("to {}", prepared.target.version_id);
    let target_ref = VersionRef {
        version_id: prepared.target.version_id.to_string(),
        serial: prepared.target_serial,
    };
    audit.to = Some(target_ref.clone());
    let mut op = Operation::new(ctx, command.clone(), target_ref);
    audit.operation_id = Some(op.journal.operation_id.clone());
    op.journal.steps.push(StepRecord {
        name: "preflight".into(),
        status: StepStatus::Ok,
        started_at: jiff::Timestamp::now().to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
    });
    ctx.printer.note(&format!(
        "preflight  target {} (serial {}), current {}",
        prepared.target.version_id, prepared.target_serial, prepared.current.version_id
    ));

    op.begin("lock").await?;
    let operation = format!("tfrollback {command}");
    if let Err(e) = op
        .lock(
            operation,
            prepared.terraform_version.clone(),
            args.run.lock_timeout,
        )
        .await
    {
        op.finish_step(StepStatus::Failed);
        op.close().await.ok();
        return Err(e);
    }
    ctx.printer.note("lock       held");

    let mut run = Rollback {
        ctx,
        args,
        prepared,
        interrupt,
    };
    match run.locked(&mut op).await {
        Ok(outcome) => finish(ctx, args, op, outcome, audit).await,
        Err(e) => {
            // Nothing was applied: release the lock and report the error.
            op.finish_step(StepStatus::Failed);
            if let Err(close) = op.close().await {
                ctx.printer.note(&format!("warning: {}", close.render()));
            }
            Err(e)
        }
    }
}

/// How the locked part ended.
struct Outcome {
    status: Status,
    plan: Option<PlanCounts>,
    new_version_id: Option<String>,
    verified: bool,
    orphans: Vec<crate::report::Orphan>,
    error: Option<String>,
    variables: Vec<VariableChange>,
    var_file: Option<String>,
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
            return Err(Error::Refused {
                reason: "interrupted before the apply; nothing was changed".into(),
                hint: "run the command again when ready".into(),
                usage: false,
            });
        }
        Ok(())
    }

    async fn locked(&mut self, op: &mut Operation<'_>) -> Result<Outcome, Error> {
        let ctx = self.ctx;
        op.begin("snapshot").await?;
        let snap = op.snapshot().await?;
        if snap.version_id != self.prepared.current.version_id.as_str() {
            ctx.printer
                .note("note: the state changed while the lock was being taken; checking again");
            if snap.lineage != self.prepared.target_lineage && !self.args.allow_lineage_change {
                return Err(lineage_error(&self.prepared.target_lineage, &snap.lineage));
            }
        }
        ctx.printer.note(&format!(
            "snapshot   {} (serial {})",
            snap.file, snap.serial
        ));
        self.check_interrupt()?;

        op.begin("tfvars").await?;
        let mapping = &self.prepared.mapping;
        let var_file = write_var_file(&self.prepared.var_file, mapping)?;
        let variables = variable_changes(mapping);
        for v in &variables {
            ctx.printer
                .note(&format!("tfvars     {} = {}", v.name, v.rollback));
        }
        let var_args = terraform::var_args(
            &self.prepared.user_var_args.0,
            &self.prepared.user_var_args.1,
            Some(&var_file),
        );

        op.begin("plan").await?;
        let plans = ctx.settings.workdir.join(LOCAL_DIR).join("plans");
        fsx::create_private_dir(&plans).map_err(|source| Error::Write {
            path: plans.display().to_string(),
            source,
        })?;
        let plan_file = absolute(&plans.join(format!("{}.tfplan", op.journal.operation_id)));
        let summary = self.prepared.terraform.plan(&var_args, &plan_file).await?;
        self.check_interrupt()?;
        let base = Outcome {
            status: Status::AlreadyAtTarget,
            plan: Some(PlanCounts::default()),
            new_version_id: None,
            verified: false,
            orphans: vec![],
            error: None,
            variables,
            var_file: Some(var_file.display().to_string()),
        };
        if !summary.has_changes() {
            ctx.printer.note(&format!(
                "plan       no changes: the infrastructure is already at {}",
                self.prepared.target.version_id
            ));
            op.skip("confirm");
            op.skip("apply");
            op.skip("verify");
            let _ = std::fs::remove_file(&plan_file);
            return Ok(Outcome {
                verified: true,
                ..base
            });
        }

        let counts = PlanCounts {
            add: summary.add,
            change: summary.change,
            destroy: summary.destroy,
        };
        ctx.printer.note(&format!(
            "plan       {} to add, {} to change, {} to destroy{}",
            counts.add,
            counts.change,
            counts.destroy,
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
            ctx.printer.note(&format!("             {address}"));
        }
        let base = Outcome {
            status: Status::Planned,
            plan: Some(counts.clone()),
            ..base
        };

        op.begin("confirm").await?;
        if self.args.dry_run {
            ctx.printer
                .note("confirm    --dry-run: stopping before the apply; nothing was changed");
            op.finish_step(StepStatus::Skipped);
            op.skip("apply");
            op.skip("verify");
            let _ = std::fs::remove_file(&plan_file);
            return Ok(base);
        }
        if self.args.run.auto_approve {
            if counts.destroy > self.args.max_destroy {
                return Err(Error::Refused {
                    reason: format!(
                        "the rollback plan destroys or replaces {} resource(s), more than --max-destroy allows ({})",
                        counts.destroy, self.args.max_destroy
                    ),
                    hint: format!(
                        "review the plan with `tfrollback to {} --dry-run`, then pass --max-destroy {} if it is intended",
                        self.args.version, counts.destroy
                    ),
                    usage: false,
                });
            }
        } else if !confirm(&format!(
            "Apply this rollback to {}? [y/N] ",
            self.prepared.target.version_id
        ))
        .await
        {
            return Err(Error::Refused {
                reason: "rollback cancelled; nothing was changed".into(),
                hint: "run the command again to retry".into(),
                usage: false,
            });
        }
        self.check_interrupt()?;

        // From here on the state may change: failures restore the snapshot.
        op.begin("apply").await?;
        let applied = self
            .apply(op, &plan_file, summary.addresses.len() as u64)
            .await;
        let _ = std::fs::remove_file(&plan_file);
        let failure = match applied {
            Err(e) => Some(e.render()),
            Ok(()) => {
                op.begin("verify").await?;
                match self.verify(op, &var_args).await {
                    Ok(new_version) => {
                        return Ok(Outcome {
                            status: Status::RolledBack,
                            new_version_id: new_version,
                            verified: true,
                            ..base
                        });
                    }
                    Err(e) => Some(e.render()),
                }
            }
        };
        op.finish_step(StepStatus::Failed);
        let error = failure.unwrap_or_default();
        ctx.printer.note(&error);
        op.begin("restore").await?;
        ctx.printer.note("restore    putting the snapshot back");
        match op.restore_snapshot().await {
            Ok((new_version, orphans)) => Ok(Outcome {
                status: Status::Restored,
                new_version_id: new_version,
                orphans,
                error: Some(error),
                ..base
            }),
            Err(e) => Ok(Outcome {
                status: Status::RestoreFailed,
                error: Some(format!("{error}\n{}", e.render())),
                ..base
            }),
        }
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
        let journals = op.journals().clone();
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
    async fn verify(
        &mut self,
        op: &mut Operation<'_>,
        var_args: &[String],
    ) -> Result<Option<String>, Error> {
        let now = op.current().await?;
        let text = String::from_utf8(now.body).unwrap_or_default();
        let version = now
            .version_id
            .clone()
            .unwrap_or_else(crate::selector::VersionId::null);
        let state = self.ctx.parse(&version, &text)?;
        for v in &self.prepared.mapping.variables {
            let Source::Output(path) = &v.source else {
                continue;
            };
            let wanted = mapping::lookup(&self.prepared.target_outputs, path).map(|(v, _)| v);
            let got = mapping::lookup(&state.outputs, path).map(|(v, _)| v);
            if wanted != got {
                return Err(Error::Refused {
                    reason: format!(
                        "verification failed: output {path} does not hold the value version {} recorded",
                        self.prepared.target.version_id
                    ),
                    hint: "the configuration may no longer derive that output from variable "
                        .to_string()
                        + &v.name,
                    usage: false,
                });
            }
        }
        let verify_plan = absolute(
            &self
                .ctx
                .settings
                .workdir
                .join(LOCAL_DIR)
                .join("plans")
                .join(format!("{}-verify.tfplan", op.journal.operation_id)),
        );
        let follow_up = self.prepared.terraform.plan(var_args, &verify_plan).await;
        let _ = std::fs::remove_file(&verify_plan);
        if follow_up?.has_changes() {
            return Err(Error::Refused {
                reason: "verification failed: a follow-up plan with the rollback values still shows changes".into(),
                hint: "run `terraform plan` with the var file to see what does not converge".into(),
                usage: false,
            });
        }
        self.ctx
            .printer
            .note("verify     outputs match the target; follow-up plan: no changes");
        Ok(Some(version.to_string()))
    }
}

async fn finish(
    ctx: &Context,
    args: &ToArgs,
    mut op: Operation<'_>,
    outcome: Outcome,
    audit: &mut Audit,
) -> Result<Exit, Error> {
    let exit = match outcome.status {
        Status::Restored => Exit::Restored,
        Status::RestoreFailed => Exit::RestoreFailed,
        _ => Exit::Ok,
    };
    let mut next = vec![];
    if outcome.status == Status::RestoreFailed {
        // The lock stays held and the journal unfinished: `recover` continues from here.
        op.finish_step(StepStatus::Failed);
        op.save().await.ok();
        let snap = op.journal.snapshot.clone();
        next.push(format!(
            "The state lock is still held by this operation ({}) so nobody applies over a broken state.",
            op.journal.operation_id
        ));
        if let Some(s) = snap {
            next.push(format!(
                "The snapshot is saved at {} and is S3 version {} of {}.",
                s.file,
                s.version_id,
                ctx.location()
            ));
        }
        next.push("Run `tfrollback recover` to put the snapshot back and release the lock.".into());
    } else {
        op.begin("unlock").await?;
        op.close().await?;
        if outcome.status == Status::RolledBack {
            next.push(format!(
                "Note: the next normal `terraform apply` undoes this rollback unless the values in {} go into your configuration or pipeline variables.",
                outcome.var_file.clone().unwrap_or_default()
            ));
        }
        if outcome.status == Status::Restored {
            next.push("The infrastructure may be partly changed; run `terraform plan` to see where it stands.".into());
        }
    }
    let report = Report {
        status: outcome.status,
        operation_id: op.journal.operation_id.clone(),
        command: op.journal.command.clone(),
        location: ctx.location(),
        target: Some(op.journal.target.clone()),
        snapshot: op.journal.snapshot.as_ref().map(|s| VersionRef {
            version_id: s.version_id.clone(),
            serial: s.serial,
        }),
        new_version_id: outcome.new_version_id,
        var_file: outcome.var_file,
        plan: outcome.plan,
        verified: outcome.verified,
        orphans: outcome.orphans,
        variables: outcome.variables,
        steps: op.journal.steps.iter().map(StepView::from).collect(),
        error: outcome.error,
        next,
    };
    if let Err(e) = report.publish(args.run.report.as_deref()) {
        ctx.printer
            .note(&format!("warning: could not write the report: {e}"));
    }
    audit.report(&report);
    ctx.emit(&report, Report::text)?;
    Ok(exit)
}

async fn preflight(
    ctx: &Context,
    args: &ToArgs,
    interrupt: watch::Receiver<bool>,
) -> Result<Prepared, Error> {
    require_answerable(args.run.auto_approve, args.dry_run)?;
    let ends = Endpoints::read(ctx, &args.version, "roll back").await?;
    let (current, target) = (ends.current.clone(), ends.target.clone());
    let (current_state, target_state) = ends.states(ctx, args.allow_lineage_change)?;

    let config = Configuration::load(&ctx.settings.workdir)?;
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
    if args.only_slot {
        let slot = mapping.slot().cloned().ok_or_else(|| Error::Refused {
            reason: match &mapping.slot_variable {
                Some(v) => format!(
                    "version {} recorded no value for the slot variable `{v}`",
                    target.version_id
                ),
                None => "no blue/green slot variable was found in the configuration".into(),
            },
            hint: "name it with --slot-var, or map it with --map OUTPUT.PATH=VARIABLE".into(),
            usage: false,
        })?;
        mapping.variables = vec![slot];
    }
    if mapping.variables.is_empty() {
        return Err(Error::Refused {
            reason: format!(
                "version {} recorded no output that maps to a variable declared in the configuration, so a rollback would change nothing",
                target.version_id
            ),
            hint: "map outputs to variables with --map OUTPUT.PATH=VARIABLE (docs/mapping.md), or roll back the state alone with `tfrollback restore`".into(),
            usage: false,
        });
    }

    let (terraform, terraform_version) = prepare_terraform(
        ctx,
        args.run.terraform_bin.as_deref(),
        interrupt,
        &target.version_id,
        &target_state.terraform_version,
    )
    .await?;

    let absolute_files = user_var_files(&args.var_files)?;
    let var_file = absolute(
        &args
            .var_file_out
            .clone()
            .unwrap_or_else(|| ctx.settings.workdir.join("tfrollback.tfvars.json")),
    );
    Ok(Prepared {
        target_serial: target_state.serial,
        target_lineage: target_state.lineage.clone(),
        target_outputs: target_state.outputs.clone(),
        target,
        current,
        current_serial: current_state.serial,
        mapping,
        terraform,
        terraform_version,
        user_var_args: (absolute_files, args.vars.clone()),
        var_file,
    })
}

/// The rollback variables as a JSON var file; 0600 when it holds a sensitive value.
fn write_var_file(path: &Path, mapping: &Mapping) -> Result<PathBuf, Error> {
    let mut body = serde_json::to_vec_pretty(&mapping.tfvars()).unwrap_or_default();
    body.push(b'\n');
    let mode = if mapping.variables.iter().any(|v| v.sensitive) {
        0o600
    } else {
        0o644
    };
    fsx::write_atomic(path, &body, mode).map_err(|source| Error::Write {
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
            current: v
                .current
                .as_ref()
                .map(|c| terraform::redact(c, v.sensitive)),
            rollback: terraform::redact(&v.rollback, v.sensitive),
        })
        .collect()
}
