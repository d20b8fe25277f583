//! Secrets: sensitive values never reach stdout, stderr, reports, the journal, the history,
//! the cache or the logs; files that may hold state are private whatever the umask; terraform
//! is never run through a shell; AWS credentials and signatures never reach a log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::support::{LockStyle, SECRET, Sandbox, find_on_path};

/// A distinctive secret access key: the lab server accepts any.
const AWS_SECRET: &str = "tfrSecretAccessKey0123456789abcdefXYZ";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn no_secret_reaches_any_output_report_journal_history_cache_or_log() {
    let sb = Sandbox::builder("bluegreen").lock(LockStyle::Both).build();
    sb.deploy(Some("v2"));
    assert!(
        String::from_utf8(sb.s3().get(&sb.key, None))
            .unwrap()
            .contains(SECRET),
        "the secret is in the state"
    );
    let summary = sb.dir.join("step-summary.md");
    let report = sb.dir.join("report.md");
    let (summary_s, report_s) = (summary.display().to_string(), report.display().to_string());
    let env = [
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("GITHUB_STEP_SUMMARY", summary_s.as_str()),
    ];
    let runs: Vec<Vec<&str>> = vec![
        vec!["-vv", "list"],
        vec!["-vv", "list", "--json", "--no-cache"],
        vec!["-vv", "show", "current"],
        vec!["show", "previous", "--json"],
        vec!["-vv", "diff", "previous"],
        vec!["diff", "previous", "--json", "--include-sensitive"],
        vec![
            "-vv",
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--report",
            &report_s,
        ],
        vec![
            "-vv",
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
            "--var",
            "fail_on_slot=green",
        ],
        vec!["-vv", "restore", "~2", "--auto-approve", "--json"],
        vec!["-vv", "history"],
        vec!["history", "--json"],
        vec!["-vv", "status", "--json"],
        vec!["-vv", "recover"],
    ];
    let mut seen = String::new();
    for args in &runs {
        let run = sb.tfr_with(args, &env);
        assert!(run.code == 0 || run.code == 3, "{args:?}: {}", run.stderr);
        seen.push_str(&run.stdout);
        seen.push_str(&run.stderr);
    }
    assert!(
        seen.contains("DEBUG") || seen.contains("INFO"),
        "-vv printed logs"
    );
    assert!(seen.contains("(sensitive)"));
    for leak in [
        SECRET,
        AWS_SECRET,
        "Signature=",
        "x-amz-security-token",
        "authorization:",
    ] {
        assert!(
            !seen.to_lowercase().contains(&leak.to_lowercase()),
            "{leak} reached stdout or stderr"
        );
    }

    // Files tfrollback wrote: reports, the step summary, the local journal, the cache.
    let mut files = vec![
        report.clone(),
        summary.clone(),
        sb.dir.join(".tfrollback/journal.json"),
    ];
    files.extend(files_under(&sb.dir.parent().unwrap().join("cache")));
    files.push(sb.dir.join("tfrollback.tfvars.json"));
    for file in &files {
        let text =
            std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            file.display()
        );
    }
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap()
            .contains("rolled back")
    );

    // Objects next to the state: every version of the journal, the history, the marks index.
    let s3 = sb.s3();
    let stored = s3.versions_under(&format!("{}.tfrollback/", sb.key));
    assert!(
        stored.len() >= 5,
        "journal versions and history records exist"
    );
    for (key, version) in &stored {
        let body = s3.get(key, Some(version));
        assert!(
            !String::from_utf8_lossy(&body).contains(SECRET),
            "{key} holds the secret"
        );
    }
}

#[test]
fn private_files_are_private_whatever_the_umask() {
    let sb = Sandbox::new("bluegreen");
    sb.deploy(None);
    let bin = env!("CARGO_BIN_EXE_tfrollback");
    let script = format!(
        "umask 000 && exec '{bin}' -C '{}' to previous --auto-approve --max-destroy 10 --include-sensitive",
        sb.dir.display()
    );
    let mut cmd = sb.command("sh");
    cmd.args(["-c", &script]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let var_file = sb.dir.join("tfrollback.tfvars.json");
    assert!(
        std::fs::read_to_string(&var_file).unwrap().contains(SECRET),
        "--include-sensitive restores it"
    );
    assert_eq!(mode(&var_file), 0o600, "a var file with a sensitive value");
    let local = sb.dir.join(".tfrollback");
    assert_eq!(mode(&local), 0o700);
    assert_eq!(mode(&local.join("snapshots")), 0o700);
    assert_eq!(mode(&local.join("journal.json")), 0o600);
    // The snapshot (0600 while the operation runs: safety::local_files_stay_private_...) is
    // removed once the rollback finished cleanly.
    assert_eq!(
        files_under(&local.join("snapshots")),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(mode(&local.join(".gitignore")), 0o600);
    let cache = sb.dir.parent().unwrap().join("cache/tfrollback/summaries");
    assert_eq!(mode(&cache), 0o700);
    for f in files_under(&cache) {
        assert_eq!(mode(&f), 0o600);
    }
}

#[test]
fn terraform_is_never_run_through_a_shell() {
    let sb = Sandbox::new("bluegreen");
    sb.deploy(None);
    // A terraform whose path is full of shell syntax: through a shell it would not even run,
    // and `pwned` would appear.
    let odd = sb
        .dir
        .parent()
        .unwrap()
        .join("bin; touch pwned; $(touch pwned2) `touch pwned3`");
    std::fs::create_dir_all(&odd).unwrap();
    let terraform = find_on_path("terraform").expect("terraform on PATH");
    std::os::unix::fs::symlink(terraform, odd.join("terraform")).unwrap();
    let bin = odd.join("terraform").display().to_string();
    let report = sb
        .tfr(&[
            "to",
            "previous",
            "--auto-approve",
            "--max-destroy",
            "10",
            "--json",
            "--terraform-bin",
            &bin,
        ])
        .ok()
        .json();
    assert_eq!(report["status"], json!("rolled_back"));
    for name in ["pwned", "pwned2", "pwned3"] {
        assert!(!sb.dir.join(name).exists() && !sb.dir.parent().unwrap().join(name).exists());
    }
}
