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

/// Objects in `current` that `restored` does not track. An object with an `id` is tracked when
/// the restored state holds that id at the same address, as its current or a deposed object
/// (after a failed `create_before_destroy` the new object is current and the old one deposed).
/// An object without an `id` is tracked only when the restored state holds the same attributes
/// at the same address: it is reported when it differs, never silently passed over.
pub(crate) fn orphans(current: &[u8], restored: &[u8]) -> Vec<Orphan> {
    let (Ok(cur_text), Ok(old_text)) =
        (std::str::from_utf8(current), std::str::from_utf8(restored))
    else {
        return vec![];
    };
    let (Ok(cur), Ok(old)) = (State::parse(cur_text), State::parse(old_text)) else {
        return vec![];
    };
    let attributes = |raw: &serde_json::value::RawValue| {
        serde_json::from_str::<Value>(raw.get())
            .ok()
            .and_then(|v| v.get("attributes").cloned())
    };
    let id_of = |attrs: &Option<Value>| {
        attrs
            .as_ref()
            .and_then(|a| a.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // An object with an id is tracked when the restored state holds that id at the same
    // address, current or deposed (a deposed old object is the snapshot's current one).
    let base = |address: &str| {
        address
            .split(" (deposed ")
            .next()
            .unwrap_or(address)
            .to_string()
    };
    let tracked_ids: std::collections::BTreeSet<(String, String)> = old
        .instances
        .iter()
        .filter_map(|(address, raw)| id_of(&attributes(raw)).map(|id| (base(address), id)))
        .collect();
    cur.instances
        .iter()
        .filter_map(|(address, raw)| {
            let now = attributes(raw);
            let id = id_of(&now);
            let tracked = match &id {
                Some(id) => tracked_ids.contains(&(base(address), id.clone())),
                None => old
                    .instances
                    .get(address)
                    .is_some_and(|before| attributes(before) == now),
            };
            (!tracked).then(|| Orphan {
                address: address.clone(),
                id,
            })
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
    fn deposed_objects_and_objects_without_an_id_are_not_overlooked() {
        // After a failed create_before_destroy: the new object is current, the old one deposed
        // at the same address; the snapshot knew only the old one, as the current object.
        let snapshot = serde_json::to_vec(&serde_json::json!({"version": 4,
            "terraform_version": "1.11.4", "serial": 1, "lineage": "l", "outputs": {},
            "resources": [
                {"mode": "managed", "type": "t", "name": "web",
                 "instances": [{"attributes": {"id": "web-old"}}]},
                {"mode": "managed", "type": "t", "name": "noid",
                 "instances": [{"attributes": {"name": "a"}}]}]}))
        .unwrap();
        let failed = serde_json::to_vec(&serde_json::json!({"version": 4,
            "terraform_version": "1.11.4", "serial": 2, "lineage": "l", "outputs": {},
            "resources": [
                {"mode": "managed", "type": "t", "name": "web",
                 "instances": [{"attributes": {"id": "web-new"}},
                               {"deposed": "00000001", "attributes": {"id": "web-old"}}]},
                {"mode": "managed", "type": "t", "name": "noid",
                 "instances": [{"attributes": {"name": "b"}}]}]}))
        .unwrap();
        let found: Vec<(String, Option<String>)> = orphans(&failed, &snapshot)
            .into_iter()
            .map(|o| (o.address, o.id))
            .collect();
        assert_eq!(
            found,
            [
                ("t.noid".to_string(), None),
                ("t.web".to_string(), Some("web-new".to_string())),
            ],
            "the deposed object is the one the snapshot tracks; the new one is not"
        );
        // An unchanged object without an id is not an orphan.
        assert!(orphans(&snapshot, &snapshot).is_empty());
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
