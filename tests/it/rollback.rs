//! `tfrollback to`, `status` and `recover` against real terraform and a real S3 server: every
//! test checks what is in S3 (versions, serial, lineage, lock, digest) and what terraform makes
//! of it afterwards, not only the exit code.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{LockStyle, Sandbox, deployed, find_on_path, write_executable};

/// The router, warm-up and health check are replaced on every flip in the fixture.
const ROLLBACK: &[&str] = &[
    "to",
    "previous",
    "--auto-approve",
    "--max-destroy",
    "10",
    "--json",
];

/// A plain `terraform plan -detailed-exitcode` with these variables.
fn plain_plan(sb: &Sandbox, vars: &[(&str, &str)]) -> i32 {
    let mut args = vec![
        "plan".to_string(),
        "-input=false".into(),
        "-detailed-exitcode".into(),
    ];
    args.extend(vars.iter().map(|(k, v)| format!("-var={k}={v}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = sb.terraform(&args);
    assert!(
        !run.stderr.contains("does not have the expected content"),
        "terraform refused the state: {}",
        run.stderr
    );
    run.code
}

#[test]
fn a_blue_green_flip_goes_back_and_forth_and_terraform_converges() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let lineage = sb.current_state()["lineage"].clone();
    let serial = sb.current_state()["serial"].as_u64().unwrap();

    let report = sb.tfr(ROLLBACK).ok().json();
    assert_eq!(report["status"], json!("rolled_back"));
    assert_eq!(report["verified"], json!(true));
    assert_eq!(report["target"]["version_id"], json!(before[1]));
    assert_eq!(report["snapshot"]["version_id"], json!(before[0]));
    let steps: Vec<_> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        steps,
        [
            "preflight",
            "lock",
            "snapshot",
            "tfvars",
            "plan",
            "confirm",
            "apply",
            "verify",
            "unlock"
        ]
    );

    let after = sb.current_state();
    assert_eq!(after["outputs"]["active_slot"]["value"], json!("blue"));
    assert_eq!(after["outputs"]["green_version"]["value"], json!("v1"));
    assert_eq!(after["lineage"], lineage);
    assert!(after["serial"].as_u64().unwrap() > serial);
    assert_eq!(report["new_version_id"], json!(sb.version_ids()[0]));
    for id in &before {
        assert!(sb.version_ids().contains(id), "version {id} was lost");
    }
    sb.assert_unlocked();
    sb.assert_digest_matches();
    // The defaults are blue/v1: the rolled-back infrastructure is what a plain plan expects.
    assert_eq!(plain_plan(&sb, &[]), 0);
    // The var file says what was applied.
    let vars: Value = serde_json::from_str(
        &std::fs::read_to_string(sb.dir.join("tfrollback.tfvars.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(vars["active_slot"], json!("blue"));
    assert!(vars.get("db_password").is_none());

    // And back: `previous` is now the green deploy.
    let report = sb.tfr(ROLLBACK).ok().json();
    assert_eq!(report["status"], json!("rolled_back"));
    assert_eq!(
        sb.current_state()["outputs"]["active_slot"]["value"],
        json!("green")
    );
    assert_eq!(
        plain_plan(&sb, &[("active_slot", "green"), ("green_version", "v2")]),
        0
    );
    sb.assert_unlocked();
    sb.assert_digest_matches();
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null);
    assert_eq!(status["unfinished"], Value::Null);
}

#[test]
fn a_lock_file_backend_is_locked_and_released_the_same_way() {
    for style in [LockStyle::LockFile, LockStyle::Both] {
        let sb = deployed(style, Some("v2"));
        let report = sb.tfr(ROLLBACK).ok().json();
        assert_eq!(report["status"], json!("rolled_back"));
        assert_eq!(
            sb.current_state()["outputs"]["active_slot"]["value"],
            json!("blue")
        );
        sb.assert_unlocked();
        sb.assert_digest_matches();
        // Each lock leaves a .tflock version behind in a versioned bucket: ours was there.
        assert!(sb.s3().versions(&format!("{}.tflock", sb.key)).len() >= 6);
        assert_eq!(plain_plan(&sb, &[]), 0);
    }
}

#[test]
fn a_failing_apply_restores_the_snapshot_and_terraform_still_works() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let snapshot_body = sb.s3().get(&sb.key, None);
    let snapshot: Value = serde_json::from_slice(&snapshot_body).unwrap();
    let before = sb.version_ids();

    // The health check fails only when the rollback flips to blue; --var passes through.
    let mut args = ROLLBACK.to_vec();
    args.extend(["--var", "fail_on_slot=blue"]);
    let run = sb.tfr(&args).code(3);
    let report = run.json();
    assert_eq!(report["status"], json!("restored"));
    assert!(
        report["error"].as_str().unwrap().contains("exit status 3"),
        "{report:#}"
    );
    let steps: Vec<_> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        steps.contains(&("apply".into(), "failed".into())),
        "{steps:?}"
    );
    assert!(
        steps.contains(&("restore".into(), "ok".into())),
        "{steps:?}"
    );

    // The failed apply wrote a version; the restore wrote the snapshot over it.
    let versions = sb.version_ids();
    assert_eq!(versions.len(), before.len() + 2, "failed apply + restore");
    let restored = sb.current_state();
    let failed: Value = serde_json::from_slice(&sb.s3().get(&sb.key, Some(&versions[1]))).unwrap();
    assert_eq!(
        restored["serial"].as_u64().unwrap(),
        failed["serial"].as_u64().unwrap() + 1
    );
    assert_eq!(restored["lineage"], snapshot["lineage"]);
    let mut same = restored.clone();
    same["serial"] = snapshot["serial"].clone();
    assert_eq!(
        same, snapshot,
        "the restored state is the snapshot but for its serial"
    );
    assert_eq!(report["new_version_id"], json!(versions[0]));
    // The failed apply replaced the router: the new object is reported, with its id.
    let router_now = failed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "router")
        .unwrap()["instances"][0]["attributes"]["id"]
        .clone();
    let orphans = report["orphans"].as_array().unwrap();
    assert!(
        orphans
            .iter()
            .any(|o| o["address"] == "terraform_data.router" && o["id"] == router_now),
        "{report:#}"
    );
    sb.assert_unlocked();
    sb.assert_digest_matches();
    // terraform reads the restored state without a checksum error; it sees drift, not errors.
    assert_ne!(
        plain_plan(&sb, &[("active_slot", "green"), ("green_version", "v2")]),
        1
    );
    // Nothing unfinished.
    assert_eq!(
        sb.tfr(&["status", "--json"]).ok().json()["unfinished"],
        Value::Null
    );
}

#[test]
fn someone_elses_lock_gives_exit_5_and_is_never_broken() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let table = sb.table.clone().unwrap();
    let info = r#"{"ID":"5a1f0c3e-0000-4000-8000-000000000001","Operation":"OperationTypeApply","Info":"","Who":"alice@ci-runner-7","Version":"1.11.4","Created":"2026-11-22T03:00:00.000000000Z","Path":"x"}"#;
    sb.dynamodb().put(&table, &sb.lock_id(), &[("Info", info)]);
    let before = sb.version_ids();

    let run = sb.tfr(ROLLBACK).code(5);
    assert!(run.stderr.contains("alice@ci-runner-7"), "{}", run.stderr);
    assert!(run.stderr.contains("OperationTypeApply"), "{}", run.stderr);
    assert!(run.stderr.contains("2026-11-22T03:00:00"), "{}", run.stderr);
    assert!(run.stderr.contains("--lock-timeout"), "{}", run.stderr);
    assert_eq!(
        sb.dynamodb().get(&table, &sb.lock_id()).unwrap()["Info"],
        info,
        "the lock is untouched"
    );
    assert_eq!(sb.version_ids(), before, "nothing was written");
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"]["Who"], json!("alice@ci-runner-7"));
    assert_eq!(status["unfinished"], Value::Null);
    // recover never releases someone else's lock.
    sb.tfr(&["recover"]).ok();
    assert!(sb.dynamodb().get(&table, &sb.lock_id()).is_some());

    // With --lock-timeout, tfrollback waits for the holder to finish.
    let releaser = {
        let dynamo = sb.dynamodb();
        let lock_id = sb.lock_id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            dynamo.delete(&table, &lock_id);
        })
    };
    let mut args = ROLLBACK.to_vec();
    args.extend(["--lock-timeout", "30s"]);
    let run = sb.tfr(&args).ok();
    releaser.join().unwrap();
    assert!(
        run.stderr
            .contains("waiting for the state lock held by alice@ci-runner-7"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sb.current_state()["outputs"]["active_slot"]["value"],
        json!("blue")
    );
    sb.assert_unlocked();
}

#[test]
fn a_lock_file_held_by_someone_else_gives_exit_5() {
    let sb = deployed(LockStyle::LockFile, Some("v2"));
    let lockfile = format!("{}.tflock", sb.key);
    let info = br#"{"ID":"77","Operation":"OperationTypePlan","Info":"","Who":"bob@laptop","Version":"1.11.4","Created":"2026-11-22T02:00:00Z","Path":"x"}"#;
    sb.s3().put(&lockfile, info);
    let before = sb.version_ids();
    let run = sb.tfr(ROLLBACK).code(5);
    assert!(run.stderr.contains("bob@laptop"), "{}", run.stderr);
    assert_eq!(
        sb.s3().get(&lockfile, None),
        info.to_vec(),
        "the lock file is untouched"
    );
    assert_eq!(sb.version_ids(), before);
}

#[test]
fn dry_run_plans_and_changes_nothing() {
    let sb = deployed(LockStyle::Both, Some("v2"));
    let before = sb.version_ids();
    let report = sb
        .tfr(&["to", "previous", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(report["status"], json!("planned"));
    assert!(
        report["plan"]["change"].as_u64().unwrap() + report["plan"]["add"].as_u64().unwrap() > 0
    );
    assert_eq!(sb.version_ids(), before);
    assert_eq!(
        sb.current_state()["outputs"]["active_slot"]["value"],
        json!("green")
    );
    sb.assert_unlocked();
    assert_eq!(
        sb.tfr(&["status", "--json"]).ok().json()["unfinished"],
        Value::Null
    );
}

#[test]
fn without_a_terminal_or_auto_approve_it_fails_at_once() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let started = Instant::now();
    let run = sb.tfr(&["to", "previous"]).code(2);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(run.stderr.contains("--auto-approve"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
    sb.assert_unlocked();
    assert!(
        !sb.dir.join(".tfrollback").exists(),
        "no journal, no snapshot"
    );
}

#[test]
fn the_destroy_guard_refuses_unexpected_destruction() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let run = sb.tfr(&["to", "previous", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("--max-destroy"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
    sb.assert_unlocked();
}

#[test]
fn sigkill_mid_apply_is_recoverable() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let snapshot: Value = sb.current_state();
    let before = sb.version_ids();
    let journal_key = format!("{}.tfrollback/journal.json", sb.key);

    let mut args = ROLLBACK.to_vec();
    args.extend(["--var", "slow_seconds=30"]);
    let mut child = sb
        .tfr_command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the journal says the apply runs terraform.
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        assert!(Instant::now() < deadline, "the apply never started");
        if sb.s3().exists(&journal_key) {
            let journal = sb.s3().get_json(&journal_key, None);
            if journal["terraform_pid"].is_u64() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap();
    child.wait().unwrap();

    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(
        status["unfinished"]["steps"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["name"],
        json!("apply")
    );
    assert!(
        status["lock"]["Operation"]
            .as_str()
            .unwrap()
            .starts_with("tfrollback to")
    );

    // terraform was interrupted when tfrollback died; recover waits for it to be gone.
    let deadline = Instant::now() + Duration::from_mins(2);
    let report = loop {
        let run = sb.tfr(&["recover", "--json"]);
        if run.code == 0 {
            break run.json();
        }
        assert!(run.stderr.contains("still running"), "{}", run.stderr);
        assert!(Instant::now() < deadline, "terraform never stopped");
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(report["status"], json!("recovered"));
    let after = sb.current_state();
    assert_eq!(
        after["outputs"]["active_slot"]["value"],
        snapshot["outputs"]["active_slot"]["value"]
    );
    assert_eq!(after["lineage"], snapshot["lineage"]);
    for id in &before {
        assert!(sb.version_ids().contains(id), "version {id} was lost");
    }
    sb.assert_unlocked();
    sb.assert_digest_matches();
    assert_ne!(
        plain_plan(&sb, &[("active_slot", "green"), ("green_version", "v2")]),
        1
    );
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["unfinished"], Value::Null);
    assert_eq!(status["lock"], Value::Null);
}

#[test]
fn a_target_from_a_newer_terraform_is_refused() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    // Deliberately altered: a state claiming a terraform release from the future.
    let mut newer: Value = sb.s3().get_json(&sb.key, Some(&sb.version_ids()[1]));
    newer["terraform_version"] = json!("9.9.9");
    sb.plant_previous(&serde_json::to_vec_pretty(&newer).unwrap());
    let before = sb.version_ids();
    let run = sb.tfr(ROLLBACK).code(1);
    assert!(run.stderr.contains("terraform 9.9.9"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
    sb.assert_unlocked();
}

#[test]
fn a_target_from_another_lineage_is_refused() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let other = Sandbox::new("bluegreen");
    other.apply(&[("active_slot", "blue")]);
    sb.plant_previous(&other.s3().get(&other.key, None));
    let before = sb.version_ids();
    let run = sb.tfr(ROLLBACK).code(1);
    assert!(run.stderr.contains("lineage"), "{}", run.stderr);
    assert!(
        run.stderr.contains("--allow-lineage-change"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.version_ids(), before);
    // The flag lets it through (dry run here).
    let planned = sb
        .tfr(&[
            "to",
            "previous",
            "--dry-run",
            "--allow-lineage-change",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(planned["status"], json!("planned"));
}

#[test]
fn only_slot_flips_traffic_and_nothing_else() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let mut args = ROLLBACK.to_vec();
    args.push("--only-slot");
    // The green release stays what the user passes; only the slot is rolled back.
    args.extend(["--var", "green_version=v2"]);
    let report = sb.tfr(&args).ok().json();
    assert_eq!(report["status"], json!("rolled_back"));
    let vars: Value = serde_json::from_str(
        &std::fs::read_to_string(sb.dir.join("tfrollback.tfvars.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(vars, json!({"active_slot": "blue"}));
    let after = sb.current_state();
    assert_eq!(after["outputs"]["active_slot"]["value"], json!("blue"));
    assert_eq!(after["outputs"]["green_version"]["value"], json!("v2"));
    assert_eq!(plain_plan(&sb, &[("green_version", "v2")]), 0);
}

#[test]
fn user_var_files_come_first_and_rollback_values_win() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let user = sb.dir.join("prod.tfvars");
    std::fs::write(&user, "active_slot = \"green\"\ninstance_count = 2\n").unwrap();
    let out = sb.dir.join("rollback.auto.json");
    let user_arg = user.display().to_string();
    let out_arg = out.display().to_string();
    let mut args = ROLLBACK.to_vec();
    args.extend(["--var-file", &user_arg, "--var-file-out", &out_arg]);
    let report = sb.tfr(&args).ok().json();
    assert_eq!(report["var_file"], json!(out_arg));
    assert!(out.is_file());
    assert_eq!(
        sb.current_state()["outputs"]["active_slot"]["value"],
        json!("blue")
    );

    let missing = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--var-file",
            "nope.tfvars",
        ])
        .code(2);
    assert!(missing.stderr.contains("nope.tfvars"), "{}", missing.stderr);
}

/// A directory with a `terraform` that runs the real one but exits 0 when it exits 2, as
/// hashicorp/setup-terraform's wrapper does (and prints a line of its own on stdout).
fn swallowing_wrapper(sb: &Sandbox, real_name: &str) -> std::path::PathBuf {
    let dir = sb.dir.parent().unwrap().join("wrapper");
    std::fs::create_dir_all(&dir).unwrap();
    let real = find_on_path("terraform").expect("terraform on PATH");
    std::os::unix::fs::symlink(&real, dir.join(real_name)).ok();
    let script = format!(
        "#!/bin/sh\n\"{}\" \"$@\"\ncode=$?\necho '::debug::wrapped'\nif [ $code -eq 2 ]; then exit 0; fi\nexit $code\n",
        real.display()
    );
    write_executable(&dir.join("terraform"), &script);
    dir
}

#[test]
fn a_wrapper_that_swallows_exit_code_2_does_not_fool_the_rollback() {
    // Any wrapper: changes are read from the saved plan, not from the exit code.
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let dir = swallowing_wrapper(&sb, "terraform-real");
    let wrapper = dir.join("terraform").display().to_string();
    let mut args = ROLLBACK.to_vec();
    args.extend(["--terraform-bin", &wrapper]);
    let report = sb.tfr(&args).ok().json();
    assert_eq!(report["status"], json!("rolled_back"), "{report:#}");
    assert_eq!(
        sb.current_state()["outputs"]["active_slot"]["value"],
        json!("blue")
    );

    // setup-terraform's own layout: the real binary is TERRAFORM_CLI_PATH/terraform-bin.
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let dir = swallowing_wrapper(&sb, "terraform-bin");
    let wrapper = dir.join("terraform").display().to_string();
    let cli_path = dir.display().to_string();
    let mut args = ROLLBACK.to_vec();
    args.extend(["--terraform-bin", &wrapper, "-v"]);
    let run = sb
        .tfr_with(&args, &[("TERRAFORM_CLI_PATH", &cli_path)])
        .ok();
    assert_eq!(run.json()["status"], json!("rolled_back"));
    assert!(
        run.stderr.contains("instead of setup-terraform's wrapper"),
        "{}",
        run.stderr
    );
}

#[test]
fn last_good_when_the_current_version_is_the_good_one_changes_nothing() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    sb.tfr(&["mark", "current"]).ok();
    let before = sb.version_ids();
    let report = sb.dir.join("rollback.md");
    let summary = sb.dir.join("summary.md");
    let (r, s) = (report.display().to_string(), summary.display().to_string());
    let run = sb
        .tfr_with(
            &["to", "last-good", "--auto-approve", "--report", &r],
            &[("GITHUB_STEP_SUMMARY", &s)],
        )
        .ok();
    assert!(
        run.stderr.contains("nothing to roll back"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.version_ids(), before);
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("nothing to do")
    );
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("nothing to roll back")
    );
    let history = sb.tfr(&["history", "--json"]).ok().json();
    assert_eq!(history["records"][0]["result"], json!("already_at_target"));
}

#[test]
fn a_refused_rollback_still_writes_its_report() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let report = sb.dir.join("rollback.md");
    let summary = sb.dir.join("summary.md");
    let (r, s) = (report.display().to_string(), summary.display().to_string());
    let run = sb
        .tfr_with(
            &["to", "last-good", "--auto-approve", "--report", &r],
            &[("GITHUB_STEP_SUMMARY", &s)],
        )
        .code(1);
    assert!(run.stderr.contains("tfrollback mark"), "{}", run.stderr);
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(
        md.contains("failed, nothing was changed") && md.contains("| Exit code | 1 |"),
        "{md}"
    );
    assert!(
        md.contains("tfrollback mark"),
        "the hint is in the report: {md}"
    );
    assert_eq!(std::fs::read_to_string(&summary).unwrap().trim(), md.trim());
}
