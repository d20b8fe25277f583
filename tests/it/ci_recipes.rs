//! The CI recipes of docs/ci/ run for real: the `run:` steps of github-actions.yml and the
//! `deploy` job's lines of gitlab-ci.yml are read from the files and executed, in a sandbox, with
//! the real `tfrollback` and `terraform` against the lab's S3 server. A release is a commit that
//! changes `*.auto.tfvars`; the health check's `curl` is a stand-in that fails on demand for the
//! URLs of one slot, so `guard` sees a bad release fail and the rolled-back one pass. Each
//! scenario checks what ends up in S3 (the state's slot, the versions, the marks), the report
//! and the step summary, not only exit codes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::expr::{ExprContext, Outcome, step_runs};
use crate::support::yaml::{Yaml, parse_yaml};
use crate::support::{
    LockStyle, Logged, Sandbox, find_on_path, repo_file, run_logged, write_executable,
};

const GITHUB_WORKFLOW: &str = "docs/ci/github-actions.yml";
const GITLAB_CI: &str = "docs/ci/gitlab-ci.yml";

/// The working directory both recipes deploy from; the sandbox directory stands in for it.
const RECIPE_TF_DIR: &str = "infra";

/// How long one step (or the GitLab job) may run before the test gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_mins(5);

// ---------------------------------------------------------------------------------------------
// Running the recipes
// ---------------------------------------------------------------------------------------------

/// What the CI runner provides around the recipe: a `curl` that records its arguments and fails
/// for URLs containing SMOKE_FAIL_ON, optionally setup-terraform's wrapper in front of terraform, tfrollback on
/// PATH, and a scratch directory for logs and step summaries.
struct Runner {
    scratch: tempfile::TempDir,
    path: String,
    /// The wrapper directory (TERRAFORM_CLI_PATH), when the wrapper is installed.
    wrapper: Option<PathBuf>,
}

/// Stands in for the application's health endpoint: the smoke test's only tool.
const FAKE_CURL: &str = r#"#!/bin/sh
printf '%s\n' "$*" >> "$CURL_LOG"
case "$*" in
  *"${SMOKE_FAIL_ON:-no URL fails}"*)
    echo "curl: (22) The requested URL returned error: 503" >&2
    exit 22;;
esac
echo ok
"#;

/// The guard's window and interval for the tests: seconds, not the recipes' minutes.
const QUICK_GUARD: [(&str, &str); 2] = [("GUARD_WINDOW", "3s"), ("GUARD_INTERVAL", "1s")];

/// The extra environment of a run: the quick guard, then `more`.
fn with_quick_guard<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    QUICK_GUARD
        .iter()
        .copied()
        .chain(more.iter().copied())
        .collect()
}

/// Imitates hashicorp/setup-terraform's wrapper (wrapper/terraform.js): the real binary runs
/// with stdout and stderr passed through; then the wrapper exits 0 when terraform exited 0 or 2,
/// and otherwise prints an `::error::` workflow command on stdout and exits 1.
const FAKE_SETUP_TERRAFORM_WRAPPER: &str = r#"#!/bin/sh
"$TERRAFORM_CLI_PATH/terraform-bin" "$@"
code=$?
if [ "$code" = 0 ] || [ "$code" = 2 ]; then
  exit 0
fi
echo "::error::Terraform exited with code $code."
exit 1
"#;

impl Runner {
    fn new(setup_terraform_wrapper: bool) -> Runner {
        let scratch = tempfile::Builder::new()
            .prefix("tfr-ci-")
            .tempdir()
            .unwrap();
        let bin = scratch.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        write_executable(&bin.join("curl"), FAKE_CURL);
        let tfrollback = Path::new(env!("CARGO_BIN_EXE_tfrollback"));
        let mut dirs = vec![bin, tfrollback.parent().unwrap().to_path_buf()];
        let wrapper = setup_terraform_wrapper.then(|| {
            let dir = scratch.path().join("setup-terraform");
            std::fs::create_dir(&dir).unwrap();
            let terraform = find_on_path("terraform").expect("terraform on PATH");
            std::os::unix::fs::symlink(terraform, dir.join("terraform-bin")).unwrap();
            write_executable(&dir.join("terraform"), FAKE_SETUP_TERRAFORM_WRAPPER);
            dir
        });
        dirs.extend(wrapper.clone());
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(dirs).unwrap().into_string().unwrap();
        Runner {
            scratch,
            path,
            wrapper,
        }
    }

    fn curl_log(&self) -> PathBuf {
        self.scratch.path().join("curl.log")
    }

    fn curl_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.curl_log())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A shell command in `dir` with the sandbox's AWS/terraform environment and the runner's.
    fn shell(&self, sb: &Sandbox, dir: &Path, shell: &[&str], script: &Path) -> Command {
        let mut cmd = sb.command(shell[0]);
        cmd.args(&shell[1..])
            .arg(script)
            .current_dir(dir)
            .env("PATH", &self.path)
            .env("CURL_LOG", self.curl_log())
            .env("CI", "true");
        if let Some(wrapper) = &self.wrapper {
            cmd.env("TERRAFORM_CLI_PATH", wrapper);
        }
        cmd
    }
}

/// A release is a commit of new values to `*.auto.tfvars`; terraform reads them by itself.
fn release(sb: &Sandbox, values: &[(&str, &str)]) {
    let body: String = values
        .iter()
        .map(|(k, v)| format!("{k} = \"{v}\"\n"))
        .collect();
    std::fs::write(sb.dir.join("release.auto.tfvars"), body).unwrap();
}

/// What a CI job starts from: a fresh checkout has no report, var file or local journal.
fn fresh_checkout(sb: &Sandbox) {
    for file in ["rollback.md", "guard.md", "tfrollback.tfvars.json"] {
        let _ = std::fs::remove_file(sb.dir.join(file));
    }
    let _ = std::fs::remove_dir_all(sb.dir.join(".tfrollback"));
}

fn literal_env(map: Option<&Yaml>) -> Vec<(String, String)> {
    let Some(map) = map else { return vec![] };
    map.entries()
        .iter()
        .filter_map(|(k, v)| {
            let value = v.str().expect("env values are scalars");
            // Values from the CI system (`${{ vars.X }}`) are the test's to provide.
            (!value.contains("${{")).then(|| (k.clone(), value.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// GitHub Actions
// ---------------------------------------------------------------------------------------------

struct Step {
    name: String,
    id: Option<String>,
    condition: Option<String>,
    run: Option<String>,
    env: Vec<(String, String)>,
}

struct Workflow {
    job_env: Vec<(String, String)>,
    steps: Vec<Step>,
}

/// Steps with a `run:` that this test executes; any other `run:` step must be in SKIPPED_STEPS.
const EXECUTED_STEPS: &[&str] = &[
    "Init",
    "Refuse a frozen release",
    "Deploy",
    "Guard the deploy",
    "Roll back to the last known-good version",
];
/// The runner provides these: tfrollback is already on PATH.
const SKIPPED_STEPS: &[&str] = &["Install tfrollback"];

impl Workflow {
    fn load() -> Workflow {
        let doc = parse_yaml(&repo_file(GITHUB_WORKFLOW));
        let job = doc.at(&["jobs", "deploy"]);
        assert_eq!(
            job.at(&["defaults", "run", "shell"]).str(),
            Some("bash"),
            "the steps are tested as bash steps"
        );
        assert_eq!(
            job.at(&["defaults", "run", "working-directory"]).str(),
            Some(RECIPE_TF_DIR)
        );
        let steps: Vec<Step> = job
            .at(&["steps"])
            .seq()
            .iter()
            .map(|step| {
                let field = |k: &str| step.get(k).and_then(Yaml::str).map(str::to_string);
                Step {
                    name: field("name")
                        .or_else(|| field("uses"))
                        .expect("a step has a name or uses"),
                    id: field("id"),
                    condition: field("if"),
                    run: field("run"),
                    env: literal_env(step.get("env")),
                }
            })
            .collect();
        for step in steps.iter().filter(|s| s.run.is_some()) {
            assert!(
                EXECUTED_STEPS.contains(&step.name.as_str())
                    || SKIPPED_STEPS.contains(&step.name.as_str()),
                "a new run step `{}`: decide in ci_recipes.rs whether the test runs it",
                step.name
            );
        }
        for name in EXECUTED_STEPS {
            assert!(
                steps.iter().any(|s| &s.name == name && s.run.is_some()),
                "the workflow lost its `{name}` step"
            );
        }
        Workflow {
            job_env: literal_env(job.get("env")),
            steps,
        }
    }

    /// Runs the job's steps in order, as the runner would, and reports what happened.
    fn run(&self, sb: &Sandbox, runner: &Runner, run_id: &str, extra: &[(&str, &str)]) -> JobRun {
        fresh_checkout(sb);
        let mut outcomes = BTreeMap::new();
        let mut by_name = vec![];
        let mut job_failed = false;
        let mut logs = BTreeMap::new();
        let mut summaries = BTreeMap::new();
        for (index, step) in self.steps.iter().enumerate() {
            let ctx = ExprContext {
                job_failed,
                outcomes: &outcomes,
            };
            let runs = step_runs(step.condition.as_deref(), &ctx);
            let outcome = match (&step.run, runs) {
                (_, false) => Outcome::Skipped,
                (None, true) => Outcome::Success, // `uses:` steps are the runner's business
                (Some(_), true) if SKIPPED_STEPS.contains(&step.name.as_str()) => Outcome::Success,
                (Some(script), true) => {
                    let file = runner
                        .scratch
                        .path()
                        .join(format!("step-{run_id}-{index}.sh"));
                    std::fs::write(&file, script).unwrap();
                    let summary = runner
                        .scratch
                        .path()
                        .join(format!("summary-{run_id}-{index}.md"));
                    std::fs::write(&summary, "").unwrap();
                    // GitHub runs `shell: bash` steps as `bash --noprofile --norc -eo pipefail {0}`.
                    let mut cmd = runner.shell(
                        sb,
                        &sb.dir,
                        &["bash", "--noprofile", "--norc", "-eo", "pipefail"],
                        &file,
                    );
                    cmd.envs(self.job_env.iter().map(|(k, v)| (k, v)))
                        .envs(step.env.iter().map(|(k, v)| (k, v)))
                        .env("GITHUB_ACTIONS", "true")
                        .env("GITHUB_ACTOR", "octocat")
                        .env("GITHUB_REPOSITORY", "acme/infra")
                        .env("GITHUB_SERVER_URL", "https://github.com")
                        .env("GITHUB_RUN_ID", run_id)
                        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
                        .env("GITHUB_STEP_SUMMARY", &summary)
                        .envs(extra.iter().copied());
                    let done = run_logged(cmd, &format!("step `{}`", step.name), STEP_TIMEOUT);
                    logs.insert(step.name.clone(), done.output);
                    summaries.insert(
                        step.name.clone(),
                        std::fs::read_to_string(&summary).unwrap(),
                    );
                    if done.code == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    }
                }
            };
            if outcome == Outcome::Failure {
                job_failed = true;
            }
            if let Some(id) = &step.id {
                outcomes.insert(id.clone(), outcome);
            }
            by_name.push((step.name.clone(), outcome));
        }
        JobRun {
            outcomes: by_name,
            failed: job_failed,
            logs,
            summaries,
        }
    }
}

struct JobRun {
    outcomes: Vec<(String, Outcome)>,
    failed: bool,
    logs: BTreeMap<String, String>,
    summaries: BTreeMap<String, String>,
}

impl JobRun {
    #[track_caller]
    fn outcome(&self, step: &str) -> Outcome {
        self.outcomes
            .iter()
            .find(|(name, _)| name == step)
            .map(|(_, o)| *o)
            .unwrap_or_else(|| panic!("no step {step}"))
    }

    /// Outcomes of the executed steps, for assertions that show the whole run when they fail.
    fn executed(&self) -> Vec<(&str, Outcome)> {
        EXECUTED_STEPS
            .iter()
            .map(|name| (*name, self.outcome(name)))
            .collect()
    }

    fn log(&self) -> String {
        self.logs
            .iter()
            .map(|(step, log)| format!("--- {step} ---\n{log}"))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// GitLab CI
// ---------------------------------------------------------------------------------------------

struct GitlabJob {
    variables: Vec<(String, String)>,
    /// `before_script` then `script`, the way the runner joins them into one shell script.
    script: String,
}

impl GitlabJob {
    fn load() -> GitlabJob {
        let doc = parse_yaml(&repo_file(GITLAB_CI));
        let job = doc.at(&["deploy"]);
        let mut lines = vec![];
        for part in ["before_script", "script"] {
            for line in job.at(&[part]).seq() {
                let line = line.str().expect("script lines are scalars");
                // The image's packages: the test machine has curl (a stand-in) already.
                if line.starts_with("apk add ") {
                    continue;
                }
                lines.push(line.trim_end().to_string());
            }
        }
        assert_eq!(doc.at(&["variables", "TF_ROOT"]).str(), Some(RECIPE_TF_DIR));
        assert_eq!(
            job.at(&["artifacts", "paths"]).str(),
            Some("[infra/guard.md, infra/rollback.md]"),
            "the job publishes the report it writes"
        );
        GitlabJob {
            variables: literal_env(doc.get("variables")),
            script: lines.join("\n") + "\n",
        }
    }

    /// Runs the job as the runner does with the image's `sh`, from the project directory.
    fn run(&self, sb: &Sandbox, runner: &Runner, pipeline: &str, extra: &[(&str, &str)]) -> Logged {
        fresh_checkout(sb);
        let file = runner.scratch.path().join(format!("job-{pipeline}.sh"));
        std::fs::write(&file, &self.script).unwrap();
        let project = sb.dir.parent().unwrap();
        let tf_root = sb.dir.file_name().unwrap().to_str().unwrap();
        // dash is stricter than the image's busybox sh: no bashism gets through.
        let mut cmd = runner.shell(sb, project, &["sh", "-e"], &file);
        cmd.envs(self.variables.iter().map(|(k, v)| (k, v)))
            .env("TF_ROOT", tf_root)
            .env("GITLAB_CI", "true")
            .env("CI_PROJECT_DIR", project)
            .env("CI_PROJECT_PATH", "acme/infra")
            .env("CI_PIPELINE_ID", pipeline)
            .env(
                "CI_JOB_URL",
                format!("https://gitlab.example.com/acme/infra/-/jobs/{pipeline}"),
            )
            .env("CI_COMMIT_SHA", "89abcdef0123456789abcdef0123456789abcdef")
            .env("CI_COMMIT_SHORT_SHA", "89abcdef")
            .env("GITLAB_USER_LOGIN", "dev")
            .envs(extra.iter().copied())
            .stdin(Stdio::null());
        run_logged(cmd, "the GitLab deploy job", STEP_TIMEOUT)
    }
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Version id -> marks, from `tfrollback list --json`.
fn marks(sb: &Sandbox) -> Vec<(String, Value)> {
    sb.tfr(&["list", "--json"]).ok().json()["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version_id"].as_str().unwrap().to_string(),
                v["marks"].clone(),
            )
        })
        .collect()
}

fn marked_good(sb: &Sandbox) -> Vec<String> {
    marks(sb)
        .into_iter()
        .filter(|(_, m)| m.as_array().unwrap().contains(&json!("good")))
        .map(|(id, _)| id)
        .collect()
}

fn assert_unlocked(sb: &Sandbox) {
    let status = sb.tfr(&["status", "--json"]).ok().json();
    assert_eq!(status["lock"], Value::Null, "{status:#}");
    assert_eq!(status["unfinished"], Value::Null, "{status:#}");
}

const ROLLBACK: &str = "Roll back to the last known-good version";

const GUARD: &str = "Guard the deploy";
const FROZEN: &str = "Refuse a frozen release";

#[test]
fn github_actions_guards_releases_marks_good_ones_and_rolls_back_bad_ones() {
    let workflow = Workflow::load();
    let runner = Runner::new(true);
    let sb = Sandbox::new("bluegreen");
    // Before the first pipeline: the live version is the baseline (docs/ci/README.md).
    sb.apply(&[("active_slot", "blue"), ("blue_version", "v1")]);
    sb.tfr(&["mark", "current", "--note", "baseline"]).ok();
    let baseline = sb.version_ids();

    // Release 1: v1 on blue, instance count 3. Deployed, healthy through guard's window,
    // marked known-good by guard with the note naming the commit and the run.
    release(
        &sb,
        &[
            ("active_slot", "blue"),
            ("blue_version", "v1"),
            ("instance_count", "3"),
        ],
    );
    let run = workflow.run(&sb, &runner, "101", &with_quick_guard(&[]));
    use Outcome::*;
    assert_eq!(
        run.executed(),
        [
            ("Init", Success),
            (FROZEN, Success),
            ("Deploy", Success),
            (GUARD, Success),
            (ROLLBACK, Skipped)
        ],
        "{}",
        run.log()
    );
    assert!(!run.failed);
    assert_eq!(run.outcome("Keep the reports"), Skipped);
    let good = sb.version_ids();
    assert_eq!(good.len(), 2);
    assert_eq!(marked_good(&sb), [good[0].clone(), baseline[0].clone()]);
    assert_eq!(
        runner.curl_calls().last().map(String::as_str),
        Some(
            "--fail --silent --show-error --max-time 10 https://blue.app.example.internal/healthz"
        ),
        "guard's check took the URL from the deploy's outputs"
    );
    // The mark is a tag on that S3 object version, with a note naming the commit and the run.
    let tags = sb.s3().tags(&sb.key, &good[0]);
    assert!(tags.contains_key("tfrollback:mark:good"), "{tags:?}");
    assert_eq!(
        tags.get("tfrollback:note:good").map(String::as_str),
        Some("guard passed: acme/infra@0123456789ab run 101")
    );
    assert!(
        run.summaries[GUARD].contains("## tfrollback guard: healthy through the window"),
        "{}",
        run.summaries[GUARD]
    );

    // Release 2 fails while planning (a slot the validation refuses): no state was written, so
    // the rollback step finds the current version marked good and leaves it alone.
    release(&sb, &[("active_slot", "purple")]);
    let run = workflow.run(&sb, &runner, "102", &with_quick_guard(&[]));
    assert_eq!(
        run.executed(),
        [
            ("Init", Success),
            (FROZEN, Success),
            ("Deploy", Failure),
            (GUARD, Skipped),
            (ROLLBACK, Success)
        ],
        "{}",
        run.log()
    );
    assert!(run.failed);
    assert!(
        run.logs["Deploy"].contains("::error::Terraform exited with code 1."),
        "terraform runs behind the setup-terraform wrapper: {}",
        run.log()
    );
    assert_eq!(sb.version_ids(), good, "nothing was written");
    assert!(
        run.summaries[ROLLBACK].contains("nothing to roll back"),
        "{}",
        run.log()
    );
    let report = std::fs::read_to_string(sb.dir.join("rollback.md")).expect("rollback.md");
    assert!(report.contains("nothing to do"), "{report}");
    assert_eq!(sb.history().len(), 1, "the no-op is recorded");

    // Release 3: v2 on green, traffic flipped to green; green's health endpoint fails. guard
    // rolls back to release 1 by itself, through the setup-terraform wrapper, and the check
    // passes again on blue.
    release(
        &sb,
        &[
            ("active_slot", "green"),
            ("blue_version", "v1"),
            ("green_version", "v2"),
            ("instance_count", "3"),
        ],
    );
    let run = workflow.run(
        &sb,
        &runner,
        "103",
        &with_quick_guard(&[("SMOKE_FAIL_ON", "green.app")]),
    );
    assert_eq!(
        run.executed(),
        [
            ("Init", Success),
            (FROZEN, Success),
            ("Deploy", Success),
            (GUARD, Failure),
            (ROLLBACK, Skipped)
        ],
        "{}",
        run.log()
    );
    assert!(
        run.failed,
        "the job fails: the release was bad, rolled back or not"
    );
    assert_eq!(run.outcome("Keep the reports"), Success);
    let calls = runner.curl_calls();
    assert!(
        calls
            .iter()
            .any(|c| c.ends_with("https://green.app.example.internal/healthz"))
            && calls
                .last()
                .is_some_and(|c| c.ends_with("https://blue.app.example.internal/healthz")),
        "guard checked the green deploy, then the rollback to blue: {calls:?}"
    );

    // S3: the rollback wrote a new version on top, with release 1's slot and versions.
    let versions = sb.version_ids();
    assert_eq!(
        versions.len(),
        4,
        "baseline, release 1, release 3, the rollback"
    );
    assert_eq!(versions[2], good[0]);
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_eq!(sb.current_output("green_version"), json!("v1"));
    assert_eq!(sb.current_output("instance_count"), json!(3));
    let state = sb.s3().get_json(&sb.key, None);
    let bad = sb.s3().get_json(&sb.key, Some(&versions[1]));
    assert_eq!(state["lineage"], bad["lineage"]);
    assert!(state["serial"].as_u64() > bad["serial"].as_u64());
    assert_eq!(
        marked_good(&sb),
        [good[0].clone(), baseline[0].clone()],
        "the bad release is not good"
    );
    assert_unlocked(&sb);

    // The report: guard's timeline with the rollback's report, in guard.md and in the step
    // summary, written by tfrollback itself.
    let report = std::fs::read_to_string(sb.dir.join("guard.md")).expect("guard.md");
    assert!(
        report.contains(
            "## tfrollback guard: a check failed: rolled back, and the rollback is healthy"
        ),
        "{report}"
    );
    assert!(report.contains("| Exit code | 6 |"), "{report}");
    assert!(report.contains("| Status | `rolled_back` |"), "{report}");
    assert!(
        report.contains(&format!("| Target | `{}`", good[0])),
        "{report}"
    );
    assert!(report.contains("| Verified | yes |"), "{report}");
    assert!(
        report.contains("returned error: 503"),
        "the failing check's output: {report}"
    );
    assert!(
        run.summaries[GUARD].contains(&report),
        "step summary:\n{}",
        run.summaries[GUARD]
    );
    // The history names the CI run and the check that set the rollback off.
    let record = &sb.tfr(&["history", "--json"]).ok().json()["records"][0];
    assert_eq!(record["result"], json!("rolled_back"));
    assert_eq!(record["to"]["version_id"], json!(good[0]));
    assert!(
        record["trigger"]["check"]
            .as_str()
            .is_some_and(|c| c.starts_with("cmd:curl")),
        "{record:#}"
    );
    assert_eq!(record["who"]["ci"]["system"], json!("github-actions"));
    assert_eq!(record["who"]["ci"]["run"], json!("103"));
    assert_eq!(
        record["who"]["ci"]["url"],
        json!("https://github.com/acme/infra/actions/runs/103")
    );

    // Re-run of the same pipeline: the release is frozen, so nothing is applied.
    let run = workflow.run(&sb, &runner, "104", &with_quick_guard(&[]));
    assert_eq!(
        run.executed(),
        [
            ("Init", Success),
            (FROZEN, Failure),
            ("Deploy", Skipped),
            (GUARD, Skipped),
            (ROLLBACK, Skipped)
        ],
        "{}",
        run.log()
    );
    assert!(run.logs[FROZEN].contains("frozen"), "{}", run.log());
    assert_eq!(sb.version_ids(), versions, "nothing was applied");
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
}

#[test]
fn gitlab_job_guards_releases_and_rolls_back_bad_ones() {
    let job = GitlabJob::load();
    let runner = Runner::new(false);
    let sb = Sandbox::builder("bluegreen")
        .lock(LockStyle::LockFile)
        .build();
    sb.apply(&[("active_slot", "blue"), ("blue_version", "v1")]);
    sb.tfr(&["mark", "current", "--note", "baseline"]).ok();

    // Release 1: v1 on blue, three instances; guard passes and marks it.
    release(
        &sb,
        &[
            ("active_slot", "blue"),
            ("blue_version", "v1"),
            ("instance_count", "3"),
        ],
    );
    let run = job.run(&sb, &runner, "201", &with_quick_guard(&[]));
    assert_eq!(run.code, 0, "{}", run.output);
    let good = sb.version_ids();
    assert_eq!(marked_good(&sb)[0], good[0]);
    assert!(
        runner
            .curl_calls()
            .last()
            .is_some_and(|c| c.ends_with("https://blue.app.example.internal/healthz")),
        "{:?}",
        runner.curl_calls()
    );
    assert_eq!(
        sb.s3()
            .tags(&sb.key, &good[0])
            .get("tfrollback:note:good")
            .map(String::as_str),
        Some("guard passed: acme/infra@89abcdef pipeline 201")
    );

    // Release 2: v2 on green, green's endpoint fails. With --max-destroy 0 guard's rollback
    // plan (a flip replaces three resources) is refused: nothing changes, the job fails, and
    // the deploy is not frozen, since nothing was rolled back.
    release(
        &sb,
        &[
            ("active_slot", "green"),
            ("blue_version", "v1"),
            ("green_version", "v2"),
            ("instance_count", "3"),
        ],
    );
    let run = job.run(
        &sb,
        &runner,
        "202",
        &with_quick_guard(&[
            ("SMOKE_FAIL_ON", "green.app"),
            ("ROLLBACK_MAX_DESTROY", "0"),
        ]),
    );
    assert_eq!(run.code, 1, "{}", run.output);
    assert!(run.output.contains("--max-destroy"), "{}", run.output);
    let after_bad = sb.version_ids();
    assert_eq!(
        after_bad.len(),
        3,
        "baseline, release 1 and release 2, no rollback"
    );
    assert_eq!(sb.current_output("active_slot"), json!("green"));
    let report = std::fs::read_to_string(sb.dir.join("guard.md")).expect("guard.md");
    assert!(
        report
            .starts_with("## tfrollback guard: a check failed, and the rollback did not complete"),
        "{report}"
    );
    sb.tfr(&["status", "--check-frozen"]).ok();
    assert_unlocked(&sb);

    // Retried with the pipeline's own --max-destroy: the re-apply changes nothing (and writes
    // no state), the check fails again, and guard rolls back to release 1.
    let run = job.run(
        &sb,
        &runner,
        "203",
        &with_quick_guard(&[("SMOKE_FAIL_ON", "green.app")]),
    );
    assert_eq!(
        run.code, 6,
        "guard rolled back and the rollback is healthy: {}",
        run.output
    );
    let versions = sb.version_ids();
    assert_eq!(versions.len(), 4, "{}", run.output);
    assert_eq!(versions[1..], after_bad[..]);
    assert_eq!(sb.current_output("active_slot"), json!("blue"));
    assert_eq!(sb.current_output("green_version"), json!("v1"));
    let report = std::fs::read_to_string(sb.dir.join("guard.md")).expect("guard.md");
    assert!(report.contains("| Status | `rolled_back` |"), "{report}");
    assert!(
        report.contains(&format!("| Target | `{}`", good[0])),
        "{report}"
    );
    assert!(
        !sb.s3().exists(&format!("{}.tflock", sb.key)),
        "the lock file is gone"
    );
    assert_unlocked(&sb);
    let record = &sb.tfr(&["history", "--json"]).ok().json()["records"][0];
    assert_eq!(record["result"], json!("rolled_back"));
    assert_eq!(record["who"]["ci"]["system"], json!("gitlab-ci"));
    assert_eq!(record["who"]["ci"]["run"], json!("203"));
    assert_eq!(record["who"]["ci"]["actor"], json!("dev"));

    // The next pipeline stops before applying: the release is frozen.
    let run = job.run(&sb, &runner, "204", &with_quick_guard(&[]));
    assert_eq!(run.code, 9, "{}", run.output);
    assert_eq!(sb.version_ids(), versions, "nothing was applied");
}

#[test]
fn the_yaml_reader_reads_what_the_recipes_use() {
    let doc = parse_yaml(
        "a: 1 # note\nb:\n  - x\n  - k: v\n    l: 'q # not a comment'\nc: |\n  one\n\n    two\nd: \"s\"\n",
    );
    assert_eq!(doc.at(&["a"]).str(), Some("1"));
    let b = doc.at(&["b"]).seq();
    assert_eq!(b[0].str(), Some("x"));
    assert_eq!(b[1].at(&["l"]).str(), Some("q # not a comment"));
    assert_eq!(doc.at(&["c"]).str(), Some("one\n\n  two\n"));
    assert_eq!(doc.at(&["d"]).str(), Some("s"));

    let mut outcomes = BTreeMap::new();
    outcomes.insert("deploy".to_string(), Outcome::Success);
    outcomes.insert("smoke".to_string(), Outcome::Failure);
    let failed = ExprContext {
        job_failed: true,
        outcomes: &outcomes,
    };
    let cond =
        "failure() && (steps.deploy.outcome == 'failure' || steps.smoke.outcome == 'failure')";
    assert!(step_runs(Some(cond), &failed));
    assert!(!step_runs(None, &failed));
    assert!(!step_runs(
        Some("steps.smoke.outcome == 'failure'"),
        &failed
    ));
    assert!(step_runs(Some("${{ always() }}"), &failed));
    assert!(step_runs(
        Some("failure() && steps.rollback.outcome != 'skipped'"),
        &failed
    ));
}
