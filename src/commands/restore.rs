//! `tfrollback restore VERSION`: a state-only rollback, for a state damaged by a bad
//! `terraform state rm/mv`, an import gone wrong or a forced push. Under the held lock it
//! snapshots the current state, then writes VERSION's content as the new current version
//! (serial = current + 1, same lineage, compare-and-swap on the ETag, the backend's encryption,
//! the DynamoDB digest), then runs `terraform plan` to show what the restored state implies.

use std::time::Instant;

use crate::cli::RestoreArgs;
use crate::commands::{
    Context, Endpoints, absolute, confirm, prepare_terraform, require_answerable, user_var_files,
};
use crate::diff::diff_states;
use crate::error::{Error, Exit};
use crate::fsx;
use crate::history::Audit;
use crate::journal::{LOCAL_DIR, StepRecord, StepStatus, VersionRef};
use crate::operation::{self, Operation};
use crate::render::{DiffView, Endpoint, render_diff};
use crate::report::{PlanCounts, Report, Status};
use crate::terraform::{self, Terraform};

pub async fn run(ctx: &Context, args: &RestoreArgs, audit: &mut Audit) -> Result<Exit, Error> {
    let interrupt = operation::interrupts();
    let started = Instant::now();
    require_answerable(args.run.auto_approve, args.dry_run)?;
    let location = ctx.location();
    let ends = Endpoints::read(ctx, &args.version, "restore").await?;
    let (current, target) = (&ends.current, &ends.target);
    let (current_state, target_state) = ends.states(ctx, args.allow_lineage_change)?;
    let target_ref = VersionRef {
        version_id: target.version_id.to_string(),
        serial: target_state.serial,
    };
    audit.from = Some(VersionRef {
        version_id: current.version_id.to_string(),
        serial: current_state.serial,
    });
    audit.to = Some(target_ref.clone());

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
        location: location.clone(),
    };
    if same_content(&ends.current_text, &ends.target_text) {
        ctx.printer.note(&format!(
            "version {} holds the current content already: nothing to restore",
            target.version_id
        ));
        let mut report = Report::new(
            Status::AlreadyAtTarget,
            &empty_journal(&target_ref),
            location,
        );
        report.command = format!("restore {}", target.version_id);
        audit.report(&report);
        ctx.emit(&report, Report::text)?;
        return Ok(Exit::Ok);
    }
    if !ctx.printer.json {
        ctx.printer.note(&render_diff(&view));
    }
    if args.dry_run {
        let mut report = Report::new(Status::Planned, &empty_journal(&target_ref), location);
        report.command = format!("restore {}", target.version_id);
        report.next = vec!["Dry run: nothing was written.".into()];
        audit.report(&report);
        ctx.emit(&report, Report::text)?;
        return Ok(Exit::Ok);
    }

    let mut terraform = if args.no_plan {
        None
    } else {
        Some(
            prepare_terraform(
                ctx,
                args.run.terraform_bin.as_deref(),
                interrupt,
                &target.version_id,
                &target_state.terraform_version,
            )
            .await?,
        )
    };
    let var_args = terraform::var_args(&user_var_files(&args.var_files)?, &args.vars, None);
    let target_body = ends.target_text.as_bytes();

    let mut op = Operation::new(ctx, format!("restore {}", target.version_id), target_ref);
    audit.operation_id = Some(op.journal.operation_id.clone());
    op.journal.steps.push(StepRecord {
        name: "preflight".into(),
        status: StepStatus::Ok,
        started_at: jiff::Timestamp::now().to_string(),
        duration_ms: started.elapsed().as_millis() as u64,
    });
    op.begin("lock").await?;
    let tf_version = terraform
        .as_ref()
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if let Err(e) = op
        .lock(
            format!("tfrollback restore {}", target.version_id),
            tf_version,
            args.run.lock_timeout,
        )
        .await
    {
        op.finish_step(StepStatus::Failed);
        op.close().await.ok();
        return Err(e);
    }
    let result = locked(
        ctx,
        args,
        &mut op,
        target_body,
        terraform.as_mut().map(|(tf, _)| tf),
        &var_args,
    )
    .await;
    let (new_version, plan, plan_error) = match result {
        Ok(done) => done,
        Err(e) => {
            op.finish_step(StepStatus::Failed);
            if let Err(close) = op.close().await {
                ctx.printer.note(&format!("warning: {}", close.render()));
            }
            return Err(e);
        }
    };
    op.begin("unlock").await?;
    op.close().await?;
    let mut report = Report::new(Status::RestoredState, &op.journal, location);
    report.new_version_id = new_version;
    report.plan = plan;
    report.error = plan_error;
    report.next = vec![match &report.plan {
        Some(p) if p.add + p.change + p.destroy > 0 => "The restored state differs from the real infrastructure: review `terraform plan` before the next apply.".into(),
        Some(_) => "terraform plan shows no changes: state and infrastructure agree.".into(),
        None => "Run `terraform plan` to see what the restored state implies for the real infrastructure.".into(),
    }];
    if let Err(e) = report.publish(args.run.report.as_deref()) {
        ctx.printer
            .note(&format!("warning: could not write the report: {e}"));
    }
    audit.report(&report);
    ctx.emit(&report, Report::text)?;
    Ok(Exit::Ok)
}

type Restored = (Option<String>, Option<PlanCounts>, Option<String>);

async fn locked(
    ctx: &Context,
    args: &RestoreArgs,
    op: &mut Operation<'_>,
    target_body: &[u8],
    terraform: Option<&mut Terraform>,
    var_args: &[String],
) -> Result<Restored, Error> {
    op.begin("snapshot").await?;
    let snapshot = op.snapshot().await?;
    ctx.printer.note(&format!(
        "snapshot   {} (serial {})",
        snapshot.file, snapshot.serial
    ));
    op.begin("confirm").await?;
    if !args.run.auto_approve
        && !confirm(&format!(
            "Write version {} as the current state? [y/N] ",
            op.journal.target.version_id
        ))
        .await
    {
        return Err(Error::Refused {
            reason: "restore cancelled; nothing was changed".into(),
            hint: "run the command again to retry".into(),
            usage: false,
        });
    }
    op.begin("restore").await?;
    let current = op.current().await?;
    if current.version_id.as_ref().map(|v| v.as_str()) != Some(snapshot.version_id.as_str()) {
        return Err(Error::Refused {
            reason: "the state changed after the snapshot was taken; nothing was overwritten"
                .into(),
            hint: "someone wrote the state without the lock: run `tfrollback list` and try again"
                .into(),
            usage: false,
        });
    }
    let written = op.write_state(target_body, &current).await?;
    let new_version = written.version_id.map(|v| v.to_string());
    ctx.printer.note(&format!(
        "restore    written as version {}",
        new_version.as_deref().unwrap_or("(unknown)")
    ));

    let Some(terraform) = terraform else {
        op.skip("plan");
        return Ok((new_version, None, None));
    };
    op.begin("plan").await?;
    let plans = ctx.settings.workdir.join(LOCAL_DIR).join("plans");
    let plan_file = absolute(&plans.join(format!("{}.tfplan", op.journal.operation_id)));
    let planned = async {
        fsx::create_private_dir(&plans).map_err(|source| Error::Write {
            path: plans.display().to_string(),
            source,
        })?;
        let s = terraform.plan(var_args, &plan_file).await?;
        Ok::<_, Error>(PlanCounts {
            add: s.add,
            change: s.change,
            destroy: s.destroy,
        })
    }
    .await;
    let _ = std::fs::remove_file(&plan_file);
    match planned {
        Ok(counts) => {
            ctx.printer.note(&format!(
                "plan       {} to add, {} to change, {} to destroy",
                counts.add, counts.change, counts.destroy
            ));
            Ok((new_version, Some(counts), None))
        }
        // The restore is done; a plan that cannot run is reported, not undone.
        Err(e) => {
            op.finish_step(StepStatus::Failed);
            Ok((
                new_version,
                None,
                Some(format!("the follow-up plan failed: {}", e.render())),
            ))
        }
    }
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

fn empty_journal(target: &VersionRef) -> crate::journal::Journal {
    crate::journal::Journal {
        target: target.clone(),
        ..crate::journal::Journal::detached("")
    }
}
