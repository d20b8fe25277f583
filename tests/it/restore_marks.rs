//! State-only `restore`, the audit `history`, known-good marks with `to last-good`, and the
//! flagging of intermediate snapshots, against real terraform and a real S3 server.

use serde_json::{Value, json};

use crate::support::{LockStyle, Sandbox};

fn addresses(state: &Value) -> Vec<String> {
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}.{}",
                r["type"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn digest_matches(sb: &Sandbox) -> bool {
    let table = sb.table.as_ref().expect("a lock table");
    sb.dynamodb()
        .get(table, &sb.digest_id())
        .and_then(|i| i.get("Digest").cloned())
        == Some(sb.state_md5())
}

#[test]
fn restore_undoes_a_bad_state_rm_without_an_apply() {
    let sb = Sandbox::new("bluegreen");
    sb.apply(&[("active_slot", "blue")]);
    sb.terraform(&["state", "rm", "terraform_data.database"])
        .ok();
    let damaged = sb.current_state();
    assert!(!addresses(&damaged).contains(&"terraform_data.database".to_string()));
    let before = sb.version_ids();

    // A dry run shows the state diff and writes nothing.
    let dry = sb.tfr(&["restore", "previous", "--dry-run"]).ok();
    assert!(
        dry.stderr.contains("+ terraform_data.database"),
        "{}",
        dry.stderr
    );
    assert_eq!(sb.version_ids(), before);

    let report = sb
        .tfr(&["restore", "previous", "--auto-approve", "--json"])
        .ok()
        .json();
    assert_eq!(report["status"], json!("restored_state"));
    assert_eq!(
        report["plan"],
        json!({"add": 0, "change": 0, "destroy": 0}),
        "the follow-up plan shows no changes"
    );
    let restored = sb.current_state();
    assert!(addresses(&restored).contains(&"terraform_data.database".to_string()));
    assert_eq!(
        restored["serial"].as_u64().unwrap(),
        damaged["serial"].as_u64().unwrap() + 1
    );
    assert_eq!(restored["lineage"], damaged["lineage"]);
    assert_eq!(report["new_version_id"], json!(sb.version_ids()[0]));
    assert!(digest_matches(&sb));
    for id in &before {
        assert!(sb.version_ids().contains(id), "version {id} was lost");
    }
    // terraform agrees, and the lock is free.
    assert_eq!(
        sb.terraform(&["plan", "-input=false", "-detailed-exitcode"])
            .code,
        0
    );
    assert_eq!(
        sb.tfr(&["status", "--json"]).ok().json()["lock"],
        Value::Null
    );

    // Restoring the current content again is a no-op that says so.
    let again = sb.tfr(&["restore", "~2", "--auto-approve", "--json"]).ok();
    assert_eq!(
        again.json()["status"],
        json!("already_at_target"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("nothing to restore"),
        "{}",
        again.stderr
    );
    assert_eq!(sb.version_ids().len(), before.len() + 1);
}

#[test]
fn every_rollback_leaves_a_history_record() {
    let sb = Sandbox::new("bluegreen");
    sb.deploy(Some("v2"));
    let target = sb.version_ids()[1].clone();

    sb.tfr(&["to", "previous", "--auto-approve", "--max-destroy", "10"])
        .ok();
    sb.tfr(&[
        "to",
        "previous",
        "--auto-approve",
        "--max-destroy",
        "10",
        "--var",
        "fail_on_slot=green",
    ])
    .code(3);
    sb.tfr(&["recover"]).ok();

    let records = sb.history();
    assert_eq!(records.len(), 3, "{records:#?}");
    let (recover, failed, success) = (&records[0], &records[1], &records[2]);
    assert_eq!(success["result"], json!("rolled_back"));
    assert_eq!(success["exit_code"], json!(0));
    assert_eq!(success["to"]["version_id"], json!(target));
    assert_eq!(
        success["who"]["arn"],
        json!("arn:aws:sts::123456789012:user/moto")
    );
    assert!(success["who"]["user"].as_str().unwrap().contains('@'));
    assert!(success["duration_ms"].as_u64().unwrap() > 0);
    assert_eq!(success["report"]["status"], json!("rolled_back"));
    assert_eq!(failed["result"], json!("restored"));
    assert_eq!(failed["exit_code"], json!(3));
    assert!(
        failed["report"]["error"]
            .as_str()
            .unwrap()
            .contains("exit status 3")
    );
    assert_eq!(recover["result"], json!("nothing_to_recover"));

    // One record in full, by a prefix of its id; and the records live next to the state.
    let id = success["operation_id"].as_str().unwrap();
    let one = sb.tfr(&["history", &id[..8], "--json"]).ok().json();
    assert_eq!(one["operation_id"], json!(id));
    let shown = sb.tfr(&["history", id]).ok().stdout;
    assert!(
        shown.contains("rolled_back") && shown.contains("Report"),
        "{shown}"
    );
    let prefix = format!("{}.tfrollback/history/", sb.key);
    assert_eq!(sb.s3().keys(&prefix).len(), 3);
    // CI identity is recorded when present.
    sb.tfr_with(
        &["to", "current", "--dry-run"],
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_RUN_ID", "77"),
        ],
    )
    .ok();
    let ci = &sb.history()[0]["who"]["ci"];
    assert_eq!(
        (ci["system"].clone(), ci["actor"].clone()),
        (json!("github-actions"), json!("octocat"))
    );
}

#[test]
fn a_recover_after_a_kill_is_recorded_too() {
    let sb = Sandbox::new("bluegreen");
    sb.deploy(None);
    // An unfinished operation, as a kill leaves it: the journal plus our own lock.
    let mut child = sb
        .tfr_command(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--var",
            "slow_seconds=30",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal_key = format!("{}.tfrollback/journal.json", sb.key);
    let deadline = std::time::Instant::now() + std::time::Duration::from_mins(2);
    while !(sb.s3().exists(&journal_key)
        && sb.s3().get_json(&journal_key, None)["terraform_pid"].is_u64())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the apply never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let report = loop {
        let run = sb.tfr(&["recover", "--json"]);
        if run.code == 0 {
            break run.json();
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    assert_eq!(report["status"], json!("recovered"));
    let records = sb.history();
    assert_eq!(records[0]["result"], json!("recovered"));
    assert_eq!(records[0]["operation_id"], report["operation_id"]);
    assert!(
        records[0]["command"]
            .as_str()
            .unwrap()
            .starts_with("recover (to ")
    );
    assert_eq!(
        sb.current_state()["outputs"]["active_slot"]["value"],
        json!("green")
    );
}

#[test]
fn marks_are_set_listed_removed_and_pick_last_good() {
    let sb = Sandbox::builder("bluegreen").lock(LockStyle::Both).build();
    sb.apply(&[("active_slot", "blue"), ("blue_version", "v1")]);
    sb.tfr(&["mark", "current", "--note", "smoke test #41 passed"])
        .ok();
    let good = sb.version_ids()[0].clone();
    sb.apply(&[("active_slot", "green"), ("green_version", "v2")]);
    sb.apply(&[("active_slot", "green"), ("green_version", "v3")]);

    // The mark is a tag on that S3 object version.
    let tags = sb.s3().tags(&sb.key, &good);
    assert!(tags.contains_key("tfrollback:mark:good"), "{tags:?}");

    let list = sb.tfr(&["list", "--json"]).ok().json();
    let marked: Vec<_> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["marks"] == json!(["good"]))
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["version_id"], json!(good));
    assert!(sb.tfr(&["list"]).ok().stdout.contains("[good]"));

    // last-good skips the two green deploys.
    let report = sb
        .tfr(&[
            "to",
            "last-good",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["target"]["version_id"], json!(good));
    assert_eq!(
        sb.current_state()["outputs"]["active_slot"]["value"],
        json!("blue")
    );

    // A label of one's own; unmark removes tag and listing entry.
    sb.tfr(&["mark", "previous", "--label", "release-3"]).ok();
    let d = sb.tfr(&["diff", "last:release-3", "--json"]).ok().json();
    assert_eq!(d["to"]["version_id"], json!(sb.version_ids()[1]));
    sb.tfr(&["unmark", &good]).ok();
    let list = sb.tfr(&["list", "--json"]).ok().json();
    assert!(
        list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["marks"] != json!(["good"]))
    );
    assert!(sb.s3().tags(&sb.key, &good).is_empty());
    let none = sb.tfr(&["to", "last-good", "--dry-run"]).code(1);
    assert!(none.stderr.contains("tfrollback mark"), "{}", none.stderr);
    let unchanged = sb.tfr(&["unmark", &good, "--json"]).ok().json();
    assert_eq!(unchanged["changed"], json!(false));
    let bad = sb.tfr(&["mark", "current", "--label", "no spaces"]).code(2);
    assert!(bad.stderr.contains("is not a label"), "{}", bad.stderr);
}

#[test]
fn intermediate_snapshots_of_a_slow_apply_are_flagged_and_skipped() {
    let sb = Sandbox::new("bluegreen");
    sb.apply(&[("active_slot", "blue")]);
    // Longer than terraform's 20 s persist interval: it writes an intermediate snapshot too.
    sb.apply(&[("active_slot", "green"), ("slow_seconds", "22")]);
    let ids = sb.version_ids();
    assert_eq!(
        ids.len(),
        3,
        "a final state, an intermediate one, and the first deploy"
    );
    let list = sb.tfr(&["list", "--json"]).ok().json();
    let flags: Vec<_> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["intermediate"].clone())
        .collect();
    assert_eq!(flags, [json!(false), json!(true), json!(false)]);
    assert!(sb.tfr(&["list"]).ok().stdout.contains("(intermediate)"));
    // `previous` is the first deploy, not the intermediate snapshot.
    let shown = sb.tfr(&["show", "previous", "--json"]).ok().json();
    assert_eq!(shown["version_id"], json!(ids[2]));
    assert_eq!(shown["outputs"]["active_slot"], json!("blue"));
    // Two quick, separate applies are not mistaken for one.
    let quick = Sandbox::new("bluegreen");
    quick.apply(&[("active_slot", "blue")]);
    quick.apply(&[("active_slot", "green")]);
    let list = quick.tfr(&["list", "--json"]).ok().json();
    assert!(
        list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["intermediate"] == json!(false))
    );
}
