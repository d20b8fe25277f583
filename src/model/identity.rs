//! Who ran an operation: the AWS caller, `user@host`, and the CI run, as history records it.
//! Pure: the environment is read by settings and handed in.

use serde::{Deserialize, Serialize};

/// The CI run an operation came from, when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CiIdentity {
    pub(crate) system: String,
    pub(crate) actor: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) run: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) commit: Option<String>,
}

impl CiIdentity {
    /// GitHub Actions and GitLab CI, from their standard variables.
    pub(crate) fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Option<CiIdentity> {
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
pub(crate) struct Who {
    /// The AWS caller identity, when STS answers.
    pub(crate) arn: Option<String>,
    pub(crate) user: String,
    pub(crate) ci: Option<CiIdentity>,
}

impl Who {
    pub(crate) fn describe(&self) -> String {
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

/// Who is running tfrollback, as far as the machine can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `user@host`, as terraform writes it in lock info.
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) ci: Option<CiIdentity>,
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
        let ci = CiIdentity::from_vars(&gh).unwrap();
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
            CiIdentity::from_vars(&gl).unwrap().actor.as_deref(),
            Some("dev")
        );
        assert_eq!(CiIdentity::from_vars(&|_| None), None);
    }
}
