//! The fault matrix: whatever happens to a rollback (a kill at any step, Ctrl-C or SIGTERM
//! during the apply, S3 errors, broken connections, timeouts, a concurrent write, DynamoDB
//! down, a full disk), afterwards the lock is free or held only by the recorded tfrollback
//! operation, every version that existed still exists, and after `recover` a plain
//! `terraform plan` accepts the state.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Fault, Head, LockStyle, Proxy, Rule, Run, Sandbox, deployed, lab};

const ROLLBACK: &[&str] = &["to", "previous", "--auto-approve", "--max-destroy", "10"];

fn journal(sb: &Sandbox) -> Option<Value> {
    let key = format!("{}.tfrollback/journal.json", sb.key);
    sb.s3().exists(&key).then(|| sb.s3().get_json(&key, None))
}

fn spawn(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = sb.tfr_command(args);
    cmd.envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().expect("start tfrollback")
}

/// Waits until the S3 journal satisfies `ready`.
fn wait_for_journal(sb: &Sandbox, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        if let Some(j) = journal(sb)
            && ready(&j)
        {
            return j;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn last_step(j: &Value) -> String {
    j["steps"].as_array().unwrap().last().unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A plain terraform plan reads the state without a checksum error (0: converged, 2: drift).
fn terraform_accepts(sb: &Sandbox) {
    let run = sb.terraform(&[
        "plan",
        "-input=false",
        "-detailed-exitcode",
        "-var=active_slot=green",
        "-var=green_version=v2",
    ]);
    assert!(
        run.code == 0 || run.code == 2,
        "terraform plan failed:\n{}",
        run.stderr
    );
}

/// The invariants after any fault, then `recover`, then terraform.
fn check_recoverable(sb: &Sandbox, before: &[String]) {
    let status = sb.tfr(&["status", "--json"]).ok().json();
    if !status["lock"].is_null() {
        let recorded = &status["unfinished"]["lock"]["info"]["ID"];
        assert_eq!(
            &status["lock"]["ID"], recorded,
            "the lock is held, but not by the recorded operation: {status:#}"
        );
    }
    let now = sb.version_ids();
    for id in before {
        assert!(now.contains(id), "version {id} was lost");
    }
    sb.recover_when_stopped();
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null, "{status:#}");
    assert_eq!(status["unfinished"], Value::Null, "{status:#}");
    terraform_accepts(sb);
}

#[test]
fn a_kill_at_any_step_of_to_is_recoverable() {
    // After the apply finished (verify, unlock) the state is kept: see
    // a_kill_after_the_apply_finished_keeps_the_state_terraform_wrote.
    for step in ["snapshot", "tfvars", "plan", "confirm", "apply"] {
        let sb = deployed(LockStyle::DynamoDb, Some("v2"));
        let before = sb.version_ids();
        let failpoint = format!("{step}=pause");
        let mut child = spawn(&sb, ROLLBACK, &[("TFROLLBACK_FAILPOINT", &failpoint)]);
        let j = wait_for_journal(&sb, step, |j| last_step(j) == step);
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(j["lock"]["info"]["ID"].is_string());
        check_recoverable(&sb, &before);
        // Killed before the apply: nothing changed. Killed after it: the snapshot is back.
        assert_eq!(
            sb.current_output("active_slot"),
            json!("green"),
            "killed at {step}"
        );
    }
}

#[test]
fn a_kill_during_the_apply_is_recoverable() {
    let sb = deployed(LockStyle::Both, Some("v2"));
    let before = sb.version_ids();
    let mut args = ROLLBACK.to_vec();
    args.extend(["--var", "slow_seconds=30"]);
    let mut child = spawn(&sb, &args, &[]);
    wait_for_journal(&sb, "the apply", |j| j["terraform_pid"].is_u64());
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap();
    child.wait().unwrap();
    check_recoverable(&sb, &before);
    assert_eq!(sb.current_output("active_slot"), json!("green"));
}

#[test]
fn a_kill_at_any_step_of_restore_is_recoverable() {
    // `digest`: between the state write and the DynamoDB digest write.
    for step in ["snapshot", "confirm", "restore", "digest", "plan"] {
        let sb = deployed(LockStyle::DynamoDb, Some("v2"));
        let before = sb.version_ids();
        let failpoint = format!("{step}=pause");
        let mut child = spawn(
            &sb,
            &["restore", "previous", "--auto-approve"],
            &[("TFROLLBACK_FAILPOINT", &failpoint)],
        );
        let journaled = if step == "digest" { "restore" } else { step };
        wait_for_journal(&sb, step, |j| last_step(j) == journaled);
        if step == "digest" {
            // Paused after the state write: the restored version is current, its digest not.
            let deadline = Instant::now() + Duration::from_mins(1);
            while sb.current_output("active_slot") != json!("blue") {
                assert!(Instant::now() < deadline, "the state was never written");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        check_recoverable(&sb, &before);
        // A restore is one atomic write: the state is either the old one or the restored one.
        let expected = if step == "plan" || step == "digest" {
            json!("blue")
        } else {
            json!("green")
        };
        assert_eq!(
            sb.current_output("active_slot"),
            expected,
            "killed at {step}"
        );
    }
}

#[test]
fn ctrl_c_or_sigterm_during_the_apply_restores_the_snapshot() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let sb = deployed(LockStyle::DynamoDb, Some("v2"));
        let before = sb.version_ids();
        let mut args = ROLLBACK.to_vec();
        args.extend(["--var", "slow_seconds=30", "--json"]);
        let mut cmd = sb.tfr_command(&args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        wait_for_journal(&sb, "the apply", |j| j["terraform_pid"].is_u64());
        std::thread::sleep(Duration::from_secs(1));
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "terraform was not stopped"
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{signal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["status"], json!("restored"));
        assert_eq!(
            sb.current_output("active_slot"),
            json!("green"),
            "the snapshot is back"
        );
        for id in &before {
            assert!(sb.version_ids().contains(id));
        }
        let status = sb.tfr(&["status", "--json"]).ok().json();
        assert_eq!(
            (status["lock"].clone(), status["unfinished"].clone()),
            (Value::Null, Value::Null)
        );
        terraform_accepts(&sb);
    }
}

/// tfrollback's environment pointed at the proxy; terraform keeps talking to the server.
fn through(proxy: &Proxy) -> Vec<(&'static str, String)> {
    vec![("AWS_ENDPOINT_URL", proxy.endpoint.clone())]
}

fn tfr_via(sb: &Sandbox, proxy: &Proxy, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let env = through(proxy);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    sb.tfr_with(args, &all)
}

#[test]
fn server_errors_on_a_share_of_requests_are_retried() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let proxy = Proxy::start(&lab().endpoint);
    proxy.add(
        Rule::new(
            "s3-503",
            |h: &Head| !h.is_dynamodb() && !h.is_sts(),
            Fault::s3_error(503, "SlowDown"),
        )
        .every(3),
    );
    proxy.add(
        Rule::new(
            "s3-500",
            |h: &Head| !h.is_dynamodb() && !h.is_sts(),
            Fault::s3_error(500, "InternalError"),
        )
        .every(4),
    );
    proxy.add(
        Rule::new(
            "ddb-500",
            |h: &Head| h.is_dynamodb(),
            Fault::dynamodb_error(500, "InternalServerError"),
        )
        .every(3),
    );
    let list = tfr_via(&sb, &proxy, &["list", "--json", "--no-cache"], &[])
        .ok()
        .json();
    assert_eq!(list["versions"].as_array().unwrap().len(), 2);
    // The faults hit every 3rd and 4th request, which a sequence of retries always gets past;
    // heartbeats in between would make the pattern random, so they beat rarely here.
    let report = tfr_via(
        &sb,
        &proxy,
        &[ROLLBACK, &["--json"]].concat(),
        &[("TFROLLBACK_HEARTBEAT", "600")],
    )
    .ok()
    .json();
    assert_eq!(report["status"], json!("rolled_back"));
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert!(proxy.hits("s3-503") > 0 && proxy.hits("s3-500") > 0 && proxy.hits("ddb-500") > 0);
    terraform_accepts_blue(&sb);
}

fn terraform_accepts_blue(sb: &Sandbox) {
    assert_eq!(
        sb.terraform(&["plan", "-input=false", "-detailed-exitcode"])
            .code,
        0
    );
}

#[test]
fn a_connection_cut_mid_body_is_read_again() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let proxy = Proxy::start(&lab().endpoint);
    let key = sb.key.clone();
    proxy.add(
        Rule::new(
            "cut",
            move |h: &Head| h.object("GET", &key),
            Fault::CutMidBody,
        )
        .times(3),
    );
    let list = tfr_via(&sb, &proxy, &["list", "--json"], &[]).ok().json();
    assert_eq!(list["versions"][0]["serial"], json!(2));
    assert_eq!(list["versions"][1]["outputs"]["active_slot"], json!("blue"));
    let d = tfr_via(&sb, &proxy, &["diff", "previous", "--json"], &[])
        .ok()
        .json();
    assert_eq!(d["to"]["serial"], json!(1));
    assert_eq!(proxy.hits("cut"), 3);
}

#[test]
fn an_answer_slower_than_the_timeout_fails_cleanly() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let proxy = Proxy::start(&lab().endpoint);
    proxy.add(Rule::new(
        "slow",
        |h: &Head| h.list_versions(),
        Fault::Delay(Duration::from_secs(3)),
    ));
    let started = Instant::now();
    let run = tfr_via(&sb, &proxy, ROLLBACK, &[("TFROLLBACK_READ_TIMEOUT", "1")]).code(1);
    assert!(started.elapsed() < Duration::from_mins(1));
    assert!(
        run.stderr.contains("timed out") || run.stderr.contains("could not reach S3"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
    assert!(journal(&sb).is_none());
    assert_eq!(
        sb.tfr(&["status", "--json"]).ok().json()["lock"],
        Value::Null
    );
}

#[test]
fn a_write_between_snapshot_and_restore_is_never_overwritten() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let gate = sb.dir.join("go");
    let failpoint = format!("write=wait:{}", gate.display());
    let mut cmd = sb.tfr_command(&["restore", "previous", "--auto-approve", "--no-plan"]);
    cmd.env("TFROLLBACK_FAILPOINT", &failpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_for_journal(&sb, "the restore step", |j| last_step(j) == "restore");
    std::thread::sleep(Duration::from_millis(500));
    // Someone ignores the lock and writes the state meanwhile (a next serial: other bytes).
    let mut state = sb.s3().get_json(&sb.key, None);
    state["serial"] = json!(state["serial"].as_u64().unwrap() + 1);
    let theirs = sb
        .s3()
        .put(&sb.key, &serde_json::to_vec_pretty(&state).unwrap());
    std::fs::write(&gate, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("changed since it was read"), "{stderr}");
    assert!(stderr.contains("nothing was overwritten"), "{stderr}");
    assert_eq!(
        sb.version_ids()[0],
        theirs,
        "their write is still the current version"
    );
    assert_eq!(
        sb.tfr(&["status", "--json"]).ok().json()["lock"],
        Value::Null
    );
}

#[test]
fn dynamodb_down_fails_before_anything_changes() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let proxy = Proxy::start(&lab().endpoint);
    proxy.add(Rule::new(
        "ddb-down",
        |h: &Head| h.is_dynamodb(),
        Fault::dynamodb_error(503, "ServiceUnavailable"),
    ));
    let run = tfr_via(&sb, &proxy, ROLLBACK, &[]).code(1);
    assert!(run.stderr.contains("DynamoDB"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
    assert!(journal(&sb).is_none());
    assert!(
        !sb.dir.join(".tfrollback/snapshots").exists()
            || std::fs::read_dir(sb.dir.join(".tfrollback/snapshots"))
                .unwrap()
                .next()
                .is_none()
    );
    // Unreachable altogether (nothing listening): the same.
    let run = sb
        .tfr_with(
            ROLLBACK,
            &[("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")],
        )
        .code(1);
    assert!(run.stderr.contains("DynamoDB"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
    assert_eq!(sb.current_output("active_slot"), json!("green"));
}

#[test]
fn a_full_disk_stops_the_rollback_before_any_change() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let local = sb.dir.join(".tfrollback");
    std::fs::create_dir_all(&local).unwrap();
    // A private mount namespace with a 16 KiB tmpfs (four pages) over .tfrollback: the
    // .gitignore and the journals fit, the snapshot (8.5 KiB: three pages) does not. The mount
    // goes away with the process.
    let bin = env!("CARGO_BIN_EXE_tfrollback");
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs '{}' && exec '{bin}' -C '{}' {}",
        local.display(),
        sb.dir.display(),
        ROLLBACK.join(" ")
    );
    let mut cmd = sb.command("unshare");
    cmd.args(["-m", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = cmd
        .output()
        .expect("unshare (util-linux) runs the rollback in its own mount namespace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(sb.version_ids(), before);
    assert_eq!(sb.current_output("active_slot"), json!("green"));
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null, "the lock was released");
    terraform_accepts(&sb);
}

/// The local journal of the working directory, as the operation that owns it last wrote it.
fn local_journal(sb: &Sandbox) -> Option<Value> {
    let text = std::fs::read_to_string(sb.dir.join(".tfrollback/journal.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn a_refused_second_run_leaves_the_running_ones_journal_alone() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let mut first = spawn(&sb, ROLLBACK, &[("TFROLLBACK_FAILPOINT", "apply=pause")]);
    let running = wait_for_journal(&sb, "the apply", |j| last_step(j) == "apply");
    let id = running["operation_id"].clone();

    // The same command again while the first one applies: refused, and nothing of the first
    // one's is touched, in S3 or in the working directory.
    let second = sb.tfr(ROLLBACK).code(5);
    assert!(
        second.stderr.contains("tfrollback recover"),
        "{}",
        second.stderr
    );
    let kept = journal(&sb).expect("the running operation's S3 journal is still there");
    assert_eq!(kept["operation_id"], id);
    assert_eq!(kept["finished"], json!(false));
    let local = local_journal(&sb).expect("the local journal is still there");
    assert_eq!(local["operation_id"], id, "{local:#}");
    assert_eq!(local["finished"], json!(false));

    // The first one dies. Re-running the rollback is refused and points to `recover`; the
    // journal that `recover` needs is still there, and so is the lock it can take over.
    first.kill().unwrap();
    first.wait().unwrap();
    let again = sb.tfr(ROLLBACK).code(5);
    assert!(
        again.stderr.contains("tfrollback recover"),
        "{}",
        again.stderr
    );
    assert_eq!(journal(&sb).expect("journal")["operation_id"], id);
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["unfinished"]["operation_id"], id, "{status:#}");
    assert_eq!(
        status["lock"]["ID"], running["lock"]["info"]["ID"],
        "{status:#}"
    );
    check_recoverable(&sb, &before);
    assert_eq!(sb.current_output("active_slot"), json!("green"));
}

#[test]
fn a_kill_after_the_apply_finished_keeps_the_state_terraform_wrote() {
    // Killed while releasing the lock (apply and verify done) or while verifying (apply done):
    // the state terraform wrote describes the infrastructure as it now is, so `recover` keeps
    // it and only finishes the release. Writing the snapshot back would make the state describe
    // infrastructure that no longer exists.
    for step in ["unlock", "verify"] {
        let sb = deployed(LockStyle::DynamoDb, Some("v2"));
        let before = sb.version_ids();
        let failpoint = format!("{step}=pause");
        let mut child = spawn(&sb, ROLLBACK, &[("TFROLLBACK_FAILPOINT", &failpoint)]);
        wait_for_journal(&sb, step, |j| last_step(j) == step);
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        let applied = sb.version_ids();
        assert_eq!(
            sb.current_output("active_slot"),
            json!("blue"),
            "killed at {step}"
        );
        check_recoverable(&sb, &before);
        assert_eq!(
            sb.version_ids(),
            applied,
            "killed at {step}: recover wrote no state over terraform's"
        );
        assert_eq!(
            sb.current_output("active_slot"),
            json!("blue"),
            "killed at {step}"
        );
    }
}

#[test]
fn a_plan_made_against_another_state_than_the_snapshot_is_never_applied() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let gate = sb.dir.parent().unwrap().join("go");
    let failpoint = format!("tfvars=wait:{}", gate.display());
    let mut cmd = sb.tfr_command(ROLLBACK);
    cmd.env("TFROLLBACK_FAILPOINT", &failpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let j = wait_for_journal(&sb, "the tfvars step", |j| last_step(j) == "tfvars");
    // Someone ignores the lock: a real terraform apply writes the state after the snapshot.
    sb.terraform(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-lock=false",
        "-var=active_slot=green",
        "-var=green_version=v3",
    ])
    .ok();
    let theirs = sb.version_ids()[0].clone();
    assert_ne!(json!(theirs), j["snapshot"]["version_id"]);
    std::fs::write(&gate, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("snapshot"), "{stderr}");
    assert_eq!(
        sb.version_ids()[0],
        theirs,
        "nothing was applied over their write"
    );
    assert_eq!(sb.current_output("green_version"), json!("v3"));
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null, "{status:#}");
    assert_eq!(status["unfinished"], Value::Null, "{status:#}");
}

#[test]
fn a_relative_target_that_moved_before_the_lock_stops_the_rollback() {
    for command in ["to", "restore"] {
        let sb = deployed(LockStyle::DynamoDb, Some("v2"));
        let gate = sb.dir.parent().unwrap().join("go");
        let failpoint = format!("lock=wait:{}", gate.display());
        let mut args = vec![command, "previous", "--auto-approve"];
        if command == "to" {
            args.extend(["--max-destroy", "10"]);
        } else {
            args.push("--no-plan");
        }
        let mut cmd = sb.tfr_command(&args);
        cmd.env("TFROLLBACK_FAILPOINT", &failpoint)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        // Held before taking the lock: a deploy lands meanwhile, so `previous` now names
        // another version than the one resolved in preflight.
        let deadline = Instant::now() + Duration::from_mins(2);
        while !sb.dir.join(".tfrollback/journals").is_dir() {
            assert!(
                Instant::now() < deadline,
                "{command} never reached the lock step"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sb.apply(&[("active_slot", "green"), ("green_version", "v3")]);
        let deployed_now = sb.version_ids();
        std::fs::write(&gate, b"").unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(stderr.contains("`previous` now"), "{command}: {stderr}");
        assert_eq!(
            sb.version_ids(),
            deployed_now,
            "{command}: nothing was written"
        );
        assert_eq!(sb.current_output("green_version"), json!("v3"));
        let status = sb.tfr(&["status", "--json"]).ok().json();
        assert_eq!(status["lock"], Value::Null, "{command}: {status:#}");
    }
}

#[test]
fn recover_never_takes_over_a_live_operation() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let gate = sb.dir.parent().unwrap().join("go");
    let failpoint = format!("confirm=wait:{}", gate.display());
    let mut cmd = sb.tfr_command(ROLLBACK);
    cmd.env("TFROLLBACK_FAILPOINT", &failpoint)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // Alive and waiting where a person would answer its prompt, well past three heartbeats.
    let running = wait_for_journal(&sb, "the confirm step", |j| last_step(j) == "confirm");
    std::thread::sleep(Duration::from_secs(5));
    let refused = sb.tfr(&["recover"]).code(5);
    assert!(
        refused.stderr.contains("still running"),
        "{}",
        refused.stderr
    );
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(
        status["lock"]["ID"], running["lock"]["info"]["ID"],
        "the live operation still holds its lock: {status:#}"
    );
    assert_eq!(
        status["unfinished"]["operation_id"],
        running["operation_id"]
    );
    std::fs::write(&gate, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null, "{status:#}");
    assert!(
        !sb.s3()
            .exists(&format!("{}.tfrollback/heartbeat.json", sb.key)),
        "the heartbeat ends with the operation"
    );
}

#[test]
fn a_journal_that_cannot_be_written_after_the_apply_never_reports_nothing_changed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let proxy = Proxy::start(&lab().endpoint);
    let broken = Arc::new(AtomicBool::new(false));
    let (flag, journal_key) = (
        Arc::clone(&broken),
        format!("{}.tfrollback/journal.json", sb.key),
    );
    proxy.add(Rule::new(
        "journal-down",
        move |h: &Head| flag.load(Ordering::SeqCst) && h.object("PUT", &journal_key),
        Fault::s3_error(500, "InternalError"),
    ));
    let mut args = ROLLBACK.to_vec();
    args.extend(["--var", "slow_seconds=3", "--json"]);
    let mut cmd = sb.tfr_command(&args);
    cmd.envs(through(&proxy))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    // While terraform applies, S3 stops taking journal writes.
    wait_for_journal(&sb, "the apply", |j| j["terraform_pid"].is_u64());
    broken.store(true, Ordering::SeqCst);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        proxy.hits("journal-down") > 0,
        "the fault was injected: {stderr}"
    );
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["status"], json!("unfinished"), "{report:#}");
    assert!(
        !serde_json::to_string(&report)
            .unwrap()
            .contains("nothing was changed"),
        "{report:#}"
    );
    // The apply happened and the lock is still held for recover.
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert!(
        !status["lock"].is_null(),
        "the lock in doubt is kept: {status:#}"
    );
    // S3 is back: recover keeps the state terraform wrote (the apply finished) and unlocks.
    broken.store(false, Ordering::SeqCst);
    check_recoverable(&sb, &before);
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
}

#[test]
fn a_lock_write_retried_after_a_lost_answer_is_still_ours() {
    for lock in [LockStyle::LockFile, LockStyle::DynamoDb] {
        let sb = deployed(lock, Some("v2"));
        let proxy = Proxy::start(&lab().endpoint);
        let lockfile = format!("{}.tflock", sb.key);
        proxy.add(
            Rule::new(
                "lost-lock-answer",
                move |h: &Head| h.object("PUT", &lockfile) || h.dynamodb("PutItem"),
                Fault::LoseAnswer,
            )
            .times(1),
        );
        // The lock write lands, its answer is lost, the SDK writes again and meets its own
        // lock: that is ours, not someone else's, and it is released at the end.
        let report = tfr_via(&sb, &proxy, &[ROLLBACK, &["--json"]].concat(), &[])
            .ok()
            .json();
        assert_eq!(proxy.hits("lost-lock-answer"), 1, "{lock:?}");
        assert_eq!(
            report["status"],
            json!("rolled_back"),
            "{lock:?}: {report:#}"
        );
        assert_eq!(sb.current_output("active_slot"), json!("blue"));
        let status = sb.tfr(&["status", "--json"]).ok().json();
        assert_eq!(
            status["lock"],
            Value::Null,
            "{lock:?}: the lock was not leaked"
        );
    }
}

#[test]
fn a_kill_during_the_apply_lets_terraform_persist_what_it_did() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let mut args = ROLLBACK.to_vec();
    args.extend(["--var", "slow_seconds=8"]);
    let mut child = spawn(&sb, &args, &[]);
    wait_for_journal(&sb, "the apply", |j| j["terraform_pid"].is_u64());
    // The router is replaced first; the warm-up then sleeps. Kill tfrollback meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    child.kill().unwrap();
    child.wait().unwrap();
    // terraform, interrupted by its parent's death, stops cleanly and persists the objects it
    // created; recover waits for it, puts the snapshot back and names what it left outside.
    let report = sb.recover_when_stopped().json();
    assert_eq!(report["status"], json!("recovered"), "{report:#}");
    let orphans: Vec<String> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["address"].as_str().unwrap().to_string())
        .collect();
    assert!(
        orphans.iter().any(|a| a == "terraform_data.router"),
        "the router terraform replaced before the kill is named: {report:#}"
    );
    assert_eq!(sb.current_output("active_slot"), json!("green"));
    let now = sb.version_ids();
    for id in &before {
        assert!(now.contains(id), "version {id} was lost");
    }
}

#[test]
fn recover_never_writes_one_states_snapshot_into_another() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    sb.terraform(&["workspace", "new", "staging"]).ok();
    sb.apply(&[("active_slot", "blue")]);
    sb.terraform(&["workspace", "select", "default"]).ok();
    let staging_key = format!("env:/staging/{}", sb.key);
    let staging_before = sb.s3().versions(&staging_key).len();
    // A rollback of default is killed mid-way: its journal sits in the working directory.
    let mut child = spawn(&sb, ROLLBACK, &[("TFROLLBACK_FAILPOINT", "apply=pause")]);
    wait_for_journal(&sb, "the apply", |j| last_step(j) == "apply");
    child.kill().unwrap();
    child.wait().unwrap();
    // recover for staging must not pick up default's journal.
    let run = sb
        .tfr(&["--workspace", "staging", "recover", "--json"])
        .ok();
    assert_eq!(
        run.json()["status"],
        json!("nothing_to_recover"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sb.s3().versions(&staging_key).len(),
        staging_before,
        "staging untouched"
    );
    assert_eq!(
        sb.s3().get_json(&staging_key, None)["outputs"]["active_slot"]["value"],
        json!("blue")
    );
    // default's own recover still finds it.
    check_recoverable(&sb, &sb.version_ids());
}

#[test]
fn recover_does_not_write_a_stale_snapshot_over_a_later_apply() {
    for (flag, expected) in [("--force-restore", "v2"), ("--keep-current", "v3")] {
        let sb = deployed(LockStyle::DynamoDb, Some("v2"));
        let mut child = spawn(&sb, ROLLBACK, &[("TFROLLBACK_FAILPOINT", "apply=pause")]);
        let j = wait_for_journal(&sb, "the apply", |j| last_step(j) == "apply");
        child.kill().unwrap();
        child.wait().unwrap();
        // Someone breaks the lock and deploys: the state moved on past the snapshot.
        let lock_id = j["lock"]["info"]["ID"].as_str().unwrap().to_string();
        sb.terraform(&["force-unlock", "-force", &lock_id]).ok();
        sb.apply(&[("active_slot", "green"), ("green_version", "v3")]);
        let theirs = sb.version_ids();
        std::thread::sleep(Duration::from_secs(4)); // the killed operation's heartbeat goes stale
        let refused = sb.tfr(&["recover"]).code(1);
        assert!(
            refused.stderr.contains("--force-restore"),
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("--keep-current"),
            "{}",
            refused.stderr
        );
        assert_eq!(sb.version_ids(), theirs, "their apply stays current");
        assert_eq!(sb.current_output("green_version"), json!("v3"));
        let status = sb.tfr(&["status", "--json"]).ok().json();
        assert_eq!(
            status["lock"],
            Value::Null,
            "recover let go of the lock it took: {status:#}"
        );
        assert!(
            !status["unfinished"].is_null(),
            "the journal waits for a decision"
        );
        // Said out loud: the snapshot goes back, or the later state stays.
        sb.tfr(&["recover", flag]).ok();
        assert_eq!(
            sb.current_output("green_version"),
            json!(expected),
            "{flag}"
        );
        let status = sb.tfr(&["status", "--json"]).ok().json();
        assert_eq!(status["unfinished"], Value::Null, "{flag}: {status:#}");
        assert_eq!(status["lock"], Value::Null, "{flag}: {status:#}");
    }
}

#[test]
fn a_restore_whose_digest_cannot_be_written_keeps_the_lock_for_recover() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let proxy = Proxy::start(&lab().endpoint);
    // The first PutItem is the lock; every one after it (the digest) fails.
    let seen = Arc::new(AtomicU32::new(0));
    proxy.add(Rule::new(
        "digest-down",
        move |h: &Head| h.dynamodb("PutItem") && seen.fetch_add(1, Ordering::SeqCst) >= 1,
        Fault::dynamodb_error(500, "InternalServerError"),
    ));
    let run = tfr_via(
        &sb,
        &proxy,
        &[
            "restore",
            "previous",
            "--auto-approve",
            "--no-plan",
            "--json",
        ],
        &[],
    )
    .code(4);
    assert!(proxy.hits("digest-down") > 0);
    let report = run.json();
    assert_eq!(report["status"], json!("unfinished"), "{report:#}");
    assert!(
        !serde_json::to_string(&report)
            .unwrap()
            .contains("nothing was changed"),
        "{report:#}"
    );
    // The state was written; the lock stays for recover, which sets the digest.
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert!(!status["lock"].is_null(), "{status:#}");
    check_recoverable(&sb, &before);
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
}
