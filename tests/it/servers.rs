//! The S3 scenarios on every server users run tfrollback against: the AWS-faithful (patched)
//! moto, stock moto (no answer rewritten: tfrollback must cope with its naming itself) and
//! LocalStack (stricter checksums and conditions, AWS-like version ids, no DynamoDB). Each
//! scenario runs once per server, with real terraform writing the states through its backend
//! block, and checks what ends up in S3 and what terraform makes of it, not only exit codes.
//!
//! Tests of different servers share nothing and run in parallel with the rest of the suite;
//! the stock moto and LocalStack servers start when the first test needing them runs.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    Fault, Flavor, Head, LockStyle, Proxy, Sandbox, deployed, deployed_on, lab, server,
};

/// One `#[test]` per server for the scenario function of the same name.
macro_rules! on_every_server {
    ($scenario:ident) => {
        mod $scenario {
            use crate::support::Flavor;

            #[test]
            fn patched_moto() {
                super::$scenario(Flavor::PatchedMoto);
            }

            #[test]
            fn stock_moto() {
                super::$scenario(Flavor::StockMoto);
            }

            #[test]
            fn localstack() {
                super::$scenario(Flavor::LocalStack);
            }
        }
    };
}

on_every_server!(reads_diffs_and_marks);
on_every_server!(restores_the_state_only);
on_every_server!(rolls_back_to_previous);
on_every_server!(recovers_after_a_kill);
on_every_server!(pages_through_versions_and_delete_markers);
on_every_server!(guards_a_deploy_and_freezes_it);

/// Every lock the server can hold: the lock file and, where there is DynamoDB, the table too
/// (so the digest terraform checks is exercised wherever it exists).
fn every_lock(flavor: Flavor) -> LockStyle {
    if flavor.has_dynamodb() {
        LockStyle::Both
    } else {
        LockStyle::LockFile
    }
}

/// The versions S3 holds of the lock file `<key>.tflock` (each lock taken leaves one, and a
/// delete marker when released).
fn lock_file_versions(sb: &Sandbox) -> usize {
    let lock_key = format!("{}.tflock", sb.key);
    sb.s3()
        .versions_under(&lock_key)
        .into_iter()
        .filter(|(key, _)| *key == lock_key)
        .count()
}

/// `terraform plan -detailed-exitcode` with these variables: 0 when the infrastructure is
/// what the configuration asks for, 2 when it drifted, 1 when terraform refuses the state.
fn plan(sb: &Sandbox, vars: &[(&str, &str)]) -> i32 {
    let mut args = vec![
        "plan".to_string(),
        "-input=false".into(),
        "-detailed-exitcode".into(),
    ];
    args.extend(vars.iter().map(|(k, v)| format!("-var={k}={v}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = sb.terraform(&args);
    assert_ne!(run.code, 1, "terraform plan failed:\n{}", run.stderr);
    run.code
}

/// The version tfrollback wrote carries the SHA-256 checksum of its bytes, as terraform's
/// writes do (LocalStack refuses a write whose checksum is wrong; stock moto would store it).
fn assert_checksummed(sb: &Sandbox, version_id: &str) {
    use sha2::Digest;
    let body = sb.s3().get(&sb.key, Some(version_id));
    let expected = aws_smithy_types::base64::encode(sha2::Sha256::digest(&body));
    assert_eq!(
        sb.s3().checksum_sha256(&sb.key, version_id),
        Some(expected),
        "version {version_id} has no checksum of its bytes"
    );
}

fn assert_kept(sb: &Sandbox, before: &[String]) {
    let now = sb.version_ids();
    for id in before {
        assert!(now.contains(id), "version {id} was lost");
    }
}

fn reads_diffs_and_marks(flavor: Flavor) {
    let sb = deployed_on(flavor, every_lock(flavor), Some("v2"));
    let ids = sb.version_ids();
    assert_eq!(
        ids.len(),
        2,
        "two applies, two versions on {}",
        flavor.name()
    );
    let lineage = sb.current_state()["lineage"].clone();

    let list = sb.tfr(&["list", "--json", "--no-cache"]).ok().json();
    let versions = list["versions"].as_array().unwrap();
    let listed: Vec<&str> = versions
        .iter()
        .map(|v| v["version_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed, ids,
        "tfrollback lists exactly the versions S3 holds, newest first"
    );
    assert_eq!(versions[0]["serial"], json!(2));
    assert_eq!(versions[1]["serial"], json!(1));
    assert!(versions.iter().all(|v| v["lineage"] == lineage));
    assert_eq!(versions[0]["outputs"]["active_slot"], json!("green"));
    assert_eq!(versions[1]["slot"], json!("blue"));
    assert_eq!(versions[0]["outputs"]["db_password"], json!("(sensitive)"));

    let shown = sb.tfr(&["show", "previous", "--json"]).ok();
    assert!(!shown.stdout.contains(crate::support::SECRET));
    let shown = shown.json();
    assert_eq!(shown["version_id"], json!(ids[1]));
    assert_eq!(shown["outputs"]["green_version"], json!("v1"));

    let diff = sb.tfr(&["diff", "previous", "--json"]).ok().json();
    assert_eq!(diff["from"]["version_id"], json!(ids[0]));
    assert_eq!(diff["to"]["version_id"], json!(ids[1]));
    let set: Vec<(&str, &Value, &Value)> = diff["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), &v["current"], &v["rollback"]))
        .collect();
    assert!(
        set.contains(&("active_slot", &json!("green"), &json!("blue"))),
        "{set:?}"
    );
    assert!(
        set.contains(&("green_version", &json!("v2"), &json!("v1"))),
        "{set:?}"
    );

    let marked = sb.tfr(&["mark", "previous", "--json"]).ok().json();
    assert_eq!(marked["changed"], json!(true));
    // The mark is a tag on the S3 version itself.
    assert!(
        sb.s3()
            .tags(&sb.key, &ids[1])
            .contains_key("tfrollback:mark:good"),
        "no mark tag on version {}",
        ids[1]
    );
    let good = sb.tfr(&["show", "last-good", "--json"]).ok().json();
    assert_eq!(good["version_id"], json!(ids[1]));
    assert_eq!(good["marks"], json!(["good"]));
    let diff = sb.tfr(&["diff", "last-good", "--json"]).ok().json();
    assert_eq!(diff["to"]["version_id"], json!(ids[1]));

    // Reads and marks write no state version and take no lock.
    assert_eq!(sb.version_ids(), ids);
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null);
    assert_eq!(status["unfinished"], Value::Null);
    assert_eq!(status["lock_configured"], json!(true));
    assert_eq!(sb.history(), Vec::<Value>::new());
}

fn restores_the_state_only(flavor: Flavor) {
    // No lock at all: the state is written unguarded, as such backends do, once --no-lock
    // says that is intended.
    let sb = deployed_on(flavor, LockStyle::None, None);
    let before = sb.version_ids();
    let current = sb.current_state();
    let target = sb.s3().get_json(&sb.key, Some(&before[1]));

    let report = sb
        .tfr(&[
            "restore",
            "previous",
            "--auto-approve",
            "--no-lock",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["status"], json!("restored_state"));
    assert_eq!(report["target"]["version_id"], json!(before[1]));
    assert_eq!(report["plan"], json!({"add": 0, "change": 0, "destroy": 0}));

    let restored = sb.current_state();
    assert_eq!(
        restored["serial"].as_u64().unwrap(),
        current["serial"].as_u64().unwrap() + 1,
        "a restore is written one serial above the current state"
    );
    assert_eq!(restored["lineage"], current["lineage"]);
    assert_eq!(restored["outputs"], target["outputs"]);
    assert_eq!(restored["resources"], target["resources"]);
    let after = sb.version_ids();
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(report["new_version_id"], json!(after[0]));
    assert_checksummed(&sb, &after[0]);
    assert_kept(&sb, &before);

    // The fixture's defaults are the blue deploy the restore brought back.
    assert_eq!(plan(&sb, &[]), 0);
    let history = sb.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["result"], json!("restored_state"));
    assert_eq!(history[0]["to"]["version_id"], json!(before[1]));
}

fn rolls_back_to_previous(flavor: Flavor) {
    let sb = deployed_on(flavor, every_lock(flavor), Some("v2"));
    let before = sb.version_ids();
    let current = sb.current_state();
    let locks_before = lock_file_versions(&sb);

    let report = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["status"], json!("rolled_back"));
    assert_eq!(report["verified"], json!(true));
    assert_eq!(report["target"]["version_id"], json!(before[1]));
    assert_eq!(report["snapshot"]["version_id"], json!(before[0]));

    let after = sb.current_state();
    assert_eq!(after["outputs"]["active_slot"]["value"], json!("blue"));
    assert_eq!(after["outputs"]["green_version"]["value"], json!("v1"));
    assert_eq!(after["lineage"], current["lineage"]);
    assert!(after["serial"].as_u64().unwrap() > current["serial"].as_u64().unwrap());
    assert_eq!(report["new_version_id"], json!(sb.version_ids()[0]));
    assert_checksummed(&sb, &sb.version_ids()[0]);
    assert_kept(&sb, &before);
    // The lock file was really taken in the bucket, and released.
    assert!(
        lock_file_versions(&sb) > locks_before,
        "the rollback never wrote {}.tflock",
        sb.key
    );
    sb.assert_unlocked();
    sb.assert_digest_matches();
    // Blue with v1 everywhere is the fixture's default: terraform sees nothing to do.
    assert_eq!(plan(&sb, &[]), 0);

    let history = sb.history();
    assert_eq!(history[0]["result"], json!("rolled_back"));
    assert_eq!(history[0]["to"]["version_id"], json!(before[1]));
    // STS answered too: the record names the server's caller.
    assert!(
        history[0]["who"]["arn"]
            .as_str()
            .is_some_and(|arn| arn.starts_with("arn:aws:")),
        "{:#}",
        history[0]
    );
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null);
    assert_eq!(status["unfinished"], Value::Null);
}

/// `guard` with a command check that fails on green: the rollback, the freeze next to the state
/// (written, listed, read back by `status`, deleted by `unfreeze`) and the mark of a healthy
/// deploy, on this server's S3.
fn guards_a_deploy_and_freezes_it(flavor: Flavor) {
    let sb = deployed_on(flavor, every_lock(flavor), Some("v2"));
    let before = sb.version_ids();
    sb.tfr(&["mark", &before[1]]).ok();
    let check = r#"cmd:test "$TF_OUTPUT_active_slot" = blue"#;
    let guard = |args: &[&str]| {
        let mut all = vec![
            "guard",
            "--check",
            check,
            "--failures",
            "1",
            "--window",
            "2s",
            "--interval",
            "1s",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
        ];
        all.extend_from_slice(args);
        sb.tfr(&all)
    };
    let report = guard(&[]).code(6).json();
    assert_eq!(report["result"], json!("rolled_back"));
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_kept(&sb, &before);
    sb.assert_unlocked();
    let frozen_key = format!("{}.tfrollback/frozen/{}.json", sb.key, before[0]);
    assert!(
        sb.s3().exists(&frozen_key),
        "the freeze is next to the state"
    );
    let status = sb
        .tfr(&["status", "--check-frozen", "--json"])
        .code(9)
        .json();
    assert_eq!(
        status["frozen"][0]["version"]["version_id"],
        json!(before[0])
    );
    sb.tfr(&["unfreeze"]).ok();
    assert!(!sb.s3().exists(&frozen_key));
    sb.tfr(&["status", "--check-frozen"]).ok();

    // Blue is healthy: guard marks the rolled-back version good.
    let report = guard(&["--to", &before[0]]).ok().json();
    assert_eq!(report["result"], json!("healthy"));
    let current = sb.version_ids()[0].clone();
    assert!(
        sb.s3()
            .tags(&sb.key, &current)
            .contains_key("tfrollback:mark:good")
    );
}

fn recovers_after_a_kill(flavor: Flavor) {
    let sb = deployed_on(flavor, every_lock(flavor), Some("v2"));
    let snapshot = sb.current_state();
    let before = sb.version_ids();
    let journal_key = format!("{}.tfrollback/journal.json", sb.key);

    // The warm-up of the flip sleeps, so the apply is still running when tfrollback dies.
    let mut child = sb
        .tfr_command(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--var",
            "slow_seconds=10",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        assert!(Instant::now() < deadline, "the apply never started");
        if sb.s3().exists(&journal_key)
            && sb.s3().get_json(&journal_key, None)["terraform_pid"].is_u64()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    child.kill().unwrap();
    child.wait().unwrap();

    let status = sb.tfr(&["status", "--json"]).ok().json();
    let steps = status["unfinished"]["steps"].as_array().unwrap();
    assert_eq!(steps.last().unwrap()["name"], json!("apply"));
    assert!(
        status["lock"]["Operation"]
            .as_str()
            .is_some_and(|op| op.starts_with("tfrollback to")),
        "the dead rollback still holds the lock: {status:#}"
    );

    // terraform may outlive tfrollback for the rest of its sleep; recover waits for it.
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
    assert_kept(&sb, &before);
    sb.assert_unlocked();
    sb.assert_digest_matches();
    // The apply was cut short: terraform reads the state (0 or 2), and one apply converges.
    plan(&sb, &[("active_slot", "green"), ("green_version", "v2")]);
    sb.apply(&[("active_slot", "green"), ("green_version", "v2")]);
    assert_eq!(
        plan(&sb, &[("active_slot", "green"), ("green_version", "v2")]),
        0
    );
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["unfinished"], Value::Null);
    assert_eq!(status["lock"], Value::Null);
}

fn pages_through_versions_and_delete_markers(flavor: Flavor) {
    let sb = Sandbox::builder("bluegreen")
        .server(flavor)
        .lock(LockStyle::None)
        .build();
    sb.deploy(None);
    let s3 = sb.s3();
    let written = s3.get(&sb.key, None);
    // Five more copies of the terraform-written body, a delete, and the state put back: nine
    // entries, one a delete marker in the middle.
    for _ in 0..5 {
        s3.put(&sb.key, &written);
    }
    let marker = s3.delete(&sb.key);
    let latest = s3.put(&sb.key, &written);
    let truth = sb.version_ids();
    assert_eq!(truth.len(), 9);

    let listed_with = |page_size: &str| -> Vec<Value> {
        let list = sb
            .tfr(&["list", "--json", "--page-size", page_size])
            .ok()
            .json();
        list["versions"].as_array().unwrap().clone()
    };
    // Pages of one, pages ending inside and exactly at the end (LocalStack then says the
    // listing is truncated and answers an empty last page), and one page for everything.
    for page_size in ["1", "2", "3", "9", "1000"] {
        let listed = listed_with(page_size);
        let ids: Vec<&str> = listed
            .iter()
            .map(|v| v["version_id"].as_str().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 9, "page size {page_size}: {ids:?}");
        assert!(truth.iter().all(|id| ids.contains(&id.as_str())));
        assert_eq!(ids[0], latest, "page size {page_size}");
        let markers: Vec<&Value> = listed
            .iter()
            .filter(|v| v["delete_marker"] == json!(true))
            .collect();
        assert_eq!(markers.len(), 1, "page size {page_size}");
        assert_eq!(markers[0]["version_id"], json!(marker));
    }

    // Keys that merely start like the state's are not its versions.
    s3.put(&format!("{}.backup", sb.key), b"{}");
    s3.put(&format!("{}.tflock", sb.key), b"{}");
    assert_eq!(listed_with("2").len(), 9);

    // A delete marker is shown from the listing and refused as a target, before any read of
    // its version (which S3 and LocalStack answer 405, stock moto 404).
    let shown = sb.tfr(&["show", &marker, "--json"]).ok().json();
    assert_eq!(shown["delete_marker"], json!(true));
    let refused = sb.tfr(&["restore", &marker, "--auto-approve"]).code(1);
    assert!(
        refused.stderr.contains("delete marker"),
        "{}",
        refused.stderr
    );
    assert_eq!(sb.version_ids(), truth, "a refused restore wrote nothing");
}

/// The raw body of an unsigned `GET /<bucket>?versioning` (moto does not check signatures).
fn raw_versioning_answer(endpoint: &str, bucket: &str) -> String {
    let host = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "GET /{bucket}?versioning HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn stock_moto_really_answers_with_its_own_root_names() {
    // The stock scenarios prove something only while the stock server is stock: tfrollback,
    // not the launcher, must be what copes with moto's naming.
    let sb = Sandbox::builder("bluegreen")
        .server(Flavor::StockMoto)
        .lock(LockStyle::None)
        .build();
    let stock = raw_versioning_answer(&server(Flavor::StockMoto).endpoint, &sb.bucket);
    assert!(stock.contains("<GetBucketVersioningResponse"), "{stock}");
    let patched = raw_versioning_answer(&lab().endpoint, &Sandbox::new("bluegreen").bucket);
    assert!(patched.contains("<VersioningConfiguration"), "{patched}");
}

/// A proxy in front of the patched moto whose GetBucketVersioning answers are `body`, 200 OK.
fn answering_versioning_with(body: &str) -> Proxy {
    answering_versioning_with_status(200, body)
}

/// A proxy in front of the patched moto whose GetBucketVersioning answers are `status`, `body`.
fn answering_versioning_with_status(status: u16, body: &str) -> Proxy {
    let proxy = Proxy::start(&lab().endpoint);
    proxy.add(crate::support::Rule::new(
        "versioning",
        |h: &Head| h.method == "GET" && h.target.contains("?versioning"),
        Fault::Respond {
            status,
            content_type: "application/xml",
            body: body.to_string(),
        },
    ));
    proxy
}

#[test]
fn an_answer_no_s3_sends_says_what_was_wrong_and_what_to_do() {
    let sb = deployed(LockStyle::DynamoDb, None);
    let before = sb.version_ids();
    let cases = [
        (
            "<?xml version=\"1.0\"?><html><body>Sign in to continue</body></html>",
            "the answer's XML root was <html> where S3 sends <VersioningConfiguration>",
        ),
        ("OK", "the body was not XML (it began \"OK\")"),
    ];
    for (body, problem) in cases {
        let proxy = answering_versioning_with(body);
        for args in [
            &["list"][..],
            &["restore", "previous", "--auto-approve"][..],
        ] {
            let run = sb
                .tfr_with(args, &[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())])
                .code(1);
            let expected = format!(
                "error: the answer to GetBucketVersioning on s3://{} could not be read: {problem} (HTTP 200)",
                sb.bucket
            );
            assert!(run.stderr.contains(&expected), "{}", run.stderr);
            assert!(
                run.stderr.contains("may not be an S3-compatible server"),
                "{}",
                run.stderr
            );
            assert!(run.stderr.contains("-vv"), "{}", run.stderr);
            assert!(!run.stderr.contains("no message"), "{}", run.stderr);
        }
        assert!(proxy.hits("versioning") >= 2);
    }
    // Refused before anything was written.
    assert_eq!(sb.version_ids(), before);
}

#[test]
fn an_error_answer_that_is_no_s3_error_document_says_what_came() {
    let sb = deployed(LockStyle::DynamoDb, None);
    // 400: not retried, so the test does not wait for the SDK's backoff.
    let proxy = answering_versioning_with_status(400, "<html><h1>Bad Request</h1></html>");
    let run = sb
        .tfr_with(&["list"], &[("AWS_ENDPOINT_URL", proxy.endpoint.as_str())])
        .code(1);
    let expected = format!(
        "error: S3 refused GetBucketVersioning on s3://{}: HTTP 400: the answer was no S3 error \
         document: the answer's XML root was <html> where S3 sends <Error>",
        sb.bucket
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(run.stderr.contains("hint: "), "{}", run.stderr);
    assert_eq!(proxy.hits("versioning"), 1);
}
