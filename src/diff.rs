//! What changes between two state versions: outputs and resource instances. Pure. Values of
//! sensitive outputs are compared but never carried out of here: a change to one is reported as
//! a change with `(sensitive)` in place of both values.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use crate::SENSITIVE;
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputChange {
    pub name: String,
    pub change: Change,
    pub from: Option<Value>,
    pub to: Option<Value>,
    #[serde(skip)]
    pub sensitive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDiff {
    pub outputs: Vec<OutputChange>,
    pub resources: ResourceChanges,
}

/// The changes that going from `from` to `to` makes.
pub fn diff_states(from: &State<'_>, to: &State<'_>) -> StateDiff {
    let names: BTreeSet<&String> = from.outputs.keys().chain(to.outputs.keys()).collect();
    let mut outputs = vec![];
    for name in names {
        let (a, b) = (from.outputs.get(name), to.outputs.get(name));
        let change = match (a, b) {
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (Some(a), Some(b)) if a.value != b.value || a.sensitive != b.sensitive => {
                Change::Changed
            }
            _ => continue,
        };
        let sensitive = a.is_some_and(|o| o.sensitive) || b.is_some_and(|o| o.sensitive);
        let shown = |o: Option<&crate::state::Output>| {
            o.map(|o| {
                if sensitive {
                    Value::String(SENSITIVE.into())
                } else {
                    o.value.clone()
                }
            })
        };
        outputs.push(OutputChange {
            name: name.clone(),
            change,
            from: shown(a),
            to: shown(b),
            sensitive,
        });
    }

    let mut resources = ResourceChanges::default();
    for (address, raw) in &from.instances {
        match to.instances.get(address) {
            None => resources.removed.push(address.clone()),
            Some(other) if !same_json(raw.get(), other.get()) => {
                resources.changed.push(address.clone())
            }
            Some(_) => {}
        }
    }
    resources.added = to
        .instances
        .keys()
        .filter(|a| !from.instances.contains_key(*a))
        .cloned()
        .collect();
    StateDiff { outputs, resources }
}

/// Equal bytes are equal JSON; otherwise compare the values (formatting may differ).
fn same_json(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (serde_json::from_str::<Value>(a), serde_json::from_str::<Value>(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(outputs: Value, resources: Value) -> String {
        json!({"version": 4, "terraform_version": "1.9.0", "serial": 1, "lineage": "l",
               "outputs": outputs, "resources": resources})
        .to_string()
    }

    fn res(name: &str, input: &str) -> Value {
        json!({"mode": "managed", "type": "terraform_data", "name": name,
               "instances": [{"attributes": {"input": input}}]})
    }

    #[test]
    fn reports_outputs_and_resources_without_sensitive_values() {
        let a = state(
            json!({"slot": {"value": "green"}, "gone": {"value": 1}, "pw": {"value": "old-secret", "sensitive": true}, "same": {"value": [1]}}),
            json!([res("router", "green"), res("old", "x"), res("keep", "k")]),
        );
        let b = state(
            json!({"slot": {"value": "blue"}, "new": {"value": 2}, "pw": {"value": "new-secret", "sensitive": true}, "same": {"value": [1]}}),
            json!([res("router", "blue"), res("fresh", "y"), res("keep", "k")]),
        );
        let d = diff_states(&State::parse(&a).unwrap(), &State::parse(&b).unwrap());
        let summary: Vec<_> = d
            .outputs
            .iter()
            .map(|o| (o.name.as_str(), o.change))
            .collect();
        assert_eq!(
            summary,
            [
                ("gone", Change::Removed),
                ("new", Change::Added),
                ("pw", Change::Changed),
                ("slot", Change::Changed)
            ]
        );
        let pw = &d.outputs[2];
        assert_eq!(pw.from, Some(json!(SENSITIVE)));
        assert!(!format!("{d:?}").contains("secret"));
        assert_eq!(d.resources.added, ["terraform_data.fresh"]);
        assert_eq!(d.resources.removed, ["terraform_data.old"]);
        assert_eq!(d.resources.changed, ["terraform_data.router"]);
    }

    #[test]
    fn formatting_alone_is_no_change() {
        assert!(same_json("{\"a\": 1}", "{\"a\":1}"));
        assert!(!same_json("{\"a\": 1}", "{\"a\":2}"));
    }
}
