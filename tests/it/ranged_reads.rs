//! What `list`, `show` and rollbacks ask of S3, counted through the proxy: a cold `list`
//! reads each version's head and tail with ranged GETs (far fewer bytes than the bodies), a
//! warm one makes the listing request and nothing else, `list --count-resources` reads whole
//! bodies, and a rollback reads whole only the current and target bodies. The states are
//! ones terraform wrote (the bluegreen fixture with many instances, so a body is several
//! times the head read) or deliberately broken copies of them.

use md5::Digest;
use serde_json::{Value, json};

use crate::support::{
    Fault, Head, LockStyle, Proxy, Rule, SECRET, Sandbox, Seen, deployed, lab, rounds,
};

/// Instances per slot: enough for a body of a few hundred KiB, several times a head read.
const INSTANCES: &str = "400";

/// The bluegreen fixture deployed blue, then green, then green v2, with many instances.
fn big_deploy(lock: LockStyle) -> Sandbox {
    let sb = Sandbox::builder("bluegreen").lock(lock).build();
    sb.apply(&[("active_slot", "blue"), ("instance_count", INSTANCES)]);
    sb.apply(&[("active_slot", "green"), ("instance_count", INSTANCES)]);
    sb.apply(&[
        ("active_slot", "green"),
        ("green_version", "v2"),
        ("instance_count", INSTANCES),
    ]);
    sb
}

fn state_gets<'a>(seen: &'a [Seen], key: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|s| s.head.object("GET", key) && s.head.target.contains("versionId="))
        .collect()
}

fn describe(seen: &[Seen]) -> String {
    seen.iter()
        .map(|s| format!("{} -> {} ({} B)", s.head.describe(), s.status, s.body_bytes))
        .collect::<Vec<_>>()
        .join("\n")
}

fn list_json(sb: &Sandbox, proxy: &Proxy, extra: &[&str]) -> (Value, Vec<Seen>) {
    proxy.take_seen();
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(extra);
    let run = sb
        .tfr_with(&args, &[("AWS_ENDPOINT_URL", &proxy.endpoint)])
        .ok();
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
    (run.json(), proxy.take_seen())
}

#[test]
fn a_cold_list_reads_ranges_and_a_warm_one_only_the_listing() {
    let sb = big_deploy(LockStyle::DynamoDb);
    let in_s3 = sb.s3().versions(&sb.key);
    assert_eq!(in_s3.len(), 3);
    let total: usize = in_s3.iter().map(|v| v.size as usize).sum();
    assert!(
        in_s3.iter().all(|v| v.size > 300_000),
        "the fixture makes bodies several times a head read: {in_s3:?}"
    );
    let proxy = Proxy::start(&lab().endpoint);

    // Cold: the listing, versioning and the marks index, then a head and a tail per version.
    let (cold, seen) = list_json(&sb, &proxy, &[]);
    let gets = state_gets(&seen, &sb.key);
    assert!(
        gets.iter().all(|g| g.head.range().is_some()),
        "every read of a body is ranged:\n{}",
        describe(&seen)
    );
    assert_eq!(gets.len(), 2 * in_s3.len(), "{}", describe(&seen));
    let down: usize = gets.iter().map(|g| g.body_bytes).sum();
    assert!(
        down * 3 < total,
        "{down} bytes of bodies read for {total} bytes of state:\n{}",
        describe(&seen)
    );
    let versions = cold["versions"].as_array().unwrap();
    for (entry, version) in versions.iter().zip(&in_s3) {
        let body = sb.s3().get_json(&sb.key, Some(&version.version_id));
        assert_eq!(entry["version_id"], json!(version.version_id));
        assert_eq!(entry["serial"], body["serial"]);
        assert_eq!(entry["lineage"], body["lineage"]);
        assert_eq!(entry["terraform_version"], body["terraform_version"]);
        assert_eq!(
            entry["outputs"]["green_version"],
            body["outputs"]["green_version"]["value"]
        );
        assert_eq!(entry["outputs"]["db_password"], json!("(sensitive)"));
        assert_eq!(entry["resources"], Value::Null, "not counted from a head");
        assert_eq!(entry["error"], Value::Null);
        assert_eq!(entry["intermediate"], json!(false));
    }
    assert_eq!(versions[0]["slot"], json!("green"));
    assert_eq!(versions[2]["slot"], json!("blue"));

    // Warm: the listing alone, the same answer.
    let (warm, seen) = list_json(&sb, &proxy, &[]);
    assert_eq!(seen.len(), 1, "{}", describe(&seen));
    assert!(seen[0].head.list_versions(), "{}", describe(&seen));
    assert_eq!(warm, cold);

    // Counting reads the bodies whole, once; the counts are then cached.
    let (counted, seen) = list_json(&sb, &proxy, &["--count-resources"]);
    let gets = state_gets(&seen, &sb.key);
    assert_eq!(gets.len(), in_s3.len(), "{}", describe(&seen));
    assert!(gets.iter().all(|g| g.head.range().is_none()));
    for (entry, version) in counted["versions"].as_array().unwrap().iter().zip(&in_s3) {
        let body = sb.s3().get_json(&sb.key, Some(&version.version_id));
        assert_eq!(
            entry["resources"],
            json!(body["resources"].as_array().unwrap().len())
        );
    }
    let (after, seen) = list_json(&sb, &proxy, &[]);
    assert_eq!(seen.len(), 1, "{}", describe(&seen));
    assert_eq!(
        after, counted,
        "a counted summary replaced the head-only one"
    );

    // A mark changes the index: the listing shows its new ETag, so it is read once again.
    sb.tfr(&["mark", "previous"]).ok();
    let (marked, seen) = list_json(&sb, &proxy, &[]);
    assert_eq!(marked["versions"][1]["marks"], json!(["good"]));
    let names: Vec<String> = seen.iter().map(|s| s.head.describe()).collect();
    assert_eq!(names.len(), 2, "{}", describe(&seen));
    assert!(
        names[1].contains(".tfrollback/marks.json"),
        "{}",
        describe(&seen)
    );
    let (_, seen) = list_json(&sb, &proxy, &[]);
    assert_eq!(seen.len(), 1, "{}", describe(&seen));

    // --no-cache asks S3 for everything again, still by ranges.
    let (fresh, seen) = list_json(&sb, &proxy, &["--no-cache"]);
    assert!(
        seen.iter()
            .any(|s| s.head.query_names().contains(&"versioning"))
    );
    assert!(
        state_gets(&seen, &sb.key)
            .iter()
            .all(|g| g.head.range().is_some())
    );
    assert_eq!(
        fresh["versions"][0]["serial"],
        marked["versions"][0]["serial"]
    );
}

#[test]
fn limit_and_show_read_only_the_heads_they_need() {
    let sb = big_deploy(LockStyle::DynamoDb);
    let in_s3 = sb.s3().versions(&sb.key);
    let proxy = Proxy::start(&lab().endpoint);

    let (one, seen) = list_json(&sb, &proxy, &["--limit", "1"]);
    assert_eq!(one["versions"].as_array().unwrap().len(), 1);
    let gets = state_gets(&seen, &sb.key);
    assert_eq!(gets.len(), 2, "one head, one tail:\n{}", describe(&seen));
    assert!(
        gets.iter()
            .all(|g| g.head.target.contains(&in_s3[0].version_id))
    );

    let run = sb
        .tfr_with(
            &["show", &in_s3[1].version_id, "--json"],
            &[("AWS_ENDPOINT_URL", &proxy.endpoint)],
        )
        .ok();
    let shown = run.json();
    let seen = proxy.take_seen();
    assert_eq!(shown["outputs"]["active_slot"], json!("green"));
    assert_eq!(shown["outputs"]["db_password"], json!("(sensitive)"));
    assert!(
        state_gets(&seen, &sb.key)
            .iter()
            .all(|g| g.head.range().is_some()),
        "{}",
        describe(&seen)
    );
    let human = sb
        .tfr_with(
            &["show", &in_s3[1].version_id],
            &[("AWS_ENDPOINT_URL", &proxy.endpoint)],
        )
        .ok()
        .stdout;
    assert!(human.contains("Resources  not counted"), "{human}");
}

#[test]
fn a_big_body_broken_past_its_head_is_still_diagnosed() {
    let sb = big_deploy(LockStyle::DynamoDb);
    let body = sb.s3().get(&sb.key, None);
    // Cut short in the middle of the resources: the head is fine, the tail is not an end.
    let truncated = sb.plant_previous(&body[..body.len() * 2 / 3]);
    // Data after the end of the document.
    let mut trailing = body.clone();
    trailing.extend_from_slice(b"\n{\"more\": 1}\n");
    let trailed = sb.plant_previous(&trailing);
    // OpenTofu's encrypted form, as large as the state it replaces.
    let encrypted = sb.plant_previous(
        format!(
            "{{\"serial\": 9, \"lineage\": \"x\", \"meta\": {{}}, \"encrypted_data\": \"{}\", \"encryption_version\": \"v0\"}}",
            "QUFB".repeat(body.len() / 4)
        )
        .as_bytes(),
    );
    let list = sb.tfr(&["list", "--json"]).ok().json();
    let error_of = |id: &str| {
        list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version_id"] == json!(id))
            .map(|v| v["error"].as_str().unwrap_or_default().to_string())
            .unwrap()
    };
    assert!(error_of(&truncated).contains("truncated"), "{list:#}");
    assert!(
        error_of(&trailed).contains("after the end of the document"),
        "{list:#}"
    );
    assert!(error_of(&encrypted).contains("encrypted"), "{list:#}");
    let run = sb.tfr(&["show", &truncated]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
}

#[test]
fn a_rollback_reads_whole_only_the_current_and_target_bodies() {
    let sb = big_deploy(LockStyle::DynamoDb);
    let in_s3 = sb.s3().versions(&sb.key);
    let proxy = Proxy::start(&lab().endpoint);
    for args in [
        &["restore", "previous", "--auto-approve"][..],
        &["to", "previous", "--auto-approve", "--max-destroy", "1000"][..],
    ] {
        proxy.take_seen();
        sb.tfr_with(args, &[("AWS_ENDPOINT_URL", &proxy.endpoint)])
            .ok();
        let seen = proxy.take_seen();
        let whole: Vec<&Seen> = state_gets(&seen, &sb.key)
            .into_iter()
            .filter(|g| g.head.range().is_none())
            .collect();
        eprintln!(
            "tfrollback {}: {} requests through the proxy\n{}",
            args.join(" "),
            seen.len(),
            describe(&seen)
        );
        assert!(
            whole.len() <= 2,
            "current and target (the snapshot check sends no body when unchanged):\n{}",
            describe(&seen)
        );
        assert!(
            whole
                .iter()
                .all(|g| g.body_bytes <= in_s3[0].size as usize + 64),
            "{}",
            describe(&seen)
        );
    }
}

/// tfrollback's own requests among `seen` (terraform's go through the proxy too).
fn own(seen: &[Seen]) -> Vec<Seen> {
    seen.iter()
        .filter(|s| s.head.by_tfrollback())
        .cloned()
        .collect()
}

fn describe_rounds(seen: &[Seen]) -> String {
    rounds(seen)
        .iter()
        .enumerate()
        .map(|(i, round)| {
            let names: Vec<String> = round.iter().map(|s| s.head.describe()).collect();
            format!("{:>2}: {}", i + 1, names.join("  |  "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The most requests of tfrollback's own, and rounds of them (see `rounds`), that a rollback
/// of the lab's deploy may make, lock in DynamoDB. The rounds, for `to previous`: the listing
/// (with versioning, the marks index, the unfinished-rollback check and the caller lookup
/// beside it); the two bodies; the lock; the snapshot check beside the first heartbeat; the
/// journal as the plan starts; the journal before the apply; the journal naming terraform's
/// pid, during the apply; the journal and the state terraform wrote, during the follow-up
/// plan; the heartbeat's end; the lock's release; the journal's end; the history record.
/// `restore previous` writes the state and its digest instead of the apply and its pid.
const ROLLBACK_BOUNDS: [(&str, usize, usize); 2] = [("restore", 18, 12), ("to", 19, 12)];

#[test]
fn a_rollback_makes_few_requests_one_after_the_other() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let proxy = Proxy::start(&lab().endpoint);
    // Every request of tfrollback's takes a while, as over a real link: requests sent
    // together are then in flight together, and the rounds count what waited for what.
    proxy.add(Rule::new(
        "link",
        |h: &Head| h.by_tfrollback(),
        Fault::Delay(std::time::Duration::from_millis(300)),
    ));
    for (command, most_requests, most_rounds) in ROLLBACK_BOUNDS {
        let mut args = vec![command, "previous", "--auto-approve"];
        if command == "to" {
            args.extend(["--max-destroy", "10"]);
        }
        proxy.take_seen();
        let report = sb
            .tfr_with(
                &[&args[..], &["--json"]].concat(),
                &[
                    ("AWS_ENDPOINT_URL", &proxy.endpoint),
                    // No heartbeat refresh during the run: only the requests the steps make.
                    ("TFROLLBACK_HEARTBEAT", "600"),
                ],
            )
            .ok()
            .json();
        assert!(
            report["status"] == json!("restored_state") || report["status"] == json!("rolled_back"),
            "{report:#}"
        );
        let seen = own(&proxy.take_seen());
        let described = describe_rounds(&seen);
        let rounds = rounds(&seen).len();
        eprintln!(
            "tfrollback {}: {} requests in {rounds} rounds\n{described}",
            args.join(" "),
            seen.len(),
        );
        assert!(
            seen.len() <= most_requests && rounds <= most_rounds,
            "{command}: {} requests in {rounds} rounds, more than {most_requests} in \
             {most_rounds}:\n{described}",
            seen.len()
        );
        // Under the lock the current state is asked again only if it changed: unchanged, it
        // is not sent again.
        let snapshot_check: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.head.object("GET", &sb.key) && s.head.header("if-none-match").is_some())
            .collect();
        assert_eq!(snapshot_check.len(), 1, "{described}");
        assert_eq!(snapshot_check[0].status, 304, "{described}");
    }
}

#[test]
fn a_rollback_over_a_long_history_reads_two_bodies_and_a_few_heads() {
    let sb = Sandbox::builder("bluegreen")
        .lock(LockStyle::DynamoDb)
        .build();
    sb.apply(&[("active_slot", "blue"), ("instance_count", INSTANCES)]);
    sb.apply(&[("active_slot", "green"), ("instance_count", INSTANCES)]);
    // 298 more deploys' worth of history: terraform's two states again, alternating, each with
    // the next serial, ending on green as the infrastructure is; the digest as terraform sets it.
    // The bytes as terraform wrote them but for the serial (its field order puts the outputs
    // before the resources: what a head read relies on).
    let versions = sb.s3().versions(&sb.key);
    let (green, blue) = (
        String::from_utf8(sb.s3().get(&sb.key, Some(&versions[0].version_id))).unwrap(),
        String::from_utf8(sb.s3().get(&sb.key, Some(&versions[1].version_id))).unwrap(),
    );
    let serial_of = |body: &str| serde_json::from_str::<Value>(body).unwrap()["serial"].clone();
    let with_serial = |body: &str, serial: u64| {
        let field = format!("\"serial\": {}", serial_of(body));
        assert!(body.contains(&field), "terraform writes {field}");
        body.replacen(&field, &format!("\"serial\": {serial}"), 1)
    };
    let mut serial = serial_of(&green).as_u64().unwrap();
    let mut last = String::new();
    for i in 0..298 {
        serial += 1;
        last = with_serial(if i % 2 == 0 { &blue } else { &green }, serial);
        sb.s3().put(&sb.key, last.as_bytes());
    }
    let digest: String = md5::Md5::digest(last.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sb.dynamodb().put(
        sb.table.as_deref().unwrap(),
        &sb.digest_id(),
        &[("Digest", &digest)],
    );
    let in_s3 = sb.s3().versions(&sb.key);
    assert_eq!(in_s3.len(), 300);

    let proxy = Proxy::start(&lab().endpoint);
    let report = sb
        .tfr_with(
            &[
                "to",
                "previous",
                "--auto-approve",
                "--max-destroy",
                "1000",
                "--json",
            ],
            &[("AWS_ENDPOINT_URL", &proxy.endpoint)],
        )
        .ok()
        .json();
    assert_eq!(report["status"], json!("rolled_back"), "{report:#}");
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    let seen = own(&proxy.take_seen());
    let gets = state_gets(&seen, &sb.key);
    let (whole, ranged): (Vec<&Seen>, Vec<&Seen>) =
        gets.into_iter().partition(|g| g.head.range().is_none());
    // The current and target bodies; a head and a tail of the other versions `previous` looks
    // at (the newest ten), none of the other 290.
    assert_eq!(whole.len(), 2, "{}", describe(&seen));
    assert!(ranged.len() <= 2 * 8, "{}", describe(&seen));
    assert_eq!(
        seen.iter().filter(|s| s.head.list_versions()).count(),
        1,
        "{}",
        describe(&seen)
    );
}
