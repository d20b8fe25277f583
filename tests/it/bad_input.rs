//! Bad input: each case gives a clear message, a non-zero exit code, and changes nothing.
//! Broken state versions here are deliberately broken copies of what terraform wrote.

use serde_json::{Value, json};

use crate::support::{Fault, Head, LockStyle, Proxy, Rule, Sandbox, deployed, lab};

/// Every command refuses VERSION with `expected` in its message, and nothing changes.
fn refused_everywhere(sb: &Sandbox, expected: &str) {
    let before = sb.version_ids();
    for args in [
        vec!["show", "previous"],
        vec!["diff", "previous"],
        vec!["to", "previous", "--auto-approve", "--max-destroy", "10"],
        vec!["restore", "previous", "--auto-approve"],
    ] {
        let run = sb.tfr(&args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("hint:"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(sb.version_ids(), before, "nothing was written");
    assert_eq!(
        sb.tfr(&["status", "--json"]).ok().json()["lock"],
        Value::Null
    );
}

#[test]
fn broken_state_bodies_are_refused_and_listed_as_unreadable() {
    let real = {
        let sb = deployed(LockStyle::Both, None);
        sb.s3().get(&sb.key, None)
    };
    let mut v3: Value = serde_json::from_slice(&real).unwrap();
    v3["version"] = json!(3);
    let mut huge: Value = serde_json::from_slice(&real).unwrap();
    huge["outputs"]["blob"] = json!({"value": "x".repeat(17 * 1024 * 1024), "type": "string"});
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (real[..real.len() / 2].to_vec(), "truncated"),
        (
            b"<html><body>503 Service Unavailable</body></html>".to_vec(),
            "not JSON",
        ),
        (
            serde_json::to_vec_pretty(&v3).unwrap(),
            "format version 3 is not supported",
        ),
        (
            serde_json::to_vec_pretty(&huge).unwrap(),
            "outputs section is larger than 16 MiB",
        ),
    ];
    for (body, expected) in cases {
        let sb = deployed(LockStyle::Both, None);
        let planted = sb.plant_previous(&body);
        refused_everywhere(&sb, expected);
        let list = sb.tfr(&["list", "--json"]).ok().json();
        let row = list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version_id"] == json!(planted))
            .unwrap()
            .clone();
        assert!(row["error"].as_str().unwrap().contains(expected), "{row:#}");
        assert_eq!(row["serial"], Value::Null);
        assert!(sb.tfr(&["list"]).ok().stdout.contains("unreadable"));
    }
}

#[test]
fn a_slot_value_outside_the_validation_list_is_refused() {
    let sb = deployed(LockStyle::Both, None);
    let mut purple = sb.s3().get_json(&sb.key, Some(&sb.version_ids()[1]));
    purple["outputs"]["active_slot"]["value"] = json!("purple");
    sb.plant_previous(&serde_json::to_vec_pretty(&purple).unwrap());
    let before = sb.version_ids();
    let run = sb
        .tfr(&["to", "previous", "--auto-approve", "--max-destroy", "10"])
        .code(1);
    assert!(
        run.stderr.contains("\"purple\"") && run.stderr.contains("blue, green"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.version_ids(), before);
}

#[test]
fn hostile_version_ids_never_reach_a_shell_or_a_path() {
    let sb = deployed(LockStyle::Both, None);
    let before = sb.version_ids();
    for id in [
        "a;touch pwned",
        "../../etc/passwd",
        "$(touch pwned)",
        "x/y",
        "`id`",
    ] {
        let run = sb.tfr(&["to", id, "--auto-approve"]).code(2);
        assert!(run.stderr.contains("is not a version"), "{}", run.stderr);
    }
    assert!(!sb.dir.join("pwned").exists());
    assert_eq!(sb.version_ids(), before);
}

#[test]
fn missing_buckets_keys_and_credentials_say_what_to_do() {
    let sb = deployed(LockStyle::Both, None);
    let run = sb.tfr(&["list", "--bucket", "no-such-bucket-here"]).code(1);
    assert!(
        run.stderr
            .contains("bucket no-such-bucket-here does not exist"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--bucket"), "{}", run.stderr);
    let run = sb.tfr(&["list", "--key", "typo/terraform.tfstate"]).code(1);
    assert!(run.stderr.contains("has no versions"), "{}", run.stderr);
    assert!(run.stderr.contains("--workspace"), "{}", run.stderr);
    let run = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--key",
            "typo/terraform.tfstate",
        ])
        .code(1);
    assert!(run.stderr.contains("has no versions"), "{}", run.stderr);

    let mut cmd = sb.tfr_command(&["list"]);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
    assert!(stderr.contains("AWS_PROFILE"), "{stderr}");
}

#[test]
fn access_denied_names_the_permission_and_changes_nothing() {
    let sb = deployed(LockStyle::Both, None);
    let before = sb.version_ids();
    let key = sb.key.clone();
    let cases: Vec<(&str, Rule, &str)> = vec![
        (
            "GetObject",
            Rule::new(
                "deny",
                move |h: &Head| h.object("GET", &key),
                Fault::s3_error(403, "AccessDenied"),
            ),
            "s3:GetObjectVersion",
        ),
        (
            "PutObject",
            Rule::new(
                "deny",
                |h: &Head| h.method == "PUT",
                Fault::s3_error(403, "AccessDenied"),
            ),
            "s3:PutObject",
        ),
        (
            "DynamoDB",
            Rule::new(
                "deny",
                |h: &Head| h.dynamodb("PutItem"),
                Fault::dynamodb_error(400, "AccessDeniedException"),
            ),
            "dynamodb:",
        ),
    ];
    for (what, rule, permission) in cases {
        let proxy = Proxy::start(&lab().endpoint);
        proxy.add(rule);
        let run = sb.tfr_with(
            &["to", "previous", "--auto-approve", "--max-destroy", "10"],
            &[("AWS_ENDPOINT_URL", &proxy.endpoint)],
        );
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(run.stderr.contains(permission), "{what}: {}", run.stderr);
        assert!(proxy.hits("deny") > 0, "{what}: the fault was injected");
        assert_eq!(sb.version_ids(), before, "{what}: nothing written");
        let status = sb.tfr(&["status", "--json"]).ok().json();
        assert_eq!(status["lock"], Value::Null, "{what}: {status:#}");
        assert_eq!(status["unfinished"], Value::Null, "{what}: {status:#}");
    }
}

#[test]
fn malformed_configuration_files_are_named() {
    let sb = deployed(LockStyle::Both, None);
    let before = sb.version_ids();
    std::fs::write(sb.dir.join("tfrollback.hcl"), "map = {\n").unwrap();
    let run = sb.tfr(&["diff", "previous"]).code(1);
    assert!(
        run.stderr.contains("tfrollback.hcl cannot be parsed"),
        "{}",
        run.stderr
    );
    std::fs::write(sb.dir.join("tfrollback.hcl"), "slot_varible = \"x\"\n").unwrap();
    let run = sb.tfr(&["to", "previous", "--auto-approve"]).code(1);
    assert!(run.stderr.contains("tfrollback.hcl"), "{}", run.stderr);
    std::fs::remove_file(sb.dir.join("tfrollback.hcl")).unwrap();

    std::fs::write(sb.dir.join("broken.tf"), "variable \"x\" {\n").unwrap();
    let run = sb.tfr(&["diff", "previous"]).code(1);
    assert!(
        run.stderr.contains("broken.tf cannot be parsed as HCL"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("terraform validate"), "{}", run.stderr);
    std::fs::remove_file(sb.dir.join("broken.tf")).unwrap();

    let init_state = sb.dir.join(".terraform/terraform.tfstate");
    let saved = std::fs::read(&init_state).unwrap();
    std::fs::write(&init_state, b"{ not json").unwrap();
    let run = sb.tfr(&["list"]).code(1);
    assert!(
        run.stderr
            .contains(".terraform/terraform.tfstate is not valid JSON"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("terraform init"), "{}", run.stderr);
    std::fs::write(&init_state, saved).unwrap();

    let run = sb.tfr(&["list", "-v", "-q"]).code(2);
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    let run = sb
        .tfr(&["to", "previous", "--lock-timeout", "soon"])
        .code(2);
    assert!(run.stderr.contains("is not a duration"), "{}", run.stderr);
    assert_eq!(sb.version_ids(), before);
}
