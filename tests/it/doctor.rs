//! `tfrollback doctor` against real terraform-written states: a healthy setup is ready (exit 0)
//! and doctor changes nothing; each finding that would stop a rollback (versioning suspended or
//! off, an Expiration of the state, a missing lock table, denied writes, a server that ignores
//! conditions, no terraform) makes it exit 8 and agrees with what the rollback commands do; a
//! lifecycle rule gives the horizon and the marked versions it deletes; the variables a
//! rollback leaves, and object outputs that do not feed variables, are named.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    BucketVersioningStatus, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration,
};
use serde_json::{Value, json};

use crate::support::{Fault, Flavor, Head, LockStyle, Proxy, Rule, Sandbox, deployed, lab};

/// Every version and delete marker in the bucket, and every item of the lock table.
type Everything = (Vec<(String, String, bool)>, Vec<BTreeMap<String, String>>);

/// Everything a doctor run must leave as it was: every version and delete marker in the
/// bucket (state, lock file, tfrollback's objects) and every item of the lock table.
fn everything(sb: &Sandbox) -> Everything {
    let items = sb
        .table
        .as_ref()
        .map(|t| sb.dynamodb().items(t))
        .unwrap_or_default();
    (sb.s3().all_versions(), items)
}

/// `doctor --json`, expecting `code`; returns the report.
fn doctor(sb: &Sandbox, code: i32, extra: &[&str]) -> Value {
    let mut args = vec!["doctor", "--json"];
    args.extend_from_slice(extra);
    sb.tfr(&args).code(code).json()
}

/// kind -> level of every finding.
fn levels(report: &Value) -> BTreeMap<String, String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["level"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn finding<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {report:#}"))
}

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

fn noncurrent(days: i32, keep: Option<i32>) -> NoncurrentVersionExpiration {
    NoncurrentVersionExpiration::builder()
        .noncurrent_days(days)
        .set_newer_noncurrent_versions(keep)
        .build()
}

/// When S3 may delete a version that another replaced at `replaced_at` (seconds), under a
/// rule of `days` noncurrent days: that many days later, rounded up to midnight UTC.
fn deletable_from(replaced_at: i64, days: i64) -> String {
    let due = replaced_at + days * 86_400;
    let midnight = if due % 86_400 == 0 {
        due
    } else {
        (due / 86_400 + 1) * 86_400
    };
    jiff::Timestamp::from_second(midnight).unwrap().to_string()
}

#[test]
fn a_healthy_setup_is_ready_and_doctor_changes_nothing() {
    let sb = deployed(LockStyle::Both, Some("v2"));
    let before = everything(&sb);
    let state = sb.current_state();

    let report = doctor(&sb, 0, &[]);
    assert_eq!(report["ready"], json!(true), "{report:#}");
    assert_eq!(report["problems"], json!(0));
    let levels = levels(&report);
    for kind in [
        "state_found",
        "versioning_enabled",
        "lifecycle_none",
        "lock_file",
        "lock_table",
        "digest_matches",
        "principal",
        "read_versions",
        "read_state",
        "write_allowed",
        "lock_write_allowed",
        "slot_variable",
        "variables_set",
        "terraform_ok",
    ] {
        assert_eq!(
            levels.get(kind).map(String::as_str),
            Some("ok"),
            "{kind}: {report:#}"
        );
    }
    assert_eq!(
        report["principal"],
        json!("arn:aws:sts::123456789012:user/moto")
    );
    // The variables a rollback sets, and the ones it leaves, as the fixture declares them.
    let vars = &report["variables"];
    assert_eq!(vars["slot_variable"], json!("active_slot"));
    let set: Vec<&str> = vars["set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        set,
        [
            "active_slot",
            "blue_version",
            "green_version",
            "instance_count"
        ]
    );
    let not_set: Vec<&str> = vars["not_set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(not_set, ["db_password", "fail_on_slot", "slow_seconds"]);
    assert_eq!(levels["variables_not_recorded"], "warning");
    // The binary is the terraform on PATH, set against the version that wrote the state.
    let local = sb.terraform(&["version", "-json"]).ok().json();
    assert_eq!(
        report["terraform"],
        json!({
            "binary": "terraform",
            "version": local["terraform_version"],
            "state_terraform_version": state["terraform_version"],
        })
    );
    // The secret of the fixture appears nowhere.
    assert!(!report.to_string().contains(crate::support::SECRET));

    // The text groups the findings by check, with markers.
    let text = sb.tfr(&["doctor"]).ok().stdout;
    for line in [
        "Versioning\n  ✓ versioning is enabled on bucket",
        "Lock\n  ✓ lock file s3://",
        "Ready for a rollback: no problems, 1 warning.",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    assert!(text.contains("  ! a rollback leaves 3 declared variables as they are: db_password"));
    let ascii = sb.tfr_with(&["doctor"], &[("NO_COLOR", "1")]).ok().stdout;
    assert!(ascii.contains("  ok versioning is enabled"), "{ascii}");
    assert!(!ascii.contains('✓'));

    // Nothing was written: no version, delete marker, lock file or table item came or went.
    assert_eq!(everything(&sb), before);
    assert_eq!(sb.current_state(), state);
    // terraform still reads the state (the digest holds), and the lock is free.
    assert_eq!(
        sb.terraform(&[
            "plan",
            "-input=false",
            "-detailed-exitcode",
            "-var",
            "active_slot=green",
            "-var",
            "green_version=v2"
        ])
        .code,
        0
    );
    assert_eq!(
        sb.tfr(&["status", "--json"]).ok().json()["lock"],
        Value::Null
    );
}

#[test]
fn versioning_suspended_or_never_enabled_stops_a_rollback() {
    let sb = deployed(LockStyle::LockFile, None);
    sb.s3().set_versioning(BucketVersioningStatus::Suspended);
    let before = everything(&sb);
    let report = doctor(&sb, 8, &[]);
    assert_eq!(report["ready"], json!(false));
    let f = finding(&report, "versioning_suspended");
    assert_eq!(f["level"], json!("problem"));
    assert_eq!(f["check"], json!("versioning"));
    assert!(f["hint"].as_str().unwrap().contains(&format!(
        "--bucket {} --versioning-configuration Status=Enabled",
        sb.bucket
    )));
    let text = sb.tfr(&["doctor"]).code(8).stdout;
    assert!(
        text.contains("  ✗ versioning is suspended on bucket"),
        "{text}"
    );
    assert!(
        text.contains("Not ready: 1 problem would stop a rollback"),
        "{text}"
    );
    assert_eq!(everything(&sb), before, "doctor wrote nothing");
    // As doctor says, the rollback commands refuse.
    let refused = sb.tfr(&["to", "previous", "--dry-run"]).code(1);
    assert!(
        refused.stderr.contains("versioning is suspended"),
        "{}",
        refused.stderr
    );

    let off = Sandbox::builder("bluegreen")
        .lock(LockStyle::LockFile)
        .versioning(false)
        .build();
    off.apply(&[("active_slot", "blue")]);
    let report = doctor(&off, 8, &[]);
    assert_eq!(
        finding(&report, "versioning_off")["level"],
        json!("problem")
    );
}

#[test]
fn a_lifecycle_rule_gives_the_rollback_horizon_and_an_expiration_of_the_state_stops_it() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    sb.apply(&[("active_slot", "blue"), ("green_version", "v2")]);
    // Newest first: three terraform-written versions.
    let versions = sb.s3().versions(&sb.key);
    assert_eq!(versions.len(), 3);
    sb.s3().set_lifecycle(vec![
        rule("keep-30-days", "app/")
            .noncurrent_version_expiration(noncurrent(30, None))
            .build()
            .unwrap(),
        // Elsewhere in the bucket: no concern of the state's.
        rule("expire-logs", "logs/")
            .expiration(LifecycleExpiration::builder().days(7).build())
            .build()
            .unwrap(),
    ]);
    let before = everything(&sb);
    let report = doctor(&sb, 0, &[]);
    let h = finding(&report, "lifecycle_horizon");
    assert_eq!(h["level"], json!("ok"));
    let message = h["message"].as_str().unwrap();
    assert!(
        message.starts_with("rule \"keep-30-days\" deletes noncurrent versions 30 days after they are replaced (prefix \"app/\"): of 2 earlier versions, 0 may be deleted now and 2 later"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "the oldest you can roll back to is {}",
            versions[2].version_id
        )),
        "{message}"
    );
    // Each earlier version is deletable 30 days after the next one replaced it, by S3's clock.
    let horizon = &report["horizon"];
    assert_eq!(horizon["earlier"], json!(2));
    assert_eq!(horizon["oldest_restorable"], json!(versions[2].version_id));
    let fates = horizon["versions"].as_array().unwrap();
    assert_eq!(fates.len(), 2);
    for (fate, (version, successor)) in fates
        .iter()
        .zip([(&versions[1], &versions[0]), (&versions[2], &versions[1])])
    {
        assert_eq!(fate["version_id"], json!(version.version_id));
        assert_eq!(fate["fate"], json!("deletable"));
        assert_eq!(
            fate["deletable_from"],
            json!(deletable_from(successor.last_modified, 30))
        );
        assert_eq!(fate["rule"], json!("rule \"keep-30-days\""));
    }
    assert!(!levels(&report).contains_key("state_expires"));

    // A rule that expires current versions under the state's prefix deletes the state itself.
    sb.s3().set_lifecycle(vec![
        rule("expire-everything", "")
            .expiration(LifecycleExpiration::builder().days(90).build())
            .build()
            .unwrap(),
    ]);
    let report = doctor(&sb, 8, &[]);
    let f = finding(&report, "state_expires");
    assert_eq!(f["level"], json!("problem"));
    assert!(
        f["message"].as_str().unwrap().contains(&format!(
            "from {}",
            &deletable_from(versions[0].last_modified, 90)[..10]
        )),
        "{f:#}"
    );
    assert_eq!(everything(&sb), before, "doctor wrote nothing");
}

/// moto 5.2.1 drops `NewerNoncurrentVersions` from a stored NoncurrentVersionExpiration
/// (moto/s3/models.py keeps only NoncurrentDays), so this scenario runs on LocalStack, which
/// keeps the rule as given.
#[test]
fn a_newer_noncurrent_versions_rule_is_seen_to_delete_marked_versions() {
    let sb = Sandbox::builder("bluegreen")
        .server(Flavor::LocalStack)
        .lock(LockStyle::LockFile)
        .build();
    sb.apply(&[("active_slot", "blue")]);
    sb.tfr(&["mark", "current", "--label", "baseline"]).ok();
    sb.apply(&[("active_slot", "green")]);
    sb.tfr(&["mark", "current"]).ok();
    sb.apply(&[("active_slot", "green"), ("green_version", "v2")]);
    let versions = sb.s3().versions(&sb.key);
    assert_eq!(versions.len(), 3);
    sb.s3().set_lifecycle(vec![
        rule("keep-newest", "app/")
            .noncurrent_version_expiration(noncurrent(1, Some(1)))
            .build()
            .unwrap(),
    ]);
    let before = everything(&sb);
    let report = doctor(&sb, 0, &[]);
    // The newest noncurrent version is kept until one more write; the one before it goes a
    // day after it was replaced.
    let oldest = &versions[2];
    let gone = finding(&report, "mark_deletable");
    assert_eq!(gone["level"], json!("warning"));
    let message = gone["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "version {} is marked `baseline` (the version `last:baseline` picks), and rule \"keep-newest\" may delete it from ",
            oldest.version_id
        )),
        "{message}"
    );
    let next = finding(&report, "mark_deleted_after_writes");
    assert!(
        next["message"].as_str().unwrap().starts_with(&format!(
            "version {} is marked `good` (the version `last:good` picks), and rule \"keep-newest\" deletes it after 1 more state write",
            versions[1].version_id
        )),
        "{next:#}"
    );
    let fates = report["horizon"]["versions"].as_array().unwrap();
    assert_eq!(fates[0]["version_id"], json!(versions[1].version_id));
    assert_eq!(fates[0]["fate"], json!("deleted_after_writes"));
    assert_eq!(fates[0]["after_writes"], json!(1));
    assert_eq!(fates[1]["version_id"], json!(oldest.version_id));
    assert_eq!(
        fates[1]["deletable_from"],
        json!(deletable_from(versions[1].last_modified, 1))
    );
    assert_eq!(fates[0]["marks"], json!(["good"]));
    assert_eq!(fates[1]["marks"], json!(["baseline"]));
    // Replaced seconds ago, it is deletable only from tomorrow: still restorable now.
    assert_eq!(
        report["horizon"]["oldest_restorable"],
        json!(oldest.version_id)
    );
    assert_eq!(everything(&sb), before, "doctor wrote nothing");
}

#[test]
fn a_missing_lock_table_stops_a_rollback() {
    let sb = deployed(LockStyle::DynamoDb, None);
    let table = sb.table.clone().unwrap();
    sb.dynamodb().delete_table(&table);
    let report = doctor(&sb, 8, &[]);
    let f = finding(&report, "lock_table_missing");
    assert_eq!(f["level"], json!("problem"));
    assert!(f["message"].as_str().unwrap().contains(&table));
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .contains("AttributeName=LockID,AttributeType=S")
    );
    // With no table, there is nothing to probe there.
    assert!(!levels(&report).contains_key("lock_write_allowed"));
    // As doctor says, a rollback cannot take the lock.
    let refused = sb.tfr(&["to", "previous", "--dry-run"]).code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("DynamoDB table {table} does not exist")),
        "{}",
        refused.stderr
    );
}

#[test]
fn no_lock_and_a_wrong_digest_are_problems() {
    let sb = deployed(LockStyle::None, None);
    let report = doctor(&sb, 8, &[]);
    assert_eq!(finding(&report, "lock_none")["level"], json!("problem"));

    let sb = deployed(LockStyle::DynamoDb, None);
    let table = sb.table.clone().unwrap();
    sb.dynamodb().put(
        &table,
        &sb.digest_id(),
        &[("Digest", "0123456789abcdef0123456789abcdef")],
    );
    let report = doctor(&sb, 8, &[]);
    let f = finding(&report, "digest_mismatch");
    assert!(
        f["message"].as_str().unwrap().contains(&sb.state_md5()),
        "{f:#}"
    );
    // terraform agrees: it refuses the state (it retries for about ten seconds first).
    let plan = sb.terraform(&["plan", "-input=false"]);
    assert_ne!(plan.code, 0);
    assert!(
        plan.stderr.contains("does not have the expected content"),
        "{}",
        plan.stderr
    );
    // The probe put nothing back but what was there.
    assert_eq!(
        sb.dynamodb().get(&table, &sb.digest_id()).unwrap()["Digest"],
        "0123456789abcdef0123456789abcdef"
    );
}

#[test]
fn write_access_is_probed_without_writing_and_a_denial_is_a_problem() {
    let sb = deployed(LockStyle::DynamoDb, None);
    let before = everything(&sb);
    let proxy = Proxy::start(&lab().endpoint);
    let via = [("AWS_ENDPOINT_URL", proxy.endpoint.as_str())];
    let key = sb.key.clone();

    // Through an honest path, the server answers the probes on their conditions.
    sb.tfr_with(&["doctor", "--json"], &via).ok();
    let seen = proxy.take_seen();
    let put = seen
        .iter()
        .find(|s| s.head.object("PUT", &key))
        .expect("doctor sent a PutObject of the state key");
    assert_eq!(put.status, 412, "refused on its condition");
    assert_eq!(
        put.head.header("if-match"),
        Some("\"tfrollback-doctor-no-object-has-this-etag\"")
    );
    for op in ["DeleteItem", "PutItem"] {
        let probe = seen
            .iter()
            .find(|s| s.head.dynamodb(op))
            .unwrap_or_else(|| panic!("doctor sent a {op}"));
        assert_eq!(probe.status, 400, "{op}: ConditionalCheckFailedException");
    }

    // An identity that may not write: AccessDenied before any condition is looked at.
    let key_for_rule = key.clone();
    proxy.add(Rule::new(
        "deny-put",
        move |h: &Head| h.object("PUT", &key_for_rule),
        Fault::s3_error(403, "AccessDenied"),
    ));
    proxy.add(Rule::new(
        "deny-delete-item",
        |h: &Head| h.dynamodb("DeleteItem"),
        Fault::dynamodb_error(400, "AccessDeniedException"),
    ));
    let report = sb.tfr_with(&["doctor", "--json"], &via).code(8).json();
    assert!(proxy.hits("deny-put") > 0 && proxy.hits("deny-delete-item") > 0);
    let f = finding(&report, "write_denied");
    assert!(
        f["message"].as_str().unwrap().contains("(s3:PutObject)"),
        "{f:#}"
    );
    assert!(
        finding(&report, "lock_write_denied")["message"]
            .as_str()
            .unwrap()
            .contains("(dynamodb:DeleteItem)")
    );

    // A server that ignores the condition and answers the write with 200 is unsafe.
    let lenient = Proxy::start(&lab().endpoint);
    let key_for_rule = key.clone();
    lenient.add(Rule::new(
        "ignore-if-match",
        move |h: &Head| h.object("PUT", &key_for_rule),
        Fault::Respond {
            status: 200,
            content_type: "application/xml",
            body: String::new(),
        },
    ));
    let report = sb
        .tfr_with(
            &["doctor", "--json"],
            &[("AWS_ENDPOINT_URL", lenient.endpoint.as_str())],
        )
        .code(8)
        .json();
    assert_eq!(
        finding(&report, "conditional_write_ignored")["level"],
        json!("problem")
    );
    assert_eq!(
        everything(&sb),
        before,
        "nothing reached the server but reads and refused writes"
    );
}

#[test]
fn the_variables_a_rollback_leaves_and_an_object_output_that_feeds_none() {
    let sb = Sandbox::builder("vpcobject")
        .lock(LockStyle::LockFile)
        .build();
    sb.apply(&[
        ("active_slot", "blue"),
        ("app_version", "v1"),
        ("tags", "{team=\"a\"}"),
    ]);
    sb.apply(&[
        ("active_slot", "green"),
        ("app_version", "v2"),
        ("tags", "{team=\"b\"}"),
    ]);
    assert_eq!(sb.current_output("vpc")["tags"], json!({"team": "b"}));

    let report = doctor(&sb, 0, &[]);
    let not_set: BTreeMap<String, String> = report["variables"]["not_set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(not_set.keys().collect::<Vec<_>>(), ["region", "tags"]);
    assert_eq!(
        not_set["tags"],
        "no output or config output key has that name"
    );
    let ignored = finding(&report, "object_output_ignored");
    assert_eq!(
        ignored["message"],
        json!(
            "output vpc has keys named like variables (tags) but is not a config output, since cidr_block, id name no variable: it feeds none of them"
        )
    );

    // diff says the same, and the rollback leaves tags to the configuration: its default,
    // not the value the vpc output recorded.
    let diff = sb.tfr(&["diff", "previous", "--json"]).ok().json();
    let unset: Vec<&str> = diff["unset_variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(unset, ["region", "tags"]);
    let text = sb.tfr(&["diff", "previous"]).ok().stdout;
    assert!(
        text.contains(
            "  left as they are: region, tags (no output or config output key has that name)"
        ),
        "{text}"
    );
    let rolled = sb
        .tfr(&["to", "previous", "--auto-approve", "--json"])
        .ok()
        .json();
    assert_eq!(rolled["status"], json!("rolled_back"), "{rolled:#}");
    let names: Vec<&str> = rolled["unset_variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["region", "tags"]);
    let var_file: Value = serde_json::from_str(
        &std::fs::read_to_string(sb.dir.join("tfrollback.tfvars.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        var_file,
        json!({"active_slot": "blue", "app_version": "v1"})
    );
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_eq!(sb.current_output("vpc")["tags"], json!({}));

    // Said so, the vpc output feeds tags: with --map, or listed in tfrollback.hcl.
    let mapped = sb
        .tfr(&["diff", "previous", "--json", "--map", "vpc.tags=tags"])
        .ok()
        .json();
    let tags = mapped["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tags")
        .expect("tags is set");
    assert_eq!(tags["rollback"], json!({"team": "b"}));
    assert_eq!(tags["source"], json!("output vpc.tags"));
    let bad = sb.tfr(&["doctor", "--map", "vpc-tags"]).code(2);
    assert!(
        bad.stderr.contains("`vpc-tags` is not a mapping"),
        "{}",
        bad.stderr
    );
    std::fs::write(
        sb.dir.join("tfrollback.hcl"),
        "config_outputs = [\"vpc\"]\n",
    )
    .unwrap();
    let report = doctor(&sb, 0, &[]);
    assert!(
        !levels(&report).contains_key("object_output_ignored"),
        "{report:#}"
    );
    let set: Vec<&str> = report["variables"]["set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(set.contains(&"tags"), "{set:?}");
}

#[test]
fn the_terraform_binary_is_checked_against_the_state() {
    let sb = deployed(LockStyle::LockFile, None);
    // A state written by a terraform newer than the one on PATH (its bytes otherwise as
    // terraform wrote them).
    let mut newer = sb.current_state();
    newer["terraform_version"] = json!("99.0.0");
    newer["serial"] = json!(newer["serial"].as_u64().unwrap() + 1);
    sb.s3().put(
        &sb.key,
        serde_json::to_string_pretty(&newer).unwrap().as_bytes(),
    );
    let local = sb.terraform(&["version", "-json"]).ok().json();
    let local = local["terraform_version"].as_str().unwrap();
    let report = doctor(&sb, 8, &[]);
    let f = finding(&report, "terraform_too_old");
    assert_eq!(
        f["message"].as_str().unwrap().split(':').next().unwrap(),
        format!("terraform {local} is older than terraform 99.0.0, which wrote the current state")
    );

    // No terraform where the rollback would look for one.
    let empty = tempfile::tempdir().unwrap();
    let report = sb
        .tfr_with(
            &["doctor", "--json"],
            &[("PATH", empty.path().to_str().unwrap())],
        )
        .code(8)
        .json();
    assert_eq!(
        finding(&report, "terraform_missing")["level"],
        json!("problem")
    );
    assert!(report["terraform"].is_null());
}

#[test]
fn doctor_reads_stock_moto() {
    let sb = Sandbox::builder("bluegreen")
        .server(Flavor::StockMoto)
        .lock(LockStyle::LockFile)
        .build();
    sb.deploy(None);
    let before = everything(&sb);
    let report = doctor(&sb, 0, &[]);
    assert_eq!(finding(&report, "versioning_enabled")["level"], json!("ok"));
    assert_eq!(finding(&report, "write_allowed")["level"], json!("ok"));
    assert_eq!(everything(&sb), before);
}
