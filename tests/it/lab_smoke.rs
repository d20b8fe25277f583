//! Checks the lab itself: fixtures apply against the local server, each apply leaves one
//! state version, and backend settings land where terraform keeps them.

use crate::support::{LockStyle, Sandbox};

fn output(state: &serde_json::Value, name: &str) -> serde_json::Value {
    state["outputs"][name]["value"].clone()
}

#[test]
fn bluegreen_applies_leave_one_state_version_each() {
    let sandbox = Sandbox::new("bluegreen");
    sandbox.apply(&[("active_slot", "blue")]);
    sandbox.apply(&[("active_slot", "green"), ("green_version", "v2")]);

    let s3 = sandbox.s3();
    let versions = s3.versions(&sandbox.key);
    assert_eq!(versions.len(), 2, "versions: {versions:#?}");
    assert!(versions[0].is_latest && !versions[1].is_latest);
    assert!(versions.iter().all(|v| !v.delete_marker && v.size > 0));

    let newest = s3.get_json(&sandbox.key, Some(&versions[0].version_id));
    let oldest = s3.get_json(&sandbox.key, Some(&versions[1].version_id));
    assert_eq!(output(&newest, "active_slot"), "green");
    assert_eq!(output(&newest, "green_version"), "v2");
    assert_eq!(output(&oldest, "active_slot"), "blue");
    assert_eq!(output(&oldest, "green_version"), "v1");
    assert_eq!(newest["lineage"], oldest["lineage"]);
    assert!(newest["serial"].as_u64() > oldest["serial"].as_u64());
    // The latest version is what a plain GET returns.
    assert_eq!(
        s3.get(&sandbox.key, None),
        s3.get(&sandbox.key, Some(&versions[0].version_id))
    );

    // Terraform keeps the digest item up to date in the lock table.
    let table = sandbox
        .table
        .as_deref()
        .expect("DynamoDB locking is the default");
    let digest = sandbox.dynamodb().get(table, &sandbox.digest_id());
    assert!(
        digest.is_some_and(|item| item.get("Digest").is_some_and(|d| d.len() == 32)),
        "no Digest item for {}",
        sandbox.digest_id()
    );
}

#[test]
fn backend_settings_can_live_only_in_init_state() {
    let sandbox = Sandbox::builder("objectoutput")
        .backend_block(false)
        .lock(LockStyle::LockFile)
        .key("svc/state.tfstate")
        .build();
    assert!(sandbox.table.is_none());

    let backend_tf = std::fs::read_to_string(sandbox.dir.join("backend.tf")).unwrap();
    assert!(
        !backend_tf.contains(&sandbox.bucket),
        "backend.tf: {backend_tf}"
    );
    let init_state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sandbox.dir.join(".terraform/terraform.tfstate")).unwrap(),
    )
    .unwrap();
    let config = &init_state["backend"]["config"];
    assert_eq!(init_state["backend"]["type"], "s3");
    assert_eq!(config["bucket"], sandbox.bucket.as_str());
    assert_eq!(config["key"], "svc/state.tfstate");
    assert_eq!(config["use_path_style"], true);
    assert_eq!(config["use_lockfile"], true);

    sandbox.apply(&[("deployment_slot", "green"), ("app_version", "v7")]);
    let state = sandbox.s3().get_json("svc/state.tfstate", None);
    assert_eq!(
        output(&state, "current_config"),
        serde_json::json!({"active_slot": "green", "app_version": "v7", "app_instance_count": 2})
    );
    assert_eq!(sandbox.s3().versions("svc/state.tfstate").len(), 1);
}

#[test]
fn s3_helpers_see_delete_markers_and_unversioned_buckets() {
    let sandbox = Sandbox::builder("bluegreen")
        .lock(LockStyle::None)
        .versioning(false)
        .build();
    let s3 = sandbox.s3();
    assert!(!s3.exists("x.json"));
    assert_eq!(s3.put("x.json", b"{}"), "null");
    assert!(s3.exists("x.json"));
    assert_eq!(s3.versions("x.json").len(), 1);

    let versioned = Sandbox::builder("bluegreen").lock(LockStyle::None).build();
    let s3 = versioned.s3();
    let first = s3.put("k", b"one");
    let marker = s3.delete("k");
    assert!(!s3.exists("k"));
    let versions = s3.versions("k");
    assert_eq!(versions.len(), 2, "{versions:#?}");
    assert_eq!(versions[0].version_id, marker);
    assert!(versions[0].delete_marker && versions[0].is_latest);
    assert_eq!(versions[1].version_id, first);
    assert_eq!(s3.get("k", Some(&first)), b"one");
    // A prefix sibling is not a version of the key.
    s3.put("k.tflock", b"lock");
    assert_eq!(s3.versions("k").len(), 2);
}

#[test]
fn bluegreen_switches_fail_and_slow_only_a_flip() {
    let sandbox = Sandbox::builder("bluegreen").lock(LockStyle::Both).build();
    sandbox.apply(&[("active_slot", "blue"), ("fail_on_slot", "green")]);

    // Flipping to the failing slot: exit 1, yet a new state version with the flip and a
    // tainted health check.
    let run = sandbox
        .terraform(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var=active_slot=green",
            "-var=fail_on_slot=green",
        ])
        .code(1);
    assert!(
        run.stderr.contains("health check failed on green"),
        "{}",
        run.stderr
    );
    let s3 = sandbox.s3();
    assert_eq!(s3.versions(&sandbox.key).len(), 2);
    let state = s3.get_json(&sandbox.key, None);
    assert_eq!(output(&state, "active_slot"), "green");
    let health = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "health_check")
        .expect("health_check in state");
    assert_eq!(health["instances"][0]["status"], "tainted");

    // Without the switch the next apply heals; an apply without a flip is not slowed.
    sandbox.apply(&[("active_slot", "green"), ("slow_seconds", "2")]);
    let started = std::time::Instant::now();
    sandbox.apply(&[("active_slot", "green"), ("slow_seconds", "2")]);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // A flip with slow_seconds sleeps in the warm-up.
    let started = std::time::Instant::now();
    sandbox.apply(&[("active_slot", "blue"), ("slow_seconds", "2")]);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));

    // Validation refuses any other slot.
    let run = sandbox
        .terraform(&["plan", "-input=false", "-no-color", "-var=active_slot=red"])
        .code(1);
    assert!(run.stderr.contains("active_slot must be"), "{}", run.stderr);
}
