//! The human output of list, show, diff, to (plan summary and report) and of errors, pinned
//! with insta. Version ids, lineages, times, bucket names and paths are filtered out; every
//! version shown was written by terraform.

use crate::support::{LockStyle, Sandbox, deployed};

fn settings(sb: &Sandbox) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.add_filter(&regex_escape(&sb.dir.display().to_string()), "[DIR]");
    s.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[UUID]",
    );
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?Z?",
        "[TIME]",
    );
    s.add_filter(r"tfr-(locks-)?\d+-\d+", "[BUCKET]");
    s.add_filter(r"just now|\d+[mhd] ago", "[AGE]");
    s.add_filter(r"\b[0-9a-f]{8}\b", "[LINEAGE]");
    s.add_filter(r"ETag [^)]*\)", "ETag [ETAG])");
    s
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[test]
fn human_output_of_the_read_commands() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    sb.tfr(&["mark", "previous"]).ok();
    settings(&sb).bind(|| {
        insta::assert_snapshot!(
            "list_80",
            sb.tfr_with(&["list"], &[("COLUMNS", "80")]).ok().stdout
        );
        insta::assert_snapshot!(
            "list_200",
            sb.tfr_with(&["list"], &[("COLUMNS", "200")]).ok().stdout
        );
        insta::assert_snapshot!("show", sb.tfr(&["show", "current"]).ok().stdout);
        insta::assert_snapshot!("diff", sb.tfr(&["diff", "previous"]).ok().stdout);
    });
}

#[test]
fn human_output_of_a_rollback() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    settings(&sb).bind(|| {
        let dry = sb.tfr(&["to", "previous", "--dry-run"]).ok();
        insta::assert_snapshot!("to_dry_run_steps", dry.stderr);
        insta::assert_snapshot!("to_dry_run_report", dry.stdout);
        let done = sb
            .tfr(&["to", "previous", "--auto-approve", "--max-destroy", "10"])
            .ok();
        insta::assert_snapshot!("to_report", done.stdout);
        let failed = sb
            .tfr(&[
                "to",
                "previous",
                "--auto-approve",
                "--max-destroy",
                "10",
                "--var",
                "fail_on_slot=green",
            ])
            .code(3);
        insta::assert_snapshot!("to_restored_report", failed.stdout);
    });
}

#[test]
fn human_output_of_errors() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let table = sb.table.clone().unwrap();
    settings(&sb).bind(|| {
        insta::assert_snapshot!("error_unknown_version", sb.tfr(&["show", "nosuchversion"]).code(1).stderr);
        insta::assert_snapshot!("error_no_terminal", sb.tfr(&["to", "previous"]).code(2).stderr);
        insta::assert_snapshot!("error_bad_selector", sb.tfr(&["diff", "a/b"]).code(2).stderr);
        let info = r#"{"ID":"11111111-2222-4333-8444-555555555555","Operation":"OperationTypeApply","Info":"","Who":"alice@ci-runner-7","Version":"1.11.4","Created":"2026-11-22T03:00:00Z","Path":"x"}"#;
        sb.dynamodb().put(&table, &sb.lock_id(), &[("Info", info)]);
        insta::assert_snapshot!(
            "error_locked",
            sb.tfr(&["to", "previous", "--auto-approve"]).code(5).stderr
        );
    });
}
