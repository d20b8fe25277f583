//! `tfrollback restore VERSION`: a state-only rollback, for a state damaged by a bad
//! `terraform state rm/mv`, an import gone wrong or a forced push. Under the held lock it
//! snapshots the current state, then writes VERSION's content as the new current version
//! (serial = current + 1, same lineage, compare-and-swap on the ETag, the backend's encryption,
//! the DynamoDB digest), then runs `terraform plan` to show what the restored state implies.

use std::time::Instant;

use crate::cli::RestoreArgs;
use crate::commands::audit::Audit;
use crate::commands::preflight::{
    Endpoints, Resolved, find_terraform, prepare_terraform, target_still, user_var_files,
};
use crate::commands::prompt::{approve, require_answerable};
use crate::commands::{Context, Outcome};
use crate::error::{Error, Exit, Refusal};
use crate::model::diff::diff_states;
use crate::model::selector::{VersionId, VersionRef};
use crate::operation::report::{PlanCounts, Report, Status};
use crate::operation::signals::interrupts;
use crate::operation::{Operation, Verb};
use crate::render::{DiffView, Endpoint, render_diff};
use crate::store::journal::{Step, StepStatus};
use crate::store::s3::{Fetched, S3Error};
use crate::terraform::{self, Terraform};

pub(crate) async fn run(ctx: &Context, args: &RestoreArgs) -> Result<Outcome, Error> {
    // `@-2h` is recorded as the moment it meant, never to be read against another clock.
    let command = Verb::Restore.command(&args.version.pinned(ctx.now));
    ctx.store.look_up_caller();
    let mut audit = Audit::reported(command.clone(), args.run.report.clone());
    let result = restore(ctx, args, command, &mut audit).await;
    audit.conclude(ctx, &result).await;
    result
}

async fn restore(
    ctx: &Context,
    args: &RestoreArgs,
    command: String,
    audit: &mut Audit,
) -> Result<Outcome, Error> {
    let interrupt = interrupts();
    let started = Instant::now();
    require_answerable(ctx.terminal, args.run.auto_approve, args.dry_run)?;
    let location = ctx.location();
    // terraform is asked its version while S3 is read, when the restore will plan.
    let plans = !args.no_plan && !args.dry_run;
    let (ends, found_terraform) =
        tokio::join!(Endpoints::read(ctx, &args.version, "restore"), async {
            if plans {
                Some(
                    find_terraform(ctx, args.run.terraform_bin.as_deref(), interrupt.clone()).await,
                )
            } else {
                None
            }
        });
    let mut ends = match ends? {
        Resolved::Endpoints(ends) => ends,
        Resolved::AlreadyThere { reason } => return Ok(Outcome::NothingToDo { reason }),
    };
    let (current, target) = (&ends.current, &ends.target);
    let (current_state, target_state) = ends.states(ctx, args.allow_lineage_change)?;
    let target_ref = VersionRef {
        version_id: target.version_id.clone(),
        serial: target_state.serial,
    };
    audit.from = Some(VersionRef {
        version_id: current.version_id.clone(),
        serial: current_state.serial,
    });
    audit.to = Some(target_ref.clone());

    if same_content(&ends.current_text, &ends.target_text) {
        ctx.printer.note(&format!(
            "version {} holds the current content already: nothing to restore",
            target.version_id
        ));
        return Ok(Outcome::Done(early(
            ctx,
            audit,
            Status::AlreadyAtTarget,
            &command,
            target_ref,
            vec![],
        )?));
    }
    if !ctx.printer.json {
        let changes = diff_states(&current_state, &target_state);
        let view = DiffView {
            from: Endpoint {
                version_id: current.version_id.to_string(),
                serial: current_state.serial,
                current: true,
            },
            to: Endpoint {
                version_id: target.version_id.to_string(),
                serial: target_state.serial,
                current: target.is_latest,
            },
            outputs: changes.outputs,
            resources: changes.resources,
            variables: vec![],
            skipped_variables: vec![],
            unset_variables: vec![],
            skipped_versions: vec![],
            location: location.clone(),
        };
        ctx.printer.note(&render_diff(&view));
    }
    if args.dry_run {
        let next = vec!["Dry run: nothing was written.".into()];
        return Ok(Outcome::Done(early(
            ctx,
            audit,
            Status::Planned,
            &command,
            target_ref,
            next,
        )?));
    }

    let mut terraform = match found_terraform {
        None => None,
        Some(found) => Some(
            prepare_terraform(
                ctx,
                found?,
                &target.version_id,
                &target_state.terraform_version,
            )
            .await?,
        ),
    };
    let var_args = terraform::var_args(&user_var_files(&args.var_files)?, &args.vars, None);

    let mut op =
        Operation::new(ctx.engine(), command, target_ref, started).interruptible(interrupt.clone());
    audit.operation(&op.journal);
    let tf_version = terraform
        .as_ref()
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let unfinished = std::mem::replace(&mut ends.unfinished, Ok(None));
    op.start(
        tf_version,
        args.run.lock_timeout,
        args.run.no_lock,
        unfinished?,
    )
    .await?;
    let preflight_current = ends.current.version_id.clone();
    let found = ends.found();
    let result = locked(
        ctx,
        args,
        (&preflight_current, found),
        &mut op,
        ends.target_text.as_bytes(),
        terraform.as_mut().map(|(tf, _)| tf),
        &var_args,
    )
    .await;
    let restored = match result {
        Ok(done) => done,
        Err(e) => return Err(op.abort(e).await),
    };
    // The state is written: from here on the end must not fail silently. A journal or lock
    // that cannot be closed leaves the operation to `recover`.
    let unfinished = match restored.unfinished {
        Some(why) => Some(why),
        None => async {
            op.begin_brief(Step::Unlock).await?;
            op.close().await
        }
        .await
        .err()
        .map(|e| e.render()),
    };
    let (status, exit) = if unfinished.is_some() {
        op.finish_step(StepStatus::Failed);
        op.save().await.ok();
        (Status::Unfinished, Exit::RestoreFailed)
    } else {
        (Status::RestoredState, Exit::Ok)
    };
    let mut report = Report::new(status, &op.journal, location);
    report.new_version_id = restored.new_version;
    report.error = unfinished.clone().or(restored.plan_error);
    report.next = vec![match (&unfinished, &restored.plan) {
        (Some(_), _) => format!(
            "The state was written, then the operation could not be closed; the lock is still held by it ({}). Run `tfrollback recover`: it sets the digest and releases the lock.",
            op.journal.operation_id
        ),
        (None, Some(p)) if p.add + p.change + p.destroy > 0 => "The restored state differs from the real infrastructure: review `terraform plan` before the next apply.".into(),
        (None, Some(_)) => "terraform plan shows no changes: state and infrastructure agree.".into(),
        (None, None) => "Run `terraform plan` to see what the restored state implies for the real infrastructure.".into(),
    }];
    report.plan = restored.plan;
    if let Err(e) = report.publish(
        args.run.report.as_deref(),
        ctx.settings.step_summary.as_deref(),
    ) {
        ctx.printer
            .note(&format!("warning: could not write the report: {e}"));
    }
    audit.report(&report);
    ctx.emit(&report, Report::text)?;
    Ok(Outcome::Done(exit))
}

/// The report of a restore that ended before any operation began.
fn early(
    ctx: &Context,
    audit: &mut Audit,
    status: Status,
    command: &str,
    target: VersionRef,
    next: Vec<String>,
) -> Result<Exit, Error> {
    let mut report = Report::detached(status, command.to_string(), Some(target), ctx.location());
    report.next = next;
    audit.report(&report);
    ctx.emit(&report, Report::text)
}

/// What the locked part did.
struct Restored {
    new_version: Option<VersionId>,
    plan: Option<PlanCounts>,
    /// The follow-up plan failed: the restore stands, the plan's error is reported.
    plan_error: Option<String>,
    /// The state was written but the operation cannot be closed cleanly (its digest): it keeps
    /// the lock for `recover`.
    unfinished: Option<String>,
}

/// Under the lock: the snapshot, the prompt, the write and the follow-up plan. `preflight`
/// is the current state as preflight read it.
async fn locked(
    ctx: &Context,
    args: &RestoreArgs,
    preflight: (&VersionId, Fetched),
    op: &mut Operation<'_>,
    target_body: &[u8],
    terraform: Option<&mut Terraform>,
    var_args: &[String],
) -> Result<Restored, Error> {
    let printer = op.printer();
    let (preflight_current, found) = preflight;
    let (snapshot, current) = op.snapshot(found).await?;
    printer.note(&format!(
        "snapshot   {} (serial {})",
        snapshot.file, snapshot.serial
    ));
    if &snapshot.version_id != preflight_current {
        printer.note("note: the state changed while the lock was being taken; checking again");
        target_still(ctx, &args.version, &op.journal.target.version_id).await?;
    }
    // Nobody is asked with --auto-approve: the step ends at once.
    if args.run.auto_approve {
        op.begin_brief(Step::Confirm).await?;
    } else {
        op.begin(Step::Confirm).await?;
    }
    let interrupt = op.interrupt();
    approve(
        args.run.auto_approve,
        &format!(
            "Write version {} as the current state? [y/N] ",
            op.journal.target.version_id
        ),
        "restore",
        &interrupt,
    )
    .await?;
    op.begin(Step::Restore).await?;
    // Written over the snapshot, conditional on its ETag: a write since (someone ignoring the
    // lock, during the prompt) fails it, and nothing is overwritten.
    let new_version = match op.write_state(target_body, &current).await {
        Ok(written) => written.version_id,
        // Written, but terraform will refuse it until the digest is right: the lock stays
        // for `recover`, which sets it.
        Err(e @ Error::DigestNotSet { .. }) => {
            let Error::DigestNotSet { version, .. } = &e else {
                unreachable!("matched above")
            };
            return Ok(Restored {
                new_version: Some(version.clone()),
                plan: None,
                plan_error: None,
                unfinished: Some(e.render()),
            });
        }
        Err(Error::S3(source @ S3Error::PreconditionFailed { .. })) => {
            return Err(Refusal::ChangedAfterSnapshot { source }.into());
        }
        Err(e) => return Err(e),
    };
    printer.note(&format!(
        "restore    written as version {}",
        new_version
            .as_ref()
            .map_or_else(|| "(unknown)".to_string(), VersionId::to_string)
    ));

    let Some(terraform) = terraform else {
        op.skip(Step::Plan);
        return Ok(Restored {
            new_version,
            plan: None,
            plan_error: None,
            unfinished: None,
        });
    };
    op.begin(Step::Plan).await?;
    // The state is written: from here on a failure is reported with the restore, never as
    // "nothing was changed".
    let planned = match op.local_file("plans", ".tfplan") {
        Ok(plan_file) => {
            let planned = terraform.plan(var_args, &plan_file).await;
            let _ = std::fs::remove_file(&plan_file);
            planned.map_err(Error::from).map(|s| PlanCounts {
                add: s.add,
                change: s.change,
                destroy: s.destroy,
            })
        }
        Err(e) => Err(e),
    };
    Ok(match planned {
        Ok(counts) => {
            printer.note(&format!(
                "plan       {} to add, {} to change, {} to destroy",
                counts.add, counts.change, counts.destroy
            ));
            Restored {
                new_version,
                plan: Some(counts),
                plan_error: None,
                unfinished: None,
            }
        }
        // The restore is done; a plan that cannot run is reported, not undone.
        Err(e) => {
            op.finish_step(StepStatus::Failed);
            Restored {
                new_version,
                plan: None,
                plan_error: Some(format!("the follow-up plan failed: {}", e.render())),
                unfinished: None,
            }
        }
    })
}

/// The same state but for the serial.
fn same_content(a: &str, b: &str) -> bool {
    let parse = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s)
            .ok()
            .map(|mut v| {
                v["serial"] = serde_json::Value::Null;
                v
            })
    };
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}
