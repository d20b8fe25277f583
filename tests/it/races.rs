//! Races, each repeated 20 times: two rollbacks at once, terraform during a rollback, a
//! rollback during terraform. Exactly one writer wins; nobody's lock is ever broken.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{LockStyle, Sandbox, deployed, interrupt_and_wait};

const REPEAT: usize = 20;

fn lock_holder(sb: &Sandbox) -> Value {
    sb.tfr(&["status", "--json"]).ok().json()["lock"].clone()
}

#[test]
fn two_rollbacks_at_once_one_proceeds_the_other_exits_5() {
    for (round, lock) in (0..REPEAT).map(|i| {
        (
            i,
            if i % 2 == 0 {
                LockStyle::DynamoDb
            } else {
                LockStyle::LockFile
            },
        )
    }) {
        let sb = deployed(lock, None);
        let before = sb.current_output("active_slot");
        let spawn = || {
            sb.tfr_command(&[
                "to",
                "previous",
                "--auto-approve",
                "--max-destroy",
                "10",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = [a.status.code(), b.status.code()];
        codes.sort();
        assert_eq!(
            codes,
            [Some(0), Some(5)],
            "round {round}:\n{}\n{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        let loser = if a.status.code() == Some(5) { &a } else { &b };
        assert!(
            String::from_utf8_lossy(&loser.stderr).contains("tfrollback to"),
            "the holder is named"
        );
        assert_ne!(
            sb.current_output("active_slot"),
            before,
            "round {round}: rolled back exactly once"
        );
        assert_eq!(lock_holder(&sb), Value::Null);
    }
}

#[test]
fn terraform_apply_during_a_rollback_is_refused_by_the_lock() {
    for lock in [LockStyle::DynamoDb, LockStyle::LockFile] {
        let sb = deployed(lock, None);
        let mut rollback = sb
            .tfr_command(&["to", "previous", "--auto-approve", "--max-destroy", "10"])
            .env("TFROLLBACK_FAILPOINT", "plan=pause")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_mins(1);
        while lock_holder(&sb).is_null() {
            assert!(
                Instant::now() < deadline,
                "the rollback never took the lock"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for _ in 0..REPEAT / 2 {
            let run = sb.terraform(&[
                "apply",
                "-auto-approve",
                "-input=false",
                "-no-color",
                "-var=active_slot=blue",
            ]);
            assert_eq!(run.code, 1);
            assert!(
                run.stderr.contains("Error acquiring the state lock"),
                "{}",
                run.stderr
            );
            assert!(
                run.stderr.contains("tfrollback to"),
                "terraform shows who holds it: {}",
                run.stderr
            );
        }
        assert_eq!(
            sb.current_output("active_slot"),
            json!("green"),
            "terraform changed nothing"
        );
        rollback.kill().unwrap();
        rollback.wait().unwrap();
        // recover takes over once the killed operation's heartbeat is stale (3 s in the lab).
        sb.recover_when_stopped();
        assert_eq!(lock_holder(&sb), Value::Null);
    }
}

#[test]
fn a_rollback_while_terraform_holds_the_lock_exits_5_or_waits() {
    let sb = deployed(LockStyle::DynamoDb, None);
    let mut apply = sb.command("terraform");
    apply
        .args([
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var=active_slot=blue",
            "-var=slow_seconds=40",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut apply = apply.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    while lock_holder(&sb).is_null() {
        assert!(Instant::now() < deadline, "terraform never took the lock");
        std::thread::sleep(Duration::from_millis(100));
    }
    let versions = sb.s3().versions(&sb.key).len();
    for _ in 0..REPEAT {
        let run = sb
            .tfr(&["to", "previous", "--auto-approve", "--max-destroy", "10"])
            .code(5);
        assert!(run.stderr.contains("OperationTypeApply"), "{}", run.stderr);
    }
    assert_eq!(sb.s3().versions(&sb.key).len(), versions, "nothing written");
    assert!(
        !lock_holder(&sb).is_null(),
        "terraform's lock was never broken"
    );
    // With --lock-timeout the rollback waits for the apply (which flips to blue), then takes
    // the state back to the green deploy it was started from.
    let green = sb.s3().versions(&sb.key)[0].version_id.clone();
    let run = sb
        .tfr(&[
            "to",
            &green,
            "--auto-approve",
            "--max-destroy",
            "10",
            "--lock-timeout",
            "120s",
            "--json",
        ])
        .ok();
    assert!(
        run.stderr.contains("waiting for the state lock"),
        "{}",
        run.stderr
    );
    assert!(apply.wait().unwrap().success());
    assert_eq!(run.json()["status"], json!("rolled_back"));
    assert_eq!(sb.current_output("active_slot"), json!("green"));
    assert_eq!(lock_holder(&sb), Value::Null);
}

#[test]
fn ctrl_c_while_waiting_for_the_lock_stops_at_once_and_changes_nothing() {
    let sb = deployed(LockStyle::DynamoDb, None);
    // Someone else holds the lock (a lock item terraform itself would show).
    let table = sb.table.clone().unwrap();
    let info = r#"{"ID":"11111111-2222-3333-4444-555555555555","Operation":"OperationTypeApply","Info":"","Who":"ci@runner","Version":"1.11.4","Created":"2026-12-01T00:00:00Z","Path":""}"#;
    sb.dynamodb().put(&table, &sb.lock_id(), &[("Info", info)]);
    let versions = sb.version_ids();
    let mut child = sb
        .tfr_command(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--lock-timeout",
            "10m",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waiting for the lock: the pending journal is there and the lock is still someone else's.
    let deadline = Instant::now() + Duration::from_mins(1);
    while !sb.dir.join(".tfrollback/journals").is_dir() {
        assert!(
            Instant::now() < deadline,
            "it never started to wait for the lock"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let interrupted = Instant::now();
    let status = interrupt_and_wait(
        &mut child,
        Duration::from_secs(30),
        "Ctrl-C was ignored while waiting for the lock",
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(interrupted.elapsed() < Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(sb.version_ids(), versions, "nothing was written");
    assert_eq!(
        lock_holder(&sb)["ID"],
        json!("11111111-2222-3333-4444-555555555555"),
        "their lock is untouched"
    );
}

#[test]
fn ctrl_c_at_the_confirmation_prompt_stops_at_once_and_changes_nothing() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let sb = deployed(LockStyle::DynamoDb, None);
    let versions = sb.version_ids();
    // A real terminal (script(1) gives tfrollback a pty) and no CI variables: it asks.
    let line = format!(
        "exec '{}' -C '{}' to previous --max-destroy 10",
        env!("CARGO_BIN_EXE_tfrollback"),
        sb.dir.display()
    );
    let mut script = sb
        .command("script")
        .args(["-qfec", &line, "/dev/null"])
        .env_remove("TF_IN_AUTOMATION")
        .env_remove("CI")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) from util-linux runs tfrollback on a pty");
    let deadline = Instant::now() + Duration::from_mins(1);
    // At the prompt: the journal records the confirm step, and it holds the lock.
    let journal = format!("{}.tfrollback/journal.json", sb.key);
    loop {
        if sb.s3().exists(&journal)
            && sb.s3().get_json(&journal, None)["steps"]
                .as_array()
                .and_then(|s| s.last().cloned())
                .is_some_and(|s| s["name"] == json!("confirm"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "it never reached its prompt");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // tfrollback is script's child on the pty.
    let children = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        script.id(),
        script.id()
    ))
    .unwrap();
    let pid: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sb.s3().exists(&journal) || !lock_holder(&sb).is_null() {
        assert!(
            Instant::now() < deadline,
            "Ctrl-C at the prompt was ignored: the rollback still waits for an answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(script.stdin.take());
    let out = script.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(screen.contains("interrupted"), "{screen}");
    assert_eq!(sb.version_ids(), versions, "nothing was written");
    assert_eq!(sb.current_output("active_slot"), json!("green"));
}
