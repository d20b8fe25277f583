//! `tfrollback recover`: finishes a rollback that was interrupted (killed, crashed, or whose
//! restore failed). When the apply was interrupted, the snapshot is restored exactly as a
//! failed rollback would; when the apply had finished, the state terraform wrote is kept. The
//! lock is released only when it is this operation's own.

use crate::cli::RecoverArgs;
use crate::commands::audit::Audit;
use crate::commands::{Context, Outcome};
use crate::error::{Error, Exit, Refusal};
use crate::operation::Operation;
use crate::operation::report::{Report, Status};
use crate::store::journal::{Step, StepStatus};

pub(crate) async fn run(ctx: &Context, args: &RecoverArgs) -> Result<Outcome, Error> {
    ctx.store.look_up_caller();
    let mut audit = Audit::new("recover".into());
    let result = recover(ctx, args, &mut audit).await.map(Outcome::Done);
    audit.conclude(ctx, &result).await;
    result
}

async fn recover(ctx: &Context, args: &RecoverArgs, audit: &mut Audit) -> Result<Exit, Error> {
    let Some(journal) = ctx.store.unfinished().await? else {
        let mut report = Report::detached(
            Status::NothingToRecover,
            "recover".into(),
            None,
            ctx.location(),
        );
        report.operation_id = String::new();
        report.next =
            vec!["No unfinished rollback was found; `tfrollback status` shows the lock.".into()];
        audit.report(&report);
        return ctx.emit(&report, Report::text);
    };
    let command = format!("recover ({})", journal.command);
    audit.recovering(&journal, command.clone());
    if let Some(pid) = journal.terraform_pid
        && journal.host == ctx.settings.identity.host
        && terraform_group_alive(pid)
    {
        return Err(Refusal::TerraformStillRunning { pid }.into());
    }

    // A live operation beats while it holds the lock, on whatever machine: never take over
    // from it (it may be waiting at its prompt, or applying).
    if let Some(beat) = ctx.store.journals.heartbeat().await?
        && beat.operation_id == journal.operation_id
        && beat.alive(jiff::Timestamp::now())
    {
        return Err(Refusal::StillAlive {
            operation_id: journal.operation_id.clone(),
            who: journal.who.clone(),
            age_secs: beat.age_secs(jiff::Timestamp::now()),
        }
        .into());
    }
    let mut op = Operation::resume(ctx.engine(), journal);
    let interrupted_command = op.journal.command.clone();
    let adopted = op.adopt_lock(String::new(), args.lock_timeout).await?;
    ctx.printer.note(&format!(
        "recover    `tfrollback {interrupted_command}` (operation {}); lock {}",
        op.journal.operation_id,
        if adopted {
            "taken over from the interrupted operation"
        } else {
            "taken"
        }
    ));

    let mut new_version_id = None;
    let mut orphans = vec![];
    let mut next = vec![];
    // A restore writes the state in one atomic put: whether it landed or not, the state is
    // whole, and what the user asked for is either done or not done. Nothing to undo.
    let is_restore = interrupted_command.starts_with("restore ");
    if is_restore {
        op.skip(Step::Recover);
        let now = op.current().await?;
        // Killed between the state write and the digest write, the digest names the old
        // bytes: terraform would refuse the state until it is set again.
        op.sync_digest(&now).await?;
        ctx.printer.note(&format!(
            "recover    the interrupted restore left the state whole (current version {}); releasing its lock",
            now.version_id.map(|v| v.to_string()).unwrap_or_default()
        ));
    } else if op.journal.apply_finished() && !op.journal.restoring() {
        // terraform's apply ran to its end and wrote its state: that state describes the
        // infrastructure as it is now. Putting the snapshot back would make it lie.
        op.skip(Step::Recover);
        let verified = op.journal.verified();
        ctx.printer.note(if verified {
            "recover    the interrupted rollback had finished and was verified: keeping its state, releasing the lock"
        } else {
            "recover    the interrupted rollback's apply had finished: keeping the state terraform wrote, releasing the lock"
        });
        if !verified {
            next.push("The rollback was not verified: run `terraform plan` with the rollback var file to check it converged.".into());
        }
    } else if op.journal.apply_started()
        && let Some(snapshot) = op.journal.snapshot.clone()
        && !restore_is_safe(&mut op, adopted, &snapshot, args).await?
    {
        op.skip(Step::Recover);
        ctx.printer.note(
            "recover    --keep-current: the state stays as it is now; closing the interrupted operation",
        );
        next.push("The state was left as someone wrote it after the interrupted rollback; run `terraform plan` to see where it stands.".into());
    } else if op.journal.apply_started() && op.journal.snapshot.is_some() {
        op.begin(Step::Recover).await?;
        match op.restore_snapshot().await {
            Ok((version, left)) => {
                ctx.printer.note(&match &version {
                    Some(v) => format!("restore    snapshot written back as version {v}"),
                    None => "restore    the state is still the snapshot: nothing to write".into(),
                });
                new_version_id = version;
                orphans = left;
                next.push("The infrastructure may be partly changed; run `terraform plan` to see where it stands.".into());
            }
            Err(e) => {
                // Keep the lock and the journal: running recover again continues from here.
                op.finish_step(StepStatus::Failed);
                op.save().await.ok();
                return Err(e);
            }
        }
    } else {
        op.skip(Step::Recover);
        ctx.printer.note("recover    the interrupted rollback never reached the apply: the state was not changed");
    }
    op.begin_brief(Step::Unlock).await?;
    op.close().await?;

    let mut report = Report::new(Status::Recovered, &op.journal, ctx.location());
    report.command = command;
    report.new_version_id = new_version_id;
    report.orphans = orphans;
    report.next = next;
    audit.report(&report);
    ctx.emit(&report, Report::text)
}

/// Whether the snapshot may be written back. With the interrupted operation's own lock taken
/// over, nobody else wrote since (the state is the snapshot or what its apply wrote). With the
/// lock gone and the state moved, someone may have applied since: writing the old snapshot
/// would undo their work, so it needs `--force-restore` (or `--keep-current` to leave it).
/// Refusing lets go of the lock taken for this and leaves the journal for that decision.
async fn restore_is_safe(
    op: &mut Operation<'_>,
    adopted: bool,
    snapshot: &crate::store::journal::Snapshot,
    args: &RecoverArgs,
) -> Result<bool, Error> {
    if adopted || args.force_restore {
        return Ok(true);
    }
    let now = op.current().await?;
    if now.version_id.as_ref() == Some(&snapshot.version_id) {
        return Ok(true);
    }
    if args.keep_current {
        return Ok(false);
    }
    op.release().await?;
    Err(Refusal::StaleSnapshot {
        snapshot: snapshot.version_id.clone(),
        current: now
            .version_id
            .unwrap_or_else(crate::model::selector::VersionId::null),
    }
    .into())
}

/// Whether the process group the interrupted terraform led is still there: terraform ran as
/// the leader of a group of its own (with its providers and provisioners), whatever its binary
/// is called (`terraform-bin` behind setup-terraform's wrapper, `tofu`, ...). Until the group
/// is gone it may still be persisting what it did.
fn terraform_group_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), None).is_ok()
}
