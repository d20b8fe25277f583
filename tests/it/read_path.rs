//! The read path against real terraform-written versions: discovery, list, show, diff, the
//! cache, selectors, and the promise that sensitive values never reach any output.

use serde_json::{Value, json};

use crate::support::{LockStyle, SECRET, Sandbox, deployed};

fn versions(list: &Value) -> &Vec<Value> {
    list["versions"].as_array().expect("versions array")
}

#[test]
fn list_reads_every_version_newest_first_from_the_init_state() {
    let sb = Sandbox::builder("bluegreen").backend_block(false).build();
    sb.deploy(Some("v2"));
    let in_s3 = sb.s3().versions(&sb.key);

    let list = sb.tfr(&["list", "--json"]).ok().json();
    assert_eq!(list["bucket"], json!(sb.bucket));
    assert_eq!(list["key"], json!(sb.key));
    assert_eq!(list["workspace"], json!("default"));
    let listed = versions(&list);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["version_id"], json!(in_s3[0].version_id));
    assert_eq!(listed[0]["is_latest"], json!(true));
    assert_eq!(listed[1]["is_latest"], json!(false));
    // Serial, lineage and outputs are the ones terraform wrote into each body.
    for (entry, version) in listed.iter().zip(&in_s3) {
        let body = sb.s3().get_json(&sb.key, Some(&version.version_id));
        assert_eq!(entry["serial"], body["serial"]);
        assert_eq!(entry["lineage"], body["lineage"]);
        assert_eq!(entry["terraform_version"], body["terraform_version"]);
        assert_eq!(
            entry["resources"],
            json!(body["resources"].as_array().unwrap().len())
        );
        assert_eq!(entry["size"], json!(version.size));
        assert_eq!(
            entry["outputs"]["active_slot"],
            body["outputs"]["active_slot"]["value"]
        );
    }
    assert_eq!(listed[0]["slot"], json!("green"));
    assert_eq!(listed[1]["slot"], json!("blue"));
    assert_eq!(listed[0]["outputs"]["db_password"], json!("(sensitive)"));

    let human = sb.tfr_with(&["list"], &[("COLUMNS", "200")]).ok().stdout;
    assert!(
        human.contains(&format!("* {}", in_s3[0].version_id)),
        "{human}"
    );
    // At 80 columns every line fits, and the slot still stands out.
    let narrow = sb.tfr_with(&["list"], &[("COLUMNS", "80")]).ok().stdout;
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    assert!(
        narrow.contains("just now") && narrow.contains("green"),
        "{narrow}"
    );
    assert!(human.contains("active_slot=green"), "{human}");
}

#[test]
fn the_backend_block_alone_is_enough_to_find_the_state() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    std::fs::remove_dir_all(sb.dir.join(".terraform")).unwrap();
    let list = sb.tfr(&["list", "--json"]).ok().json();
    assert_eq!(list["bucket"], json!(sb.bucket));
    assert_eq!(versions(&list).len(), 2);
}

#[test]
fn nothing_saying_where_the_state_is_names_the_flags_and_init() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    std::fs::remove_dir_all(sb.dir.join(".terraform")).unwrap();
    std::fs::remove_file(sb.dir.join("backend.tf")).unwrap();
    let run = sb.tfr(&["list"]).code(1);
    assert!(run.stderr.contains("terraform init"), "{}", run.stderr);
    assert!(run.stderr.contains("--bucket"), "{}", run.stderr);
    // Flags alone work.
    let list = sb
        .tfr(&[
            "list",
            "--json",
            "--bucket",
            &sb.bucket,
            "--key",
            &sb.key,
            "--path-style",
        ])
        .ok()
        .json();
    assert_eq!(versions(&list).len(), 2);
}

#[test]
fn a_workspace_has_its_own_state() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    sb.terraform(&["workspace", "new", "staging"]).ok();
    sb.apply(&[("active_slot", "green")]);
    let staging_key = format!("env:/staging/{}", sb.key);
    let staging = sb.tfr(&["list", "--json"]).ok().json();
    assert_eq!(staging["workspace"], json!("staging"));
    assert_eq!(staging["key"], json!(staging_key));
    assert_eq!(
        versions(&staging).len(),
        sb.s3().versions(&staging_key).len()
    );
    // The default workspace is still reachable by flag and by TF_WORKSPACE.
    let default = sb
        .tfr(&["list", "--json", "--workspace", "default"])
        .ok()
        .json();
    assert_eq!(default["key"], json!(sb.key));
    assert_eq!(versions(&default).len(), 2);
    let by_env = sb
        .tfr_with(&["list", "--json"], &[("TF_WORKSPACE", "default")])
        .ok()
        .json();
    assert_eq!(by_env["key"], json!(sb.key));
}

#[test]
fn pagination_covers_more_than_a_thousand_versions() {
    let sb = Sandbox::builder("bluegreen").lock(LockStyle::None).build();
    sb.apply(&[("active_slot", "blue")]);
    let s3 = sb.s3();
    let written = s3.get(&sb.key, None);
    // The same terraform-written body, stored 1,100 more times.
    for _ in 0..1_100 {
        s3.put(&sb.key, &written);
    }
    let list = sb
        .tfr(&["list", "--json", "--page-size", "250"])
        .ok()
        .json();
    let listed = versions(&list);
    assert_eq!(listed.len(), 1_101);
    let ids: std::collections::HashSet<_> = listed
        .iter()
        .map(|v| v["version_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1_101, "no version listed twice");
    assert_eq!(
        listed[0]["version_id"],
        json!(s3.versions(&sb.key)[0].version_id)
    );
}

#[test]
fn delete_markers_are_listed_and_lookalike_keys_are_not() {
    let sb = Sandbox::builder("bluegreen").lock(LockStyle::Both).build();
    sb.deploy(None);
    // use_lockfile leaves <key>.tflock versions and delete markers behind; add a look-alike.
    assert!(!sb.s3().versions(&format!("{}.tflock", sb.key)).is_empty());
    sb.s3().put(&format!("{}.backup", sb.key), b"{}");
    let marker = sb.s3().delete(&sb.key);

    let list = sb.tfr(&["list", "--json"]).ok().json();
    let listed = versions(&list);
    assert_eq!(
        listed.len(),
        3,
        "two states and one delete marker: {list:#}"
    );
    assert_eq!(listed[0]["version_id"], json!(marker));
    assert_eq!(listed[0]["delete_marker"], json!(true));
    assert_eq!(listed[0]["is_latest"], json!(true));
    for field in [
        "serial",
        "lineage",
        "terraform_version",
        "resources",
        "outputs",
    ] {
        assert_eq!(listed[0][field], Value::Null, "{field}");
    }
    let human = sb.tfr(&["list"]).ok().stdout;
    assert!(human.contains(&format!("x {marker}")), "{human}");

    // `current` is gone, but `previous` still finds the last state.
    let run = sb.tfr(&["show", "current"]).code(1);
    assert!(run.stderr.contains("delete marker"), "{}", run.stderr);
    let previous = sb.tfr(&["show", "previous", "--json"]).ok().json();
    assert_eq!(previous["outputs"]["active_slot"], json!("green"));
}

#[test]
fn the_cache_makes_the_next_list_read_only_new_versions() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let first = sb.tfr(&["list", "--json", "-v"]).ok();
    assert!(
        first
            .stderr
            .contains("0 of 2 version(s) known from the cache, 2 to read"),
        "{}",
        first.stderr
    );
    sb.apply(&[("active_slot", "blue")]);
    let second = sb.tfr(&["list", "--json", "-v"]).ok();
    assert!(
        second
            .stderr
            .contains("2 of 3 version(s) known from the cache, 1 to read"),
        "{}",
        second.stderr
    );
    assert_eq!(versions(&second.json()).len(), 3);
    let (old, new) = (first.json(), second.json());
    for field in [
        "version_id",
        "serial",
        "lineage",
        "resources",
        "outputs",
        "slot",
    ] {
        assert_eq!(
            old["versions"][0][field], new["versions"][1][field],
            "{field}"
        );
    }

    // Private files, and no secret in them.
    use std::os::unix::fs::PermissionsExt;
    let cache = sb.dir.parent().unwrap().join("cache").join("tfrollback");
    let dir = cache.join("summaries");
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("green") && !text.contains(SECRET));

    let fresh = sb.tfr(&["list", "--json", "-v", "--no-cache"]).ok();
    assert!(
        fresh
            .stderr
            .contains("0 of 3 version(s) known from the cache"),
        "{}",
        fresh.stderr
    );
}

#[test]
fn sensitive_values_never_reach_any_output() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    // The secret is really in the state: the check below means something.
    let body = String::from_utf8(sb.s3().get(&sb.key, None)).unwrap();
    assert!(body.contains(SECRET));
    let runs = [
        vec!["list"],
        vec!["list", "--json"],
        vec!["show", "current"],
        vec!["show", "current", "--json"],
        vec!["diff", "previous"],
        vec!["diff", "previous", "--json"],
        vec!["diff", "previous", "--include-sensitive", "--json"],
        vec!["-vv", "diff", "previous"],
        vec!["status", "--json"],
    ];
    for args in runs {
        let run = sb.tfr(&args).ok();
        assert!(
            !run.stdout.contains(SECRET),
            "{args:?} printed the secret on stdout"
        );
        assert!(
            !run.stderr.contains(SECRET),
            "{args:?} printed the secret on stderr"
        );
    }
    let show = sb.tfr(&["show", "current"]).ok().stdout;
    assert!(
        show.contains("db_password") && show.contains("(sensitive)"),
        "{show}"
    );
}

#[test]
fn diff_shows_outputs_resources_and_the_rollback_variables() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let d = sb.tfr(&["diff", "previous", "--json"]).ok().json();
    let in_s3 = sb.s3().versions(&sb.key);
    assert_eq!(d["from"]["version_id"], json!(in_s3[0].version_id));
    assert_eq!(d["to"]["version_id"], json!(in_s3[1].version_id));
    let outputs = d["outputs"].as_array().unwrap();
    let slot = outputs.iter().find(|o| o["name"] == "active_slot").unwrap();
    assert_eq!(slot["change"], json!("changed"));
    assert_eq!(
        (slot["from"].clone(), slot["to"].clone()),
        (json!("green"), json!("blue"))
    );
    assert!(
        outputs.iter().all(|o| o["name"] != "blue_version"),
        "unchanged outputs are left out"
    );
    assert!(
        d["resources"]["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "terraform_data.router")
    );

    let vars = d["variables"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(var("active_slot")["current"], json!("green"));
    assert_eq!(var("active_slot")["rollback"], json!("blue"));
    assert_eq!(var("green_version")["rollback"], json!("v1"));
    assert_eq!(
        var("db_password"),
        Value::Null,
        "sensitive outputs are not rollback values by default"
    );

    let human = sb.tfr(&["diff", "previous"]).ok().stdout;
    assert!(
        human.contains("-   \"green\"") || human.contains("- \"green\""),
        "{human}"
    );
    assert!(human.contains("blue/green slot"), "{human}");

    // --against compares two older versions.
    let back = sb
        .tfr(&["diff", "current", "--against", "previous", "--json"])
        .ok()
        .json();
    assert_eq!(back["from"]["version_id"], json!(in_s3[1].version_id));
}

#[test]
fn the_object_output_pattern_maps_keys_to_variables_and_finds_the_slot() {
    let sb = Sandbox::new("objectoutput");
    sb.apply(&[
        ("deployment_slot", "blue"),
        ("app_version", "v1"),
        ("app_instance_count", "2"),
    ]);
    sb.apply(&[
        ("deployment_slot", "green"),
        ("app_version", "v2"),
        ("app_instance_count", "4"),
    ]);
    let list = sb.tfr(&["list", "--json"]).ok().json();
    assert_eq!(versions(&list)[0]["slot"], json!("green"));

    let d = sb.tfr(&["diff", "previous", "--json"]).ok().json();
    let vars: std::collections::BTreeMap<String, (Value, Value)> = d["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                (v["current"].clone(), v["rollback"].clone()),
            )
        })
        .collect();
    assert_eq!(vars["deployment_slot"], (json!("green"), json!("blue")));
    assert_eq!(vars["app_version"], (json!("v2"), json!("v1")));
    assert_eq!(vars["app_instance_count"], (json!(4), json!(2)));
    assert!(!vars.contains_key("api_token"));

    let source = d["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "deployment_slot")
        .unwrap()["source"]
        .clone();
    assert_eq!(source, json!("output current_config.active_slot"));

    // An explicit mapping in tfrollback.hcl wins over what is found by name.
    std::fs::write(
        sb.dir.join("tfrollback.hcl"),
        "slot_variable = \"deployment_slot\"\nmap = { \"current_config.app_version\" = \"app_version\", \"current_config.active_slot\" = \"deployment_slot\" }\n",
    )
    .unwrap();
    let mapped = sb.tfr(&["diff", "previous", "--json"]).ok().json();
    assert!(
        mapped["variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "deployment_slot" && v["rollback"] == "blue")
    );
    // A mapping to an undeclared variable is refused, naming it.
    let bad = sb
        .tfr(&[
            "diff",
            "previous",
            "--map",
            "current_config.app_version=nope",
        ])
        .code(1);
    assert!(bad.stderr.contains("`nope`"), "{}", bad.stderr);
    let ambiguous = sb
        .tfr(&["diff", "previous", "--slot-var", "missing"])
        .code(1);
    assert!(
        ambiguous.stderr.contains("--slot-var"),
        "{}",
        ambiguous.stderr
    );
}

#[test]
fn unknown_and_malformed_versions_are_refused_clearly() {
    let sb = deployed(LockStyle::DynamoDb, Some("v2"));
    let run = sb.tfr(&["show", "3HL4kqtJlcpXroDTDmJ"]).code(1);
    assert!(
        run.stderr.contains(&format!(
            "no version 3HL4kqtJlcpXroDTDmJ of s3://{}/{}",
            sb.bucket, sb.key
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("tfrollback list"), "{}", run.stderr);
    let run = sb.tfr(&["diff", "../../etc/passwd"]).code(2);
    assert!(run.stderr.contains("is not a version"), "{}", run.stderr);
    let run = sb.tfr(&["show", "~9"]).code(1);
    assert!(run.stderr.contains("earlier version"), "{}", run.stderr);
    let json_error = sb.tfr(&["show", "nope", "--json"]).code(1).json();
    assert_eq!(json_error["error"]["exit_code"], json!(1));
}

#[test]
fn a_bucket_without_versioning_is_an_error_that_says_so() {
    let sb = Sandbox::builder("bluegreen").versioning(false).build();
    sb.apply(&[("active_slot", "blue")]);
    let run = sb.tfr(&["list"]).code(1);
    assert!(
        run.stderr.contains("versioning is not enabled"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("put-bucket-versioning"),
        "{}",
        run.stderr
    );
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_definition() {
    let bin = env!("CARGO_BIN_EXE_tfrollback");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // No state is needed: these work anywhere.
    let bash = run(&["completions", "bash"]);
    assert!(
        bash.contains("_tfrollback()") && bash.contains("--auto-approve"),
        "{bash}"
    );
    for shell in ["zsh", "fish", "powershell"] {
        assert!(
            run(&["completions", shell]).contains("tfrollback"),
            "{shell}"
        );
    }
    let man = run(&["man"]);
    assert!(man.contains(".TH tfrollback 1"), "{man}");
    assert!(
        man.contains("restore") && man.contains("Exit codes"),
        "{man}"
    );
}
