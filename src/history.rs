//! The audit history: one record per `to`, `restore` and `recover`, whatever the outcome, at
//! `<key>.tfrollback/history/<time>-<operation>.json` next to the state (same encryption). A
//! record says who (AWS caller ARN, user@host, CI run), when, from which version to which,
//! the result and exit code, and the report. Reports hold only redacted values.

use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::VersionRef;
use crate::s3::{Condition, S3Error, StateStore};
use crate::settings::Backend;

/// The CI run an operation came from, when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiIdentity {
    pub system: String,
    pub actor: Option<String>,
    pub project: Option<String>,
    pub run: Option<String>,
    pub url: Option<String>,
    pub commit: Option<String>,
}

impl CiIdentity {
    /// GitHub Actions and GitLab CI, from their standard variables.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Option<CiIdentity> {
        if var("GITHUB_ACTIONS").as_deref() == Some("true") {
            let url = match (
                var("GITHUB_SERVER_URL"),
                var("GITHUB_REPOSITORY"),
                var("GITHUB_RUN_ID"),
            ) {
                (Some(server), Some(repo), Some(run)) => {
                    Some(format!("{server}/{repo}/actions/runs/{run}"))
                }
                _ => None,
            };
            return Some(CiIdentity {
                system: "github-actions".into(),
                actor: var("GITHUB_ACTOR"),
                project: var("GITHUB_REPOSITORY"),
                run: var("GITHUB_RUN_ID"),
                url,
                commit: var("GITHUB_SHA"),
            });
        }
        if var("GITLAB_CI").as_deref() == Some("true") {
            return Some(CiIdentity {
                system: "gitlab-ci".into(),
                actor: var("GITLAB_USER_LOGIN"),
                project: var("CI_PROJECT_PATH"),
                run: var("CI_PIPELINE_ID"),
                url: var("CI_JOB_URL"),
                commit: var("CI_COMMIT_SHA"),
            });
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Who {
    /// The AWS caller identity, when STS answers.
    pub arn: Option<String>,
    pub user: String,
    pub ci: Option<CiIdentity>,
}

impl Who {
    pub fn describe(&self) -> String {
        let mut s = self.arn.clone().unwrap_or_else(|| self.user.clone());
        if let Some(ci) = &self.ci {
            s.push_str(&format!(" via {}", ci.system));
            if let Some(actor) = &ci.actor {
                s.push_str(&format!(" ({actor})"));
            }
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub operation_id: String,
    pub command: String,
    pub who: Who,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    pub from: Option<VersionRef>,
    pub to: Option<VersionRef>,
    pub result: String,
    pub exit_code: u8,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub report: Option<Value>,
}

/// What a state-changing command tells the history as it learns it.
pub struct Audit {
    pub operation_id: Option<String>,
    pub command: String,
    pub from: Option<VersionRef>,
    pub to: Option<VersionRef>,
    pub result: Option<String>,
    pub report: Option<Value>,
    started_at: jiff::Timestamp,
    started: Instant,
}

impl Audit {
    pub fn new(command: String) -> Audit {
        Audit {
            operation_id: None,
            command,
            from: None,
            to: None,
            result: None,
            report: None,
            started_at: jiff::Timestamp::now(),
            started: Instant::now(),
        }
    }

    /// Records a report: its status becomes the result.
    pub fn report<T: Serialize>(&mut self, report: &T) {
        let value = serde_json::to_value(report).unwrap_or(Value::Null);
        self.result = value
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.report = Some(value);
    }

    pub fn finish(self, who: Who, exit_code: u8, error: Option<String>) -> HistoryRecord {
        let result = self.result.unwrap_or_else(|| {
            if exit_code == 0 {
                "ok".into()
            } else {
                "error".into()
            }
        });
        HistoryRecord {
            operation_id: self
                .operation_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            command: self.command,
            who,
            started_at: self.started_at.to_string(),
            finished_at: jiff::Timestamp::now().to_string(),
            duration_ms: self.started.elapsed().as_millis() as u64,
            from: self.from,
            to: self.to,
            result,
            exit_code,
            error,
            report: self.report,
        }
    }
}

/// Who is running tfrollback: STS's answer when it comes, user@host and CI variables always.
pub async fn who(config: &aws_config::SdkConfig, backend: &Backend) -> Who {
    let mut sts = aws_sdk_sts::config::Builder::from(config);
    if let Some(endpoint) = &backend.endpoint_sts {
        sts = sts.endpoint_url(endpoint);
    }
    let client = aws_sdk_sts::Client::from_conf(sts.build());
    let arn = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.get_caller_identity().send(),
    )
    .await
    {
        Ok(Ok(out)) => out.arn().map(str::to_string),
        Ok(Err(e)) => {
            tracing::info!(
                "STS did not say who this is: {}",
                aws_sdk_sts::error::DisplayErrorContext(&e)
            );
            None
        }
        Err(_) => None,
    };
    Who {
        arn,
        user: crate::lock::who(),
        ci: CiIdentity::from_env(&|name| std::env::var(name).ok().filter(|v| !v.is_empty())),
    }
}

#[derive(Clone)]
pub struct HistoryStore {
    store: StateStore,
}

impl HistoryStore {
    pub fn new(store: StateStore) -> HistoryStore {
        HistoryStore { store }
    }

    fn prefix(&self) -> String {
        format!("{}.tfrollback/history/", self.store.key())
    }

    /// Stores a record; its key sorts by time.
    pub async fn record(&self, record: &HistoryRecord) -> Result<String, S3Error> {
        let stamp = record
            .started_at
            .parse::<jiff::Timestamp>()
            .map(|t| t.strftime("%Y%m%dT%H%M%S%.3fZ").to_string())
            .unwrap_or_else(|_| "unknown".into());
        let key = format!("{}{stamp}-{}.json", self.prefix(), record.operation_id);
        let body = serde_json::to_vec_pretty(record).unwrap_or_default();
        self.store.put(&key, body, &Condition::None).await?;
        Ok(key)
    }

    /// The newest `limit` records, newest first.
    pub async fn list(&self, limit: Option<usize>) -> Result<Vec<HistoryRecord>, S3Error> {
        let mut keys = self.store.keys(&self.prefix()).await?;
        keys.reverse();
        if let Some(limit) = limit {
            keys.truncate(limit);
        }
        let records: Vec<Option<HistoryRecord>> = stream::iter(keys)
            .map(|key| async move {
                let fetched = self.store.get(&key).await?;
                Ok::<_, S3Error>(fetched.and_then(|f| serde_json::from_slice(&f.body).ok()))
            })
            .buffered(16)
            .try_collect()
            .await?;
        Ok(records.into_iter().flatten().collect())
    }

    /// One record by operation id (or a unique prefix of it).
    pub async fn find(&self, operation: &str) -> Result<Vec<HistoryRecord>, S3Error> {
        let matching: Vec<String> = self
            .store
            .keys(&self.prefix())
            .await?
            .into_iter()
            .filter(|k| {
                k.rsplit('/')
                    .next()
                    .and_then(|name| name.split_once('-'))
                    .is_some_and(|(_, rest)| rest.starts_with(operation))
            })
            .collect();
        let mut out = vec![];
        for key in matching {
            if let Some(f) = self.store.get(&key).await?
                && let Ok(r) = serde_json::from_slice(&f.body)
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_identity_comes_from_the_runner() {
        let gh = |name: &str| {
            match name {
                "GITHUB_ACTIONS" => Some("true"),
                "GITHUB_ACTOR" => Some("octocat"),
                "GITHUB_REPOSITORY" => Some("acme/infra"),
                "GITHUB_RUN_ID" => Some("42"),
                "GITHUB_SERVER_URL" => Some("https://github.com"),
                _ => None,
            }
            .map(str::to_string)
        };
        let ci = CiIdentity::from_env(&gh).unwrap();
        assert_eq!(ci.system, "github-actions");
        assert_eq!(
            ci.url.as_deref(),
            Some("https://github.com/acme/infra/actions/runs/42")
        );
        let gl = |name: &str| {
            match name {
                "GITLAB_CI" => Some("true"),
                "GITLAB_USER_LOGIN" => Some("dev"),
                _ => None,
            }
            .map(str::to_string)
        };
        assert_eq!(
            CiIdentity::from_env(&gl).unwrap().actor.as_deref(),
            Some("dev")
        );
        assert_eq!(CiIdentity::from_env(&|_| None), None);
    }
}
