//! What changes between two state versions: outputs and resource instances. Pure. Values of
//! sensitive outputs are compared but never carried out of here: a change to one is reported as
//! a change with `(sensitive)` in place of both values.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

#[cfg(test)]
use crate::model::SENSITIVE;
use crate::model::redact;
use crate::model::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct OutputChange {
    pub(crate) name: String,
    pub(crate) change: Change,
    pub(crate) from: Option<Value>,
    pub(crate) to: Option<Value>,
    #[serde(skip)]
    pub(crate) sensitive: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct ResourceChanges {
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
    pub(crate) changed: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StateDiff {
    pub(crate) outputs: Vec<OutputChange>,
    pub(crate) resources: ResourceChanges,
}

/// The changes that going from `from` to `to` makes.
pub(crate) fn diff_states(from: &State<'_>, to: &State<'_>) -> StateDiff {
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
        let shown =
            |o: Option<&crate::model::state::Output>| o.map(|o| redact(&o.value, sensitive));
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
                resources.changed.push(address.clone());
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

/// An object the state holds but a restored state does not track: left outside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Orphan {
    pub(crate) address: String,
    pub(crate) id: Option<String>,
}

/// Objects in `current` that `restored` does not track: instances at an address the restored
/// state lacks, and instances whose `id` differs from the one the restored state records there
/// (the failed apply replaced them: the new object exists, the state points at the old one).
pub(crate) fn orphans(current: &[u8], restored: &[u8]) -> Vec<Orphan> {
    let (Ok(cur_text), Ok(old_text)) =
        (std::str::from_utf8(current), std::str::from_utf8(restored))
    else {
        return vec![];
    };
    let (Ok(cur), Ok(old)) = (State::parse(cur_text), State::parse(old_text)) else {
        return vec![];
    };
    let id = |raw: &serde_json::value::RawValue| {
        serde_json::from_str::<serde_json::Value>(raw.get())
            .ok()
            .and_then(|v| {
                v.pointer("/attributes/id")
                    .and_then(|id| id.as_str())
                    .map(str::to_string)
            })
    };
    cur.instances
        .iter()
        .filter_map(|(address, raw)| {
            let now = id(raw);
            let tracked = old.instances.get(address).map(|r| id(r));
            match tracked {
                Some(before) if before == now => None,
                _ => Some(Orphan {
                    address: address.clone(),
                    id: now,
                }),
            }
        })
        .collect()
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

#[cfg(test)]
mod orphan_tests {
    use super::*;

    fn state(instances: &[(&str, &str)]) -> Vec<u8> {
        let resources: Vec<serde_json::Value> = instances
            .iter()
            .map(|(name, id)| {
                serde_json::json!({"mode": "managed", "type": "terraform_data", "name": name,
                    "instances": [{"attributes": {"id": id}}]})
            })
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"version": 4, "terraform_version": "1.11.4",
            "serial": 1, "lineage": "l", "outputs": {}, "resources": resources}),
        )
        .unwrap()
    }

    #[test]
    fn orphans_are_new_addresses_and_replaced_objects() {
        let snapshot = state(&[("router", "r-old"), ("db", "db-1")]);
        let failed = state(&[("router", "r-new"), ("db", "db-1"), ("canary", "c-1")]);
        let found: Vec<(String, Option<String>)> = orphans(&failed, &snapshot)
            .into_iter()
            .map(|o| (o.address, o.id))
            .collect();
        assert_eq!(
            found,
            [
                ("terraform_data.canary".to_string(), Some("c-1".to_string())),
                (
                    "terraform_data.router".to_string(),
                    Some("r-new".to_string())
                ),
            ]
        );
    }
}
