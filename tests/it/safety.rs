//! Interrupted, concurrent and mistaken rollbacks: each case is one a tired person or a retried
//! CI job really runs into, reproduced with real terraform and the local S3 server, and the
//! check is on the state in S3 and on terraform afterwards, never only on an exit code.

use serde_json::json;

use crate::support::{LockStyle, Sandbox, deployed};

/// A 256-bit SSE-C key, base64 (moto accepts SSE-C headers and ignores them).
const SSE_C_KEY: &str = "dGZyb2xsYmFjay1zc2UtYy1rZXktMDEyMzQ1Njc4OWE=";

#[test]
fn the_most_verbose_logs_never_show_an_sse_c_key_or_a_signature() {
    // SSE-C applies only with `encrypt = true` (as in terraform); the key comes from the
    // environment, so every read tfrollback makes carries it.
    let sb = Sandbox::builder("bluegreen")
        .lock(LockStyle::DynamoDb)
        .setting("encrypt", "true")
        .build();
    sb.deploy(Some("v2"));
    let run = sb
        .tfr_with(
            &["-vvv", "list", "--no-cache"],
            &[("AWS_SSE_CUSTOMER_KEY", SSE_C_KEY)],
        )
        .ok();
    assert!(
        run.stderr.contains("resolved settings"),
        "-vvv logs tfrollback's own debug lines: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(SSE_C_KEY),
        "the SSE-C key reached the log:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .to_lowercase()
            .contains("x-amz-server-side-encryption-customer-key"),
        "SSE-C request headers reached the log"
    );
    assert!(
        !run.stderr.contains("Signature="),
        "a request signature reached the log"
    );
    // The listing itself worked: every version is there.
    let listed = sb.tfr(&["list", "--json"]).ok().json();
    assert_eq!(
        listed["versions"].as_array().map(Vec::len),
        Some(sb.version_ids().len())
    );
    assert_eq!(sb.current_output("active_slot"), json!("green"));
}

#[test]
fn an_empty_workspace_key_prefix_finds_workspaces_where_terraform_keeps_them() {
    let sb = Sandbox::builder("bluegreen")
        .lock(LockStyle::LockFile)
        .setting("workspace_key_prefix", "")
        .build();
    sb.apply(&[("active_slot", "blue")]);
    sb.terraform(&["workspace", "new", "staging"]).ok();
    sb.deploy(Some("v2"));
    // terraform joins prefix, workspace and key as paths: no prefix, no leading slash.
    let staging_key = format!("staging/{}", sb.key);
    let staging_versions = sb.s3().versions(&staging_key);
    assert!(
        staging_versions.len() >= 3,
        "terraform wrote staging at {staging_key}"
    );

    let listed = sb
        .tfr(&["--workspace", "staging", "list", "--json"])
        .ok()
        .json();
    assert_eq!(listed["key"], json!(staging_key));
    assert_eq!(
        listed["versions"].as_array().map(Vec::len),
        Some(staging_versions.len())
    );
    let default_before = sb.version_ids();
    sb.tfr(&[
        "--workspace",
        "staging",
        "to",
        "previous",
        "--auto-approve",
        "--max-destroy",
        "10",
    ])
    .ok();
    let staging_state = sb.s3().get_json(&staging_key, None);
    assert_eq!(
        staging_state["outputs"]["active_slot"]["value"],
        json!("blue"),
        "staging is back on blue"
    );
    assert_eq!(sb.version_ids(), default_before, "default was not touched");
}

#[test]
fn a_kms_key_applies_only_with_encrypt_true_as_terraform_does() {
    for (encrypt, expected) in [(false, None), (true, Some("aws:kms"))] {
        let mut builder = Sandbox::builder("bluegreen")
            .lock(LockStyle::DynamoDb)
            .setting("kms_key_id", "alias/tfr-state");
        if encrypt {
            builder = builder.setting("encrypt", "true");
        }
        let sb = builder.build();
        sb.deploy(Some("v2"));
        let terraform_wrote = sb.s3().encryption(&sb.key, None);
        assert_eq!(
            terraform_wrote.as_deref(),
            expected,
            "encrypt = {encrypt}: terraform"
        );
        sb.tfr(&["restore", "previous", "--auto-approve", "--no-plan"])
            .ok();
        assert_eq!(sb.current_output("active_slot"), json!("blue"));
        assert_eq!(
            sb.s3().encryption(&sb.key, None),
            terraform_wrote,
            "encrypt = {encrypt}: the restored state is encrypted as terraform encrypts it"
        );
    }
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn local_files_stay_private_and_out_of_the_users_repository() {
    let sb = Sandbox::new("bluegreen");
    sb.deploy(None);
    let git = |args: &[&str]| {
        let out = sb.command("git").args(args).output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    git(&["init", "-q"]);

    // Under umask 000, held at the confirm step: the plan terraform wrote is private too.
    let go_on = sb.dir.parent().unwrap().join("go-on");
    let script = format!(
        "umask 000 && exec '{}' -C '{}' to previous --auto-approve --max-destroy 10",
        env!("CARGO_BIN_EXE_tfrollback"),
        sb.dir.display()
    );
    let mut child = sb
        .command("sh")
        .args(["-c", &script])
        .env(
            "TFROLLBACK_FAILPOINT",
            format!("confirm=wait:{}", go_on.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tfrollback");
    let local = sb.dir.join(".tfrollback");
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    let plan = loop {
        if let Some(plan) = files_in(&local.join("plans")).into_iter().next() {
            break plan;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no plan file appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        mode(&plan),
        0o600,
        "the saved plan holds the state in clear"
    );
    let snapshots = files_in(&local.join("snapshots"));
    assert_eq!(snapshots.len(), 1);
    assert_eq!(mode(&snapshots[0]), 0o600);
    let untracked = git(&["status", "--porcelain", "--untracked-files=all"]);
    assert!(
        !untracked.contains(".tfrollback"),
        "snapshots, plans and journals stay out of git status:\n{untracked}"
    );
    std::fs::write(&go_on, "").unwrap();
    assert!(child.wait().unwrap().success());

    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_eq!(
        files_in(&local.join("snapshots")),
        Vec::<std::path::PathBuf>::new(),
        "a cleanly finished rollback leaves no snapshot behind (S3 keeps the version)"
    );
    assert_eq!(
        mode(&sb.dir.join("tfrollback.tfvars.json")),
        0o600,
        "the rollback var file is private even without a sensitive value"
    );
    let untracked = git(&["status", "--porcelain", "--untracked-files=all"]);
    assert!(!untracked.contains(".tfrollback"), "{untracked}");
}

#[test]
fn terraform_rolls_back_the_workspace_tfrollback_locked_not_the_selected_one() {
    let sb = Sandbox::builder("bluegreen")
        .lock(LockStyle::DynamoDb)
        .build();
    sb.deploy(Some("v2"));
    sb.terraform(&["workspace", "new", "staging"]).ok();
    sb.deploy(Some("v2"));
    sb.terraform(&["workspace", "select", "default"]).ok();
    let staging_key = format!("env:/staging/{}", sb.key);
    let default_before = sb.version_ids();

    // `default` is selected in the directory; the flag names staging.
    let report = sb
        .tfr(&[
            "--workspace",
            "staging",
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["status"], json!("rolled_back"), "{report:#}");
    assert_eq!(
        sb.s3().get_json(&staging_key, None)["outputs"]["active_slot"]["value"],
        json!("blue"),
        "staging is back on blue"
    );
    assert_eq!(sb.version_ids(), default_before, "default was not written");
    assert_eq!(
        sb.current_output("active_slot"),
        json!("green"),
        "default kept green"
    );
}

#[test]
fn the_state_is_found_in_tf_data_dir_as_terraform_finds_it() {
    let sb = Sandbox::builder("bluegreen")
        .lock(LockStyle::LockFile)
        .backend_block(false)
        .env("TF_DATA_DIR", ".tfdata")
        .build();
    sb.deploy(Some("v2"));
    assert!(sb.dir.join(".tfdata/terraform.tfstate").is_file());
    assert!(!sb.dir.join(".terraform/terraform.tfstate").exists());
    let listed = sb.tfr(&["list", "--json"]).ok().json();
    assert_eq!(listed["bucket"], json!(sb.bucket));
    sb.tfr(&["to", "previous", "--auto-approve", "--max-destroy", "10"])
        .ok();
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    // terraform, in the same data directory, agrees with the state it finds.
    let plan = sb.terraform(&[
        "plan",
        "-input=false",
        "-detailed-exitcode",
        "-var=active_slot=blue",
    ]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
}

#[test]
fn flags_naming_another_state_than_terraform_uses_are_refused() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let before = sb.version_ids();
    let other = Sandbox::builder("bluegreen")
        .lock(LockStyle::DynamoDb)
        .build();
    other.apply(&[("active_slot", "blue")]);
    other.apply(&[("active_slot", "green")]);
    let other_before = other.version_ids();
    // The directory is initialized for `sb`'s bucket; the flags name `other`'s.
    let run = sb
        .tfr(&[
            "--bucket",
            &other.bucket,
            "--key",
            &other.key,
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
        ])
        .code(2);
    assert!(
        run.stderr.contains(&other.bucket) && run.stderr.contains(&sb.bucket),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
    assert_eq!(other.version_ids(), other_before);
    assert_eq!(other.current_output("active_slot"), json!("green"));
}

#[test]
fn flags_without_init_still_take_the_lock_the_backend_block_configures() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    // A fresh checkout: no `terraform init` yet, so only the block knows about the lock table.
    std::fs::remove_dir_all(sb.dir.join(".terraform")).unwrap();
    let gate = sb.dir.parent().unwrap().join("go");
    let child = sb
        .tfr_command(&[
            "--bucket",
            &sb.bucket,
            "--key",
            &sb.key,
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
        ])
        .env(
            "TFROLLBACK_FAILPOINT",
            format!("confirm=wait:{}", gate.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let table = sb.table.clone().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    let held = loop {
        if let Some(item) = sb.dynamodb().get(&table, &sb.lock_id()) {
            break item;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the DynamoDB lock was never taken"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(held["Info"].contains("tfrollback to previous"), "{held:?}");
    std::fs::write(&gate, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert!(
        sb.dynamodb().get(&table, &sb.lock_id()).is_none(),
        "released"
    );
}

#[test]
fn a_rollback_with_no_lock_configured_needs_no_lock_said_out_loud() {
    let sb = Sandbox::builder("bluegreen").lock(LockStyle::None).build();
    sb.deploy(None);
    let before = sb.version_ids();
    let refused = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
        ])
        .code(1);
    assert_eq!(refused.json()["error"]["kind"], json!("refused.no_lock"));
    assert!(refused.stderr.contains("--no-lock"), "{}", refused.stderr);
    assert_eq!(sb.version_ids(), before, "nothing was written");
    let restore = sb.tfr(&["restore", "previous", "--auto-approve"]).code(1);
    assert!(restore.stderr.contains("--no-lock"), "{}", restore.stderr);
    assert_eq!(sb.version_ids(), before);

    let run = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--no-lock",
        ])
        .ok();
    assert!(run.stderr.contains("no state lock"), "{}", run.stderr);
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
}

#[test]
fn a_verification_failure_after_a_successful_apply_keeps_terraforms_state() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    // A resource that changes on every plan: the rollback applies, but no follow-up plan can
    // ever be clean, so verification fails after a successful apply.
    std::fs::write(
        sb.dir.join("clock.tf"),
        "resource \"terraform_data\" \"clock\" {\n  triggers_replace = timestamp()\n}\n",
    )
    .unwrap();
    let before = sb.version_ids();
    let run = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
        ])
        .code(7);
    let report = run.json();
    assert_eq!(
        report["status"],
        json!("rolled_back_unverified"),
        "{report:#}"
    );
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains("follow-up plan"),
        "{report:#}"
    );
    // The state is the one terraform wrote for the rollback: blue, with the clock it created.
    let state = sb.current_state();
    assert_eq!(state["outputs"]["active_slot"]["value"], json!("blue"));
    assert!(
        state["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == json!("clock")),
        "terraform's record of the object it created is kept"
    );
    let after = sb.version_ids();
    for id in &before {
        assert!(after.contains(id), "version {id} was lost");
    }
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], json!(null), "{status:#}");
    assert_eq!(status["unfinished"], json!(null), "{status:#}");
    let history = sb.tfr(&["history", "--json"]).ok().json();
    assert_eq!(
        history["records"][0]["result"],
        json!("rolled_back_unverified")
    );
}

#[test]
fn previous_skips_a_long_applys_snapshot_written_seconds_before_its_result() {
    let sb = Sandbox::builder("bluegreen")
        .lock(LockStyle::DynamoDb)
        .build();
    // After the warm-up, one more slow step: terraform's snapshot (persisted at the first
    // update 20 s into the apply) then precedes the result by about 8 s.
    std::fs::write(
        sb.dir.join("settle.tf"),
        "resource \"terraform_data\" \"settle\" {\n  triggers_replace = var.active_slot\n  depends_on       = [terraform_data.warmup]\n  provisioner \"local-exec\" {\n    command = var.slow_seconds > 0 ? \"sleep 8\" : \"true\"\n  }\n}\n",
    )
    .unwrap();
    sb.apply(&[("active_slot", "blue")]);
    let deploy1 = sb.version_ids()[0].clone();
    sb.apply(&[
        ("active_slot", "green"),
        ("green_version", "v2"),
        ("slow_seconds", "22"),
    ]);
    let ids = sb.version_ids();
    assert_eq!(
        ids.len(),
        3,
        "terraform persisted a snapshot during the long apply"
    );
    let (result, snapshot) = (&ids[0], &ids[1]);
    let snap_state = sb.s3().get_json(&sb.key, Some(snapshot));
    assert_eq!(
        snap_state["check_results"],
        json!(null),
        "terraform's snapshot has no checks"
    );

    let listed = sb.tfr(&["list", "--json"]).ok().json();
    let flagged: Vec<&str> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["intermediate"] == json!(true))
        .map(|v| v["version_id"].as_str().unwrap())
        .collect();
    assert_eq!(flagged, [snapshot.as_str()], "{listed:#}");
    let diff = sb.tfr(&["diff", "previous", "--json"]).ok().json();
    assert_eq!(
        diff["to"]["version_id"],
        json!(deploy1),
        "previous is the deploy before"
    );
    assert_eq!(diff["skipped_versions"], json!([snapshot]), "{diff:#}");
    let text = sb.tfr(&["diff", "previous"]).ok();
    assert!(
        text.stdout.contains(&format!("skipped {snapshot}")),
        "{}",
        text.stdout
    );
    assert_ne!(&deploy1, result);
}
