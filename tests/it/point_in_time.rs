//! Point-in-time selectors (`@TIME`) and `list --at` against versions real terraform wrote:
//! the moments are S3's own LastModified times, read back from the server, and every answer
//! is checked against S3's listing.

use serde_json::{Value, json};

use crate::support::Sandbox;
use crate::support::aws::Version;

/// The versions of the sandbox's state, newest first, as S3 lists them.
fn in_s3(sb: &Sandbox) -> Vec<Version> {
    sb.s3().versions(&sb.key)
}

/// `@` and the RFC 3339 form of `secs` in UTC.
fn at(secs: i64) -> String {
    format!("@{}", moment(secs))
}

fn moment(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_second(secs).unwrap()
}

/// What S3's own listing says was current at `secs`: the first entry, newest first, written
/// at or before it.
fn current_at(versions: &[Version], secs: i64) -> &Version {
    versions
        .iter()
        .find(|v| v.last_modified <= secs)
        .unwrap_or_else(|| panic!("no version at or before {secs}: {versions:?}"))
}

/// Waits (polling briefly) until the clock has passed the second of the newest version, so
/// that the next write lands in a later second: S3's times have whole seconds.
fn past_newest(sb: &Sandbox) {
    let newest = in_s3(sb)[0].last_modified;
    while jiff::Timestamp::now().as_second() <= newest {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The version id `show SELECTOR --json` resolves to.
fn shown(sb: &Sandbox, selector: &str) -> Value {
    sb.tfr(&["show", selector, "--json"]).ok().json()["version_id"].clone()
}

/// Three applies in three different seconds: blue, green, then v2 on green.
fn three_versions() -> (Sandbox, Vec<Version>) {
    let sb = Sandbox::new("bluegreen");
    sb.apply(&[("active_slot", "blue")]);
    past_newest(&sb);
    sb.apply(&[("active_slot", "green")]);
    past_newest(&sb);
    sb.apply(&[("active_slot", "green"), ("green_version", "v2")]);
    let versions = in_s3(&sb);
    assert_eq!(versions.len(), 3, "{versions:?}");
    (sb, versions)
}

#[test]
fn a_moment_names_the_version_current_then_at_its_boundaries() {
    let (sb, versions) = three_versions();
    let (v3, v2, v1) = (&versions[0], &versions[1], &versions[2]);

    // Exactly at a version's LastModified, it is that version; a second before, the one before
    // (the versions are in three different seconds, so that is what S3's listing says too).
    assert_eq!(shown(&sb, &at(v2.last_modified)), json!(v2.version_id));
    assert_eq!(
        current_at(&versions, v2.last_modified - 1).version_id,
        v1.version_id
    );
    assert_eq!(shown(&sb, &at(v2.last_modified - 1)), json!(v1.version_id));
    assert_eq!(shown(&sb, &at(v1.last_modified)), json!(v1.version_id));
    assert_eq!(shown(&sb, &at(v3.last_modified)), json!(v3.version_id));
    assert_eq!(shown(&sb, &at(v3.last_modified - 1)), json!(v2.version_id));
    // The same moment written with an offset.
    let paris = jiff::tz::Offset::constant(1).to_datetime(moment(v2.last_modified));
    assert_eq!(shown(&sb, &format!("@{paris}+01:00")), json!(v2.version_id));
    // A relative moment: nothing is newer than now.
    assert_eq!(shown(&sb, "@-0s"), json!(v3.version_id));
    // A time of day is today's in UTC (the versions were written seconds ago, today).
    let time = jiff::tz::Offset::UTC
        .to_datetime(moment(v2.last_modified))
        .time();
    let time = format!(
        "@{:02}:{:02}:{:02}",
        time.hour(),
        time.minute(),
        time.second()
    );
    assert_eq!(shown(&sb, &time), json!(v2.version_id));

    // The view is the version's own: its outputs are those terraform wrote into it.
    let body = sb.s3().get_json(&sb.key, Some(&v1.version_id));
    let view = sb
        .tfr(&["show", &at(v2.last_modified - 1), "--json"])
        .ok()
        .json();
    assert_eq!(
        view["outputs"]["active_slot"],
        body["outputs"]["active_slot"]["value"]
    );
}

#[test]
fn a_moment_before_every_version_or_still_to_come_is_refused_saying_why() {
    let (sb, versions) = three_versions();
    let oldest = versions.last().unwrap();

    // A second before the oldest version: nothing was current then.
    let run = sb.tfr(&["show", &at(oldest.last_modified - 1)]).code(1);
    assert!(
        run.stderr.contains(&format!(
            "the oldest version kept, {}, was written at {}",
            oldest.version_id,
            moment(oldest.last_modified)
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hint: `tfrollback list`"),
        "{}",
        run.stderr
    );
    // An hour ago, before this sandbox existed: the same refusal, exit 1, in --json too.
    let error = sb.tfr(&["show", "@-1h", "--json"]).code(1).json();
    assert_eq!(error["error"]["kind"], json!("selector"));
    assert_eq!(error["error"]["exit_code"], json!(1));
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&oldest.version_id),
        "{error}"
    );
    let run = sb.tfr(&["diff", "@-1h"]).code(1);
    assert!(
        run.stderr.contains("was written at or before"),
        "{}",
        run.stderr
    );

    // A moment still to come, and malformed ones, are usage errors (exit 2).
    let tomorrow = at(jiff::Timestamp::now().as_second() + 86_400);
    let run = sb.tfr(&["show", &tomorrow]).code(2);
    assert!(
        run.stderr.contains("which is still to come"),
        "{}",
        run.stderr
    );
    let run = sb.tfr(&["show", "@2026-11-20T14:30"]).code(2);
    assert!(run.stderr.contains("no UTC offset"), "{}", run.stderr);
    let run = sb.tfr(&["diff", "@-2x"]).code(2);
    assert!(run.stderr.contains("is not a moment"), "{}", run.stderr);
    let run = sb.tfr(&["list", "--at", "soon"]).code(2);
    assert!(run.stderr.contains("is not a moment"), "{}", run.stderr);
    assert_eq!(in_s3(&sb), versions, "nothing was written");
}

#[test]
fn list_at_marks_the_version_current_then() {
    let (sb, versions) = three_versions();
    let (v3, v2) = (&versions[0], &versions[1]);

    let list = sb
        .tfr(&[
            "list",
            "--at",
            &moment(v3.last_modified - 1).to_string(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(
        list["at"],
        json!({
            "time": moment(v3.last_modified - 1).to_string(),
            "version_id": v2.version_id,
            "last_modified": moment(v2.last_modified).to_string(),
            "is_latest": false,
            "skipped_versions": [],
        })
    );
    let listed: Vec<&Value> = list["versions"].as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 3, "the listing is the whole listing");
    // Without --at the document has no `at` at all (the contract only grew).
    assert!(sb.tfr(&["list", "--json"]).ok().json().get("at").is_none());

    let text = sb
        .tfr(&["list", "--at", &at(v3.last_modified - 1)])
        .ok()
        .stdout;
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("@ {}", v2.version_id))),
        "{text}"
    );
    assert!(
        text.contains(&format!("the current version was {}", v2.version_id)),
        "{text}"
    );
    // A relative moment after a hyphen, as people type it; now is the current version.
    let list = sb.tfr(&["list", "--at", "-0s", "--json"]).ok().json();
    assert_eq!(list["at"]["version_id"], json!(v3.version_id));
    assert_eq!(list["at"]["is_latest"], json!(true));
    // --limit still limits the rows; the answer is there even when older than them.
    let list = sb
        .tfr(&[
            "list",
            "--limit",
            "1",
            "--at",
            &at(v2.last_modified),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(list["versions"].as_array().unwrap().len(), 1);
    assert_eq!(list["at"]["version_id"], json!(v2.version_id));
}

#[test]
fn diff_and_a_rollback_take_a_moment_and_record_the_version_it_meant() {
    let (sb, versions) = three_versions();
    let (v3, v2, v1) = (&versions[0], &versions[1], &versions[2]);

    let diff = sb
        .tfr(&["diff", &at(v2.last_modified - 1), "--json"])
        .ok()
        .json();
    assert_eq!(diff["from"]["version_id"], json!(v3.version_id));
    assert_eq!(diff["to"]["version_id"], json!(v1.version_id));
    assert_eq!(diff["skipped_versions"], json!([]));
    let slot = diff["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == json!("active_slot"))
        .unwrap();
    assert_eq!(slot["rollback"], json!("blue"));
    let against = sb
        .tfr(&[
            "diff",
            &at(v1.last_modified),
            "--against",
            &at(v2.last_modified),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(against["from"]["version_id"], json!(v2.version_id));
    assert_eq!(against["to"]["version_id"], json!(v1.version_id));

    // A relative moment is recorded as the timestamp it meant, never to be read again later.
    sb.tfr(&["to", "@-0s", "--dry-run"]).ok();
    let record = &sb.history()[0];
    let command = record["command"].as_str().unwrap();
    let pinned: jiff::Timestamp = command
        .strip_prefix("to @")
        .unwrap_or_else(|| panic!("{command}"))
        .parse()
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    assert!(pinned.as_second() >= v3.last_modified, "{command}");

    // restore to a moment: the report and the history name the version it resolved to.
    let report = sb
        .tfr(&[
            "restore",
            &at(v2.last_modified),
            "--auto-approve",
            "--no-plan",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(report["status"], json!("restored_state"));
    assert_eq!(report["target"]["version_id"], json!(v2.version_id));
    let record = &sb.history()[0];
    assert_eq!(record["to"]["version_id"], json!(v2.version_id));
    assert_eq!(
        record["command"],
        json!(format!("restore {}", at(v2.last_modified)))
    );
    let restored = sb.current_state();
    let target = sb.s3().get_json(&sb.key, Some(&v2.version_id));
    assert_eq!(restored["outputs"], target["outputs"]);
}

#[test]
fn versions_written_in_the_same_second_are_told_apart_by_the_listing_order() {
    let sb = Sandbox::new("bluegreen");
    sb.deploy(None);
    let terraforms = in_s3(&sb);
    let (green, blue) = (&terraforms[0], &terraforms[1]);
    let blue_body = sb.s3().get(&sb.key, Some(&blue.version_id));
    let green_body = sb.s3().get(&sb.key, Some(&green.version_id));
    past_newest(&sb);
    // Two writes moments apart share their second unless one straddles a second's end: a
    // few tries always give a pair.
    let pair = (0..5)
        .find_map(|_| {
            let first = sb.s3().put(&sb.key, &blue_body);
            let second = sb.s3().put(&sb.key, &green_body);
            let versions = in_s3(&sb);
            let (newest, next) = (&versions[0], &versions[1]);
            assert_eq!(
                (&newest.version_id, &next.version_id),
                (&second, &first),
                "S3 lists newest first"
            );
            (newest.last_modified == next.last_modified).then_some((second, first))
        })
        .expect("two writes in the same second");
    let versions = in_s3(&sb);
    let second = versions[0].last_modified;

    // At that second both existed: the newer one, as S3 lists it, was current.
    assert_eq!(shown(&sb, &at(second)), json!(pair.0));
    assert_eq!(current_at(&versions, second).version_id, pair.0);
    let view = sb.tfr(&["show", &at(second), "--json"]).ok().json();
    assert_eq!(view["outputs"]["active_slot"], json!("green"));
    let list = sb.tfr(&["list", "--at", &at(second), "--json"]).ok().json();
    assert_eq!(list["at"]["version_id"], json!(pair.0));
    // A second earlier, neither: what was current before them (terraform's last write, unless
    // a try straddled a second).
    let before = &current_at(&versions, second - 1).version_id;
    assert!(before != &pair.0 && before != &pair.1);
    assert_eq!(shown(&sb, &at(second - 1)), json!(before));
}

#[test]
fn a_moment_when_the_state_was_deleted_is_refused_naming_the_state_before() {
    let sb = Sandbox::new("bluegreen");
    sb.deploy(None);
    past_newest(&sb);
    let marker = sb.s3().delete(&sb.key);
    let versions = in_s3(&sb);
    let (deleted, before) = (&versions[0], &versions[1]);
    assert!(deleted.delete_marker && deleted.version_id == marker);

    let run = sb.tfr(&["show", &at(deleted.last_modified)]).code(1);
    assert!(
        run.stderr.contains(&format!(
            "had been deleted at {} (delete marker {marker})",
            moment(deleted.last_modified)
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "the last state before the delete is {}",
            before.version_id
        )),
        "{}",
        run.stderr
    );
    // The second before the delete, the state was there.
    assert_eq!(
        shown(&sb, &at(deleted.last_modified - 1)),
        json!(before.version_id)
    );
}

#[test]
fn a_moment_during_a_long_apply_is_the_state_from_before_it() {
    let sb = Sandbox::new("twostep");
    sb.apply(&[("release", "v1")]);
    // Longer than terraform's 20 s persist interval: it writes an intermediate snapshot when
    // the first step ends, and its result after the second, in a later second.
    sb.apply(&[("release", "v2"), ("slow", "true")]);
    let versions = in_s3(&sb);
    assert_eq!(versions.len(), 3, "{versions:?}");
    let (result, snapshot, first) = (&versions[0], &versions[1], &versions[2]);
    assert!(
        snapshot.last_modified < result.last_modified,
        "{versions:?}"
    );
    let list = sb.tfr(&["list", "--json"]).ok().json();
    assert_eq!(list["versions"][1]["intermediate"], json!(true), "{list}");

    // While the apply was still running (the snapshot written, the result not yet), the state
    // people had was the one before the apply; tfrollback says what it passed over.
    let run = sb
        .tfr(&["show", &at(snapshot.last_modified), "--json"])
        .ok();
    assert_eq!(run.json()["version_id"], json!(first.version_id));
    assert_eq!(run.json()["outputs"]["release"], json!("v1"));
    assert!(
        run.stderr
            .contains(&format!("passed over {}", snapshot.version_id)),
        "{}",
        run.stderr
    );
    let diff = sb
        .tfr(&["diff", &at(result.last_modified - 1), "--json"])
        .ok()
        .json();
    assert_eq!(diff["to"]["version_id"], json!(first.version_id));
    assert_eq!(diff["skipped_versions"], json!([snapshot.version_id]));
    let list = sb
        .tfr(&["list", "--at", &at(snapshot.last_modified), "--json"])
        .ok()
        .json();
    assert_eq!(list["at"]["version_id"], json!(first.version_id));
    assert_eq!(list["at"]["skipped_versions"], json!([snapshot.version_id]));
    // Once the apply had finished, its result.
    assert_eq!(
        shown(&sb, &at(result.last_modified)),
        json!(result.version_id)
    );
    // Named by its id, the snapshot is still there to pick.
    assert_eq!(shown(&sb, &snapshot.version_id), json!(snapshot.version_id));
}
