//! `guard`: a deploy watched through its health checks (commands, HTTP endpoints, CloudWatch
//! alarms on the lab's server) and rolled back by itself when they fail, with real terraform.
//! Each scenario checks what ends up in S3 (the state's slot, versions, marks, freezes, the
//! history) and what the webhook received, not only exit codes.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{HttpStub, Run, SECRET, Sandbox, interrupt_and_wait};

/// The lab's release history: blue deployed and marked good, then green (v2) deployed. Green
/// is the deploy guard watches; blue is `last-good`. Returns the sandbox, blue's and green's
/// version ids.
fn green_deploy() -> (Sandbox, String, String) {
    let sb = Sandbox::new("bluegreen");
    sb.apply(&[("active_slot", "blue")]);
    sb.tfr(&["mark", "current"]).ok();
    sb.apply(&[("active_slot", "green"), ("green_version", "v2")]);
    let ids = sb.version_ids();
    (sb, ids[1].clone(), ids[0].clone())
}

fn frozen_keys(sb: &Sandbox) -> Vec<String> {
    sb.s3().keys(&format!("{}.tfrollback/frozen/", sb.key))
}

fn phase_results(report: &Value, phase: &str) -> Vec<String> {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["phase"] == json!(phase))
        .map(|r| r["result"].as_str().unwrap().to_string())
        .collect()
}

/// `tfrollback guard --check CHECK` every second, auto-approved, with room for the fixture's
/// flip (`--max-destroy 10`), as JSON, and `more`.
fn guard(sb: &Sandbox, check: &str, more: &[&str]) -> Run {
    let mut args = vec![
        "guard",
        "--check",
        check,
        "--interval",
        "1s",
        "--auto-approve",
        "--max-destroy",
        "10",
        "--json",
    ];
    args.extend_from_slice(more);
    sb.tfr(&args)
}

/// Nothing changed: the same versions, no mark on the deploy, no freeze, the lock free.
#[track_caller]
fn unchanged(sb: &Sandbox, versions: &[String], deploy: &str) {
    assert_eq!(sb.version_ids(), versions, "no state version was written");
    assert!(
        !sb.s3()
            .tags(&sb.key, deploy)
            .contains_key("tfrollback:mark:good"),
        "the deploy was not marked"
    );
    assert!(frozen_keys(sb).is_empty(), "nothing was frozen");
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null, "the lock is free");
}

#[test]
fn a_healthy_deploy_is_watched_through_the_window_and_marked_good() {
    let (sb, _blue, green) = green_deploy();
    let versions = sb.version_ids();
    // A webhook that is down: a warning, never a reason to change the outcome.
    let broken_hook = HttpStub::start(|_, _| (500, "internal error".into()));
    // The check sees the deploy's outputs in its environment.
    let run = sb
        .tfr(&[
            "guard",
            "--check",
            r#"cmd:test "$TF_OUTPUT_active_slot" = green && test "$TF_OUTPUT_green_version" = v2"#,
            "--window",
            "2s",
            "--interval",
            "1s",
            "--notify",
            &broken_hook.url("/hook"),
            "--auto-approve",
            "--json",
        ])
        .ok();
    assert!(
        run.stderr
            .contains("warning: the notification `guard.started` to --notify failed (HTTP 500)"),
        "{}",
        run.stderr
    );
    let report = run.json();
    assert_eq!(
        report["notifications_failed"],
        json!(2),
        "started and passed"
    );
    assert_eq!(report["result"], json!("healthy"));
    assert_eq!(report["deploy"]["version_id"], json!(green));
    assert_eq!(report["marked"], json!("good"));
    let watched = phase_results(&report, "watch");
    assert!(
        watched.len() >= 3,
        "a run at the start and every second: {watched:?}"
    );
    assert!(watched.iter().all(|r| r == "healthy"), "{watched:?}");
    assert_eq!(sb.version_ids(), versions, "nothing was rolled back");
    assert!(
        sb.s3()
            .tags(&sb.key, &green)
            .contains_key("tfrollback:mark:good"),
        "the deploy carries the mark in S3"
    );
}

#[test]
fn a_failing_command_check_rolls_back_freezes_the_deploy_and_notifies_in_order() {
    let (sb, blue, green) = green_deploy();
    let hook = HttpStub::start(|_, _| (200, "ok".into()));
    let counter = sb.dir.join("check-runs");
    // Healthy at first; on green it then fails (the error rate climbs), on blue it passes.
    let check = format!(
        r#"cmd:n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; test "$TF_OUTPUT_active_slot" = blue || test "$n" -lt 1 || {{ echo "error rate 7% on $TF_OUTPUT_active_slot" >&2; exit 1; }}"#,
        c = counter.display()
    );
    let run = guard(
        &sb,
        &check,
        &[
            "--window",
            "1m",
            "--failures",
            "2",
            "--notify",
            &hook.url("/hook"),
        ],
    )
    .code(6);
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
    let report = run.json();
    assert_eq!(report["result"], json!("rolled_back"));
    assert_eq!(report["trigger"]["check"], json!(check));
    assert_eq!(report["trigger"]["failures_in_a_row"], json!(2));
    assert!(
        report["trigger"]["detail"]
            .as_str()
            .unwrap()
            .contains("error rate 7% on green"),
        "{}",
        report["trigger"]
    );
    // The rollback began on the second failure in a row, not a round later.
    assert_eq!(
        phase_results(&report, "watch"),
        ["healthy", "failing", "failing"]
    );
    // Then the same check validated the rollback: two passes in a row.
    assert_eq!(phase_results(&report, "validate"), ["healthy", "healthy"]);
    assert_eq!(report["rollback"]["status"], json!("rolled_back"));
    assert_eq!(report["rollback"]["target"]["version_id"], json!(blue));

    // In S3 and terraform: blue serves again, through a new state version.
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_eq!(sb.version_ids().len(), 3);
    let record = &sb.history()[0];
    assert_eq!(record["result"], json!("rolled_back"));
    assert_eq!(record["trigger"]["check"], json!(check));
    assert!(
        record["trigger"]["detail"]
            .as_str()
            .unwrap()
            .contains("error rate")
    );

    // Frozen: the pipeline's pre-apply step refuses, guard refuses the rollback's version.
    assert_eq!(
        frozen_keys(&sb),
        [format!("{}.tfrollback/frozen/{green}.json", sb.key)]
    );
    let status = sb
        .tfr(&["status", "--check-frozen", "--json"])
        .code(9)
        .json();
    assert_eq!(status["frozen"][0]["version"]["version_id"], json!(green));
    assert_eq!(status["frozen"][0]["target"]["version_id"], json!(blue));
    let again = sb
        .tfr(&["guard", "--check", "cmd:true", "--auto-approve"])
        .code(1);
    assert!(
        again.stderr.contains("already rolled back"),
        "{}",
        again.stderr
    );

    // Re-applying the same release is the same deploy: still frozen.
    sb.apply(&[("active_slot", "green"), ("green_version", "v2")]);
    let redeploy = sb
        .tfr(&["guard", "--check", "cmd:true", "--auto-approve", "--json"])
        .code(1);
    assert!(redeploy.stderr.contains("is frozen"), "{}", redeploy.stderr);
    assert_eq!(redeploy.json()["error"]["kind"], json!("refused.frozen"));

    sb.tfr(&["unfreeze", &green]).ok();
    sb.tfr(&["status", "--check-frozen"]).ok();
    assert!(frozen_keys(&sb).is_empty());

    // The webhook heard every step, in order, each readable as text.
    let events: Vec<Value> = hook
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "guard.started",
            "check.failed",
            "check.failed",
            "rollback.started",
            "rollback.finished",
            "rollback.healthy"
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["text"].as_str().is_some_and(|t| !t.is_empty()))
    );
    assert!(hook.requests().iter().all(|r| r.method == "POST"));
    assert!(
        !events.iter().any(|e| e.to_string().contains(SECRET)),
        "no notification carries a secret"
    );
}

#[test]
fn an_http_check_templated_from_an_output_rolls_back_when_the_endpoint_answers_500() {
    let (sb, _blue, green) = green_deploy();
    let green_hits = Mutex::new(0);
    let app = HttpStub::start(move |req, _| match req.path.as_str() {
        "/health/blue" => (200, "ok".into()),
        "/health/green" => {
            let mut hits = green_hits.lock().unwrap();
            *hits += 1;
            if *hits == 1 {
                (200, "ok".into())
            } else {
                (500, "upstream connect error".into())
            }
        }
        _ => (404, "no such page".into()),
    });
    let check = format!("http:{}", app.url("/health/{{ output.active_slot }}"));
    let report = guard(&sb, &check, &["--window", "1m"]).code(6).json();
    assert_eq!(report["deploy"]["version_id"], json!(green));
    assert_eq!(
        phase_results(&report, "watch"),
        ["healthy", "failing", "failing"]
    );
    assert!(
        report["trigger"]["detail"]
            .as_str()
            .unwrap()
            .contains("HTTP 500: upstream connect error"),
        "{}",
        report["trigger"]
    );
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    // The URL followed the outputs: green's endpoint while green was live, blue's after.
    let paths: Vec<String> = app.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/health/green",
            "/health/green",
            "/health/green",
            "/health/blue",
            "/health/blue"
        ]
    );
}

#[test]
fn an_alarm_in_alarm_rolls_back_and_one_that_stays_in_alarm_fails_the_rollback_too() {
    let (sb, blue, green) = green_deploy();
    let alarm = format!("{}-5xx", sb.bucket);
    let cw = sb.cloudwatch();
    cw.create_alarm(&alarm);
    cw.set_state(&alarm, "ALARM");
    let run = guard(
        &sb,
        &format!("alarm:{alarm}"),
        &["--failures", "1", "--window", "3s"],
    )
    .code(7);
    let report = run.json();
    assert_eq!(report["result"], json!("rolled_back_unhealthy"));
    assert_eq!(phase_results(&report, "watch"), ["failing"]);
    let validated = phase_results(&report, "validate");
    assert!(
        validated.len() >= 3 && validated.iter().all(|r| r == "failing"),
        "{validated:?}"
    );
    assert!(
        report["trigger"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("ALARM: set to ALARM by the test")
    );
    assert_eq!(report["rollback"]["target"]["version_id"], json!(blue));
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_eq!(frozen_keys(&sb).len(), 1, "the deploy {green} is frozen");
}

#[test]
fn an_alarm_without_data_neither_fails_the_deploy_nor_proves_it_good() {
    let (sb, _blue, green) = green_deploy();
    let versions = sb.version_ids();
    let alarm = format!("{}-latency", sb.bucket);
    let cw = sb.cloudwatch();
    cw.create_alarm(&alarm);
    cw.set_state(&alarm, "INSUFFICIENT_DATA");
    let report = sb
        .tfr(&[
            "guard",
            "--check",
            &format!("alarm:{alarm}"),
            "--window",
            "2s",
            "--interval",
            "1s",
            "--auto-approve",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["result"], json!("not_proven"));
    assert_eq!(report["marked"], Value::Null);
    assert!(
        phase_results(&report, "watch")
            .iter()
            .all(|r| r == "inconclusive")
    );
    unchanged(&sb, &versions, &green);
}

#[test]
fn checks_that_cannot_be_evaluated_refuse_to_start_and_change_nothing() {
    let (sb, _blue, green) = green_deploy();
    let versions = sb.version_ids();
    let missing_alarm = format!("alarm:{}-nonexistent", sb.bucket);
    for (check, says) in [
        ("cmd:no-such-health-tool --probe", "cannot be evaluated"),
        (missing_alarm.as_str(), "no alarm named"),
        (
            "http:http://127.0.0.1:9/{{ output.nope }}",
            "has no output `nope`",
        ),
        (
            "http:http://127.0.0.1:9/?p={{ output.db_password }}",
            "is sensitive",
        ),
        ("tcp:127.0.0.1:80", "is not a check"),
    ] {
        let report = sb.dir.join("guard.md");
        let _ = std::fs::remove_file(&report);
        let run = sb
            .tfr(&[
                "guard",
                "--check",
                check,
                "--auto-approve",
                "--window",
                "1m",
                "--report",
                report.to_str().unwrap(),
            ])
            .code(2);
        assert!(run.stderr.contains(says), "{check}: {}", run.stderr);
        // Past the command line, the report says why guard did not start.
        if !check.starts_with("tcp:") {
            let md = std::fs::read_to_string(&report).unwrap();
            assert!(
                md.starts_with("## tfrollback: guard did not start, nothing was changed")
                    && md.contains(says),
                "{md}"
            );
        }
        assert!(!run.stderr.contains(SECRET));
        unchanged(&sb, &versions, &green);
    }
    // A target that does not exist, and no way to approve the rollback: refused up front.
    let no_target = sb
        .tfr(&[
            "guard",
            "--check",
            "cmd:true",
            "--to",
            "last:never",
            "--auto-approve",
        ])
        .code(1);
    assert!(
        no_target.stderr.contains("marked `never`"),
        "{}",
        no_target.stderr
    );
    let nobody = sb.tfr(&["guard", "--check", "cmd:true"]).code(2);
    assert!(
        nobody.stderr.contains("--auto-approve"),
        "{}",
        nobody.stderr
    );
    unchanged(&sb, &versions, &green);
}

#[test]
fn ctrl_c_while_watching_stops_without_rolling_back() {
    let (sb, _blue, green) = green_deploy();
    let versions = sb.version_ids();
    let mut child = sb
        .tfr_command(&[
            "guard",
            "--check",
            "cmd:true",
            "--window",
            "10m",
            "--interval",
            "1s",
            "--auto-approve",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // The first round of the watch is logged (stderr is not a terminal): it is watching.
    while !seen.lines().any(|l| l.starts_with("watch ")) {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "guard ended early: {seen}"
        );
        seen.push_str(&line);
    }
    let status = interrupt_and_wait(
        &mut child,
        Duration::from_secs(30),
        "Ctrl-C was ignored while watching",
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(rest.contains("nothing was changed"), "{rest}");
    unchanged(&sb, &versions, &green);
}

#[test]
fn to_with_checks_reports_them_and_exits_7_when_they_fail_after_the_rollback() {
    let (sb, _blue, _green) = green_deploy();
    // The checks see the rolled-back version's outputs.
    let report = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
            "--check",
            r#"cmd:test "$TF_OUTPUT_active_slot" = blue"#,
            "--check",
            "cmd:echo 'p99 2.4s over the 2s budget' >&2; exit 1",
        ])
        .code(7)
        .json();
    assert_eq!(report["status"], json!("rolled_back"));
    assert_eq!(report["verified"], json!(true));
    let results: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["healthy", "failing"]);
    assert!(
        report["checks"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("p99 2.4s")
    );
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_eq!(sb.history()[0]["exit_code"], json!(7));
}

#[test]
fn guard_does_not_roll_back_a_deploy_someone_else_replaced_while_it_watched() {
    let (sb, _blue, green) = green_deploy();
    let counter = sb.dir.join("check-runs");
    // Healthy once; then, before failing, someone else deploys v3 to green with terraform.
    let check = format!(
        "cmd:n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; \
         test \"$n\" -lt 1 && exit 0; \
         test \"$n\" -eq 1 && terraform apply -input=false -auto-approve -var active_slot=green -var green_version=v3 >/dev/null 2>&1; \
         exit 1",
        c = counter.display()
    );
    let report = guard(&sb, &check, &["--window", "1m"]).code(1).json();
    assert_eq!(report["result"], json!("rollback_failed"));
    assert!(
        report["notes"][0]
            .as_str()
            .unwrap()
            .contains("guard does not roll back a deploy it did not watch"),
        "{report:#}"
    );
    // The other deploy stands, nothing was rolled back, and nothing is frozen.
    let versions = sb.version_ids();
    assert_eq!(versions.len(), 3);
    assert_ne!(versions[0], green);
    assert_eq!(sb.current_output("green_version"), json!("v3"));
    assert!(
        frozen_keys(&sb).is_empty(),
        "a refused rollback lifts the freeze"
    );
    assert_eq!(report["frozen"], json!(false));
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null);
}

#[test]
fn a_guard_killed_mid_rollback_leaves_the_deploy_frozen_and_the_rollback_to_recover() {
    let (sb, _blue, green) = green_deploy();
    let mut child = sb
        .tfr_command(&[
            "guard",
            "--check",
            r#"cmd:test "$TF_OUTPUT_active_slot" = blue"#,
            "--failures",
            "1",
            "--interval",
            "1s",
            "--auto-approve",
            "--max-destroy",
            "10",
        ])
        .env("TFROLLBACK_FAILPOINT", "apply=pause")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal_key = format!("{}.tfrollback/journal.json", sb.key);
    let deadline = Instant::now() + Duration::from_mins(2);
    while !(sb.s3().exists(&journal_key)
        && sb.s3().get_json(&journal_key, None)["steps"]
            .as_array()
            .and_then(|s| s.last())
            .is_some_and(|s| s["name"] == json!("apply")))
    {
        assert!(
            Instant::now() < deadline,
            "the rollback never reached its apply"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The runner dies with the job: SIGKILL, no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();

    // The deploy was frozen before the rollback began.
    assert_eq!(frozen_keys(&sb).len(), 1);
    // A retried guard is sent to `recover` first; it changes nothing.
    let retried = sb
        .tfr(&["guard", "--check", "cmd:true", "--auto-approve"])
        .code(5);
    assert!(
        retried.stderr.contains("tfrollback recover"),
        "{}",
        retried.stderr
    );
    sb.recover_when_stopped();
    // recover put the snapshot back (the apply may have begun): the deploy's content is
    // current again, and guard knows it as the frozen release.
    assert_eq!(sb.current_output("active_slot"), json!("green"));
    let again = sb
        .tfr(&["guard", "--check", "cmd:true", "--auto-approve"])
        .code(1);
    assert!(
        again.stderr.contains(&format!("version {green} is frozen")),
        "{}",
        again.stderr
    );
}
