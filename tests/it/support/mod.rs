//! Test support: everything the scenarios stand on, and no scenario. One local AWS server
//! per flavor (patched moto, stock moto, LocalStack) and test binary, sandboxes on them, and
//! ways to run the real binaries and to read the truth from S3 and DynamoDB directly.
//!
//! - [`server`]: the servers ([`Lab`](server::Lab), one per [`Flavor`]), free ports, the
//!   repository root, the command timeout.
//! - [`sandbox`]: a terraform working directory bound to its own bucket ([`Sandbox`]), and
//!   [`deployed`], the blue-then-green deploy most scenarios start from.
//! - [`run`]: running a binary to completion and checking how it ended ([`Run`], or
//!   [`run_logged`] for one merged log), with an environment scrubbed of the developer's.
//! - [`aws`]: direct S3 and DynamoDB access, to set up and to check outcomes.
//! - [`proxy`]: a fault-injecting loopback proxy in front of the server.
//! - [`http`]: a loopback HTTP server: health endpoints and webhook receivers.
//! - [`yaml`] and [`expr`]: a small YAML reader and a GitHub-expression evaluator, enough to
//!   run the CI recipes of docs/ci/ step by step.
//!
//! Functions here must be called from plain `#[test]` functions; the AWS helpers also work
//! inside a tokio runtime (they then block on a scoped thread).

pub mod aws;
pub mod expr;
pub mod http;
pub mod proxy;
pub mod run;
pub mod sandbox;
pub mod server;
pub mod yaml;

pub use http::HttpStub;
pub use proxy::{Fault, Head, Proxy, Rule, Seen, rounds};
pub use run::{
    Logged, Run, find_on_path, interrupt_and_wait, run_logged, scrub_env, write_executable,
};
pub use sandbox::{LockStyle, SECRET, Sandbox, deployed, deployed_on};
pub use server::{Flavor, free_port, lab, repo_file, repo_root, server};
