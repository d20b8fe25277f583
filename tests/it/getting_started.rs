//! docs/getting-started.md, run as a newcomer runs it: every ```sh block of the page, in order,
//! in one `bash -e`, from the repository root, with a clean AWS/terraform environment, a free
//! PORT and a private HOME and TMPDIR. The page starts its own moto server the way it tells the
//! reader to. The test checks what each step printed, what ended up in S3 (read just before the
//! page's clean-up step), and that the clean-up stopped the server and removed the scratch
//! directory.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Logged, SECRET, free_port, repo_file, repo_root, run_logged, scrub_env};

const PAGE: &str = "docs/getting-started.md";
const TIMEOUT: Duration = Duration::from_mins(10);

/// The ```sh blocks of a Markdown page, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = vec![];
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed ```sh block in {PAGE}");
    blocks
}

/// Run just before the page's clean-up: what the tour left in S3 and in the listing.
const EVIDENCE_HOOK: &str = r#"
tfrollback list --json > "$TOUR_EVIDENCE/list.json"
python3 - <<'EOF'
import json, os
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
out = os.environ["TOUR_EVIDENCE"]
body = s3.get_object(Bucket="tfr-tour", Key="app/terraform.tfstate")["Body"].read()
open(os.path.join(out, "state.json"), "wb").write(body)
listed = s3.list_object_versions(Bucket="tfr-tour", Prefix="app/terraform.tfstate")
ids = [v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == "app/terraform.tfstate"]
json.dump(ids, open(os.path.join(out, "versions.json"), "w"))
EOF
"#;

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} was not written: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

#[test]
fn the_getting_started_page_runs_top_to_bottom() {
    let blocks = sh_blocks(&repo_file(PAGE));
    assert!(blocks.len() > 5, "{PAGE} lost its ```sh blocks");
    let cleanup = blocks.last().unwrap();
    assert!(
        cleanup.contains("exec 3>&-") && cleanup.contains("rm -rf \"$WORK\""),
        "the last block of {PAGE} is the clean-up"
    );

    let scratch = tempfile::Builder::new()
        .prefix("tfr-tour-")
        .tempdir()
        .unwrap();
    let (home, tmp, evidence) = (
        scratch.path().join("home"),
        scratch.path().join("tmp"),
        scratch.path().join("evidence"),
    );
    for dir in [&home, &tmp, &evidence] {
        std::fs::create_dir(dir).unwrap();
    }
    // Each block's output starts after a marker line, so it can be checked on its own.
    let mut script = String::new();
    for (i, block) in blocks.iter().enumerate() {
        if i + 1 == blocks.len() {
            script.push_str(EVIDENCE_HOOK);
        }
        script.push_str(&format!("printf '\\n@@block {i}\\n'\n{block}"));
    }
    let script_file = scratch.path().join("tour.sh");
    std::fs::write(&script_file, &script).unwrap();

    let port = free_port();
    let tfrollback_dir = Path::new(env!("CARGO_BIN_EXE_tfrollback"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(tfrollback_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut cmd = Command::new("bash");
    cmd.arg("-e").arg(&script_file).current_dir(repo_root());
    // A newcomer's shell: none of the developer's AWS, terraform or tfrollback settings.
    scrub_env(&mut cmd, &["XDG_CACHE_HOME", "PORT", "REPO", "WORK"]);
    cmd.env("PATH", path)
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("PORT", port.to_string())
        .env("TOUR_EVIDENCE", &evidence)
        .stdin(Stdio::null());

    let Logged { code, output: log } = run_logged(cmd, &format!("the page {PAGE}"), TIMEOUT);
    assert_eq!(code, 0, "the page failed (exit {code}):\n{log}");
    let outputs = split_blocks(&log, blocks.len());
    let output_of = |command: &str| -> &str {
        let i = blocks
            .iter()
            .position(|b| b.contains(command))
            .unwrap_or_else(|| panic!("no block of {PAGE} runs `{command}`"));
        &outputs[i]
    };

    // What each step printed.
    assert!(
        output_of("moto-server.py").contains(&format!("ready {port}")),
        "{log}"
    );
    // `list`'s layout depends on the terminal's width; its rows start with the version id.
    let first_list = output_of("tfrollback list\n");
    let rows = version_rows(first_list);
    assert_eq!(
        rows.len(),
        2,
        "two versions after two applies:\n{first_list}"
    );
    assert!(
        rows[0].starts_with("* ") && rows[0].contains("green"),
        "{first_list}"
    );
    assert!(rows[1].contains("blue"), "{first_list}");
    // Human output is for people and may change its layout: check words, not columns.
    let shown = output_of("tfrollback show current");
    assert!(has_line(shown, &["db_password", "(sensitive)"]), "{shown}");
    let diff = output_of("tfrollback diff previous");
    assert!(
        has_line(
            diff,
            &["active_slot", "\"green\" -> \"blue\"", "blue/green slot"]
        ),
        "{diff}"
    );
    assert!(
        output_of("--dry-run").contains("nothing was changed"),
        "{log}"
    );
    let rollback = output_of("--auto-approve --max-destroy 3");
    assert!(has_line(rollback, &["rolled back"]), "{rollback}");
    assert!(has_line(rollback, &["verified", "yes"]), "{rollback}");
    assert!(
        output_of("-detailed-exitcode").contains("No changes."),
        "{log}"
    );
    let marked = output_of("tfrollback mark current");
    let rows = version_rows(marked);
    assert_eq!(rows.len(), 3, "{marked}");
    assert!(
        rows[0].starts_with("* ") && rows[0].contains("[good]") && rows[0].contains("blue"),
        "the current version, back on blue, is marked:\n{marked}"
    );
    assert!(
        !rows[1].contains("[good]") && !rows[2].contains("[good]"),
        "{marked}"
    );
    let history = output_of("tfrollback history");
    assert!(
        has_line(history, &["rolled_back", "exit 0", "to previous"]),
        "{history}"
    );
    assert!(has_line(history, &["Lock", "free"]), "{history}");
    assert!(has_line(history, &["none unfinished"]), "{history}");
    assert!(
        !log.contains(SECRET),
        "a sensitive value was printed:\n{log}"
    );

    // What the tour left in S3: the rollback on top of the two deploys, on blue, marked good.
    let list = read_json(&evidence.join("list.json"));
    let versions = list["versions"].as_array().unwrap();
    let ids: Vec<Value> = versions.iter().map(|v| v["version_id"].clone()).collect();
    assert_eq!(
        json!(ids),
        read_json(&evidence.join("versions.json")),
        "the listing is every version in S3"
    );
    assert_eq!(versions.len(), 3);
    let slots: Vec<&Value> = versions.iter().map(|v| &v["slot"]).collect();
    assert_eq!(slots, [&json!("blue"), &json!("green"), &json!("blue")]);
    assert_eq!(versions[0]["marks"], json!(["good"]));
    assert_eq!(versions[1]["marks"], json!([]));
    let state = read_json(&evidence.join("state.json"));
    assert_eq!(state["outputs"]["active_slot"]["value"], json!("blue"));
    assert_eq!(state["outputs"]["green_version"]["value"], json!("v1"));
    assert_eq!(state["serial"], versions[0]["serial"]);
    assert_eq!(state["lineage"], versions[2]["lineage"]);
    assert!(
        rollback.contains(versions[0]["version_id"].as_str().unwrap()),
        "the rollback wrote the current version:\n{rollback}"
    );

    // The clean-up stopped the server and removed the scratch directory.
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the server still answers on port {port} after the clean-up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "the tour left {left:?} in TMPDIR");
}

/// Whether one line of `text` contains every one of `parts`.
fn has_line(text: &str, parts: &[&str]) -> bool {
    text.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

/// The rows of `tfrollback list`: `* ` (current) or two spaces, then a version id.
fn version_rows(list: &str) -> Vec<&str> {
    list.lines()
        .filter(|l| {
            let id: String = l
                .get(2..)
                .unwrap_or("")
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            (l.starts_with("* ") || l.starts_with("  "))
                && id.len() >= 8
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-=+".contains(c))
                && id.chars().any(|c| c.is_ascii_digit())
        })
        .collect()
}

/// The output of each block, from the `@@block N` markers.
fn split_blocks(log: &str, count: usize) -> Vec<String> {
    let mut outputs = vec![String::new(); count];
    let mut current = None;
    for line in log.lines() {
        if let Some(n) = line.strip_prefix("@@block ") {
            current = Some(n.parse::<usize>().expect("a block number"));
            continue;
        }
        if let Some(i) = current {
            outputs[i].push_str(line);
            outputs[i].push('\n');
        }
    }
    outputs
}
