//! The pure model: states, selectors, diffs, variable mapping, configuration and backend
//! parsing. Nothing here does I/O (no tokio, no AWS, no files, no environment, no processes):
//! callers read the bytes and hand them in, so everything here is unit-tested in isolation.

pub(crate) mod backend;
pub(crate) mod check;
pub(crate) mod config;
pub(crate) mod diff;
pub(crate) mod hclx;
pub(crate) mod identity;
pub(crate) mod lifecycle;
pub(crate) mod mapping;
pub(crate) mod readiness;
pub(crate) mod selector;
pub(crate) mod state;

use serde_json::Value;

/// What a sensitive value is shown as, everywhere.
pub(crate) const SENSITIVE: &str = "(sensitive)";

/// `value` as it may be shown: the placeholder when it is sensitive. The one redaction rule.
pub(crate) fn redact(value: &Value, sensitive: bool) -> Value {
    if sensitive {
        Value::String(SENSITIVE.into())
    } else {
        value.clone()
    }
}
