//! From recorded outputs to rollback input variables. Terraform keeps no input variables in
//! state, so the outputs a version recorded are the only record of them: an output named like
//! the variable, a key of a *config output* (an object output that records inputs, see
//! [`config_outputs`]), or an explicit `--map` / `tfrollback.hcl` mapping. Every declared
//! variable a rollback does not set is accounted for, with the reason.
//! Pure: the caller supplies the configuration and both versions' outputs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::model::config::{Configuration, VarType};
use crate::model::state::Output;

/// Names a variable is commonly given when it selects the live blue/green slot.
const SLOT_NAMES: [&str; 4] = ["active_slot", "deployment_slot", "live_slot", "slot"];

/// The name docs/mapping.md gives the object output that records a configuration's inputs.
pub(crate) const CONFIG_OUTPUT: &str = "current_config";

/// The variables tfrollback sets itself when the configuration declares them.
const GENERATED: [&str; 3] = [
    "rollback_enabled",
    "rollback_version_id",
    "rollback_strategy",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum MappingError {
    #[error(
        "several variables look like the blue/green slot ({}); pass --slot-var NAME or set slot_variable in tfrollback.hcl",
        candidates.join(", ")
    )]
    AmbiguousSlot { candidates: Vec<String> },
    #[error(
        "the slot variable `{name}` is not declared in the configuration; check --slot-var or slot_variable in tfrollback.hcl"
    )]
    UnknownSlot { name: String },
    #[error(
        "`{spec}` is not a mapping; write OUTPUT.PATH=VARIABLE, for example current_config.active_slot=active_slot"
    )]
    BadMap { spec: String },
    #[error(
        "the mapping `{source_path}` names variable `{variable}`, which the configuration does not declare"
    )]
    UndeclaredVariable {
        source_path: String,
        variable: String,
    },
    #[error(
        "the value recorded for variable `{variable}` (from output `{source_path}`) is not a {expected}; fix the mapping or the variable's type"
    )]
    TypeMismatch {
        variable: String,
        source_path: String,
        expected: String,
    },
    #[error(
        "the value {value} recorded for variable `{variable}` is not one its validation allows ({}); pick another version or fix the mapping",
        allowed.join(", ")
    )]
    NotAllowed {
        variable: String,
        value: String,
        allowed: Vec<String>,
    },
}

/// Where a rollback value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "path")]
pub(crate) enum Source {
    /// An output, or a path into an object output (`current_config.active_slot`).
    Output(String),
    /// A value tfrollback sets itself (`rollback_version_id`, ...).
    Generated,
}

impl Source {
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Output(path) => format!("output {path}"),
            Source::Generated => "set by tfrollback".into(),
        }
    }
}

/// One variable a rollback sets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollbackVariable {
    pub(crate) name: String,
    pub(crate) source: Source,
    pub(crate) current: Option<Value>,
    pub(crate) rollback: Value,
    pub(crate) sensitive: bool,
}

/// A declared variable a rollback will not set, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Skipped {
    pub(crate) name: String,
    pub(crate) reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Mapping {
    pub(crate) slot_variable: Option<String>,
    pub(crate) variables: Vec<RollbackVariable>,
    /// Variables the target recorded but that will not be set (sensitive ones).
    pub(crate) skipped: Vec<Skipped>,
    /// Declared variables the target recorded no value for: a rollback leaves them as they
    /// are (whatever the configuration, var files and `--var` give them).
    pub(crate) unrecorded: Vec<Skipped>,
}

impl Mapping {
    /// The slot variable's entry, when the target recorded it.
    pub(crate) fn slot(&self) -> Option<&RollbackVariable> {
        let slot = self.slot_variable.as_deref()?;
        self.variables.iter().find(|v| v.name == slot)
    }

    /// The values a rollback var file holds.
    pub(crate) fn tfvars(&self) -> serde_json::Map<String, Value> {
        self.variables
            .iter()
            .map(|v| (v.name.clone(), v.rollback.clone()))
            .collect()
    }

    /// Every declared variable a rollback does not set (withheld or not recorded), by name.
    pub(crate) fn unset(&self) -> Vec<Skipped> {
        let mut all: Vec<Skipped> = self
            .skipped
            .iter()
            .chain(&self.unrecorded)
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Keeps only the slot variable (`--only-slot`); the others join the unset ones.
    pub(crate) fn only_slot(&mut self) {
        let slot = self.slot_variable.clone();
        let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut self.variables)
            .into_iter()
            .partition(|v| Some(&v.name) == slot.as_ref());
        self.variables = kept;
        self.unrecorded.extend(dropped.into_iter().map(|v| Skipped {
            name: v.name,
            reason: "--only-slot sets the slot variable alone".into(),
        }));
    }
}

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub(crate) struct MappingOptions {
    pub(crate) maps: Vec<String>,
    pub(crate) slot_var: Option<String>,
    pub(crate) include_sensitive: bool,
}

/// Works out the rollback variables for going from `current` to `target`.
pub(crate) fn map_variables(
    config: &Configuration,
    options: &MappingOptions,
    current: &BTreeMap<String, Output>,
    target: &BTreeMap<String, Output>,
    target_version_id: &str,
) -> Result<Mapping, MappingError> {
    let slot_variable = slot_variable(config, options)?;
    let explicit = explicit_maps(config, options)?;

    let mut mapping = Mapping {
        slot_variable: slot_variable.clone(),
        ..Mapping::default()
    };
    let objects = config_outputs(config, slot_variable.as_deref(), target);
    for (name, var) in &config.variables {
        let explicit_path = explicit.get(name);
        let path = match explicit_path {
            Some(path) => Some(path.clone()),
            None => implicit_path(name, target, &objects).or_else(|| {
                (slot_variable.as_deref() == Some(name.as_str()))
                    .then(|| slot_fallback_path(var, target, &objects))
                    .flatten()
            }),
        };
        let Some(path) = path else {
            mapping.unrecorded.push(Skipped {
                name: name.clone(),
                reason: unrecorded_reason(name),
            });
            continue;
        };
        let Some((value, sensitive)) = lookup(target, &path) else {
            mapping.unrecorded.push(Skipped {
                name: name.clone(),
                reason: format!("the mapping `{path}` names nothing this version recorded"),
            });
            continue;
        };
        if sensitive && !options.include_sensitive {
            mapping.skipped.push(Skipped {
                name: name.clone(),
                reason: format!(
                    "output {path} is sensitive; pass --include-sensitive to restore it"
                ),
            });
            continue;
        }
        check_value(
            name,
            &path,
            &var.ty,
            var.allowed.as_deref(),
            value,
            sensitive,
        )?;
        mapping.variables.push(RollbackVariable {
            name: name.clone(),
            current: lookup(current, &path).map(|(v, _)| v.clone()),
            rollback: value.clone(),
            sensitive: sensitive || var.sensitive,
            source: Source::Output(path),
        });
    }

    let slot_involved = mapping.slot().is_some();
    let generated = [
        ("rollback_enabled", VarType::Bool, Some(Value::Bool(true))),
        (
            "rollback_version_id",
            VarType::String,
            Some(Value::String(target_version_id.to_string())),
        ),
        (
            "rollback_strategy",
            VarType::String,
            slot_involved.then(|| Value::String("blue_green".into())),
        ),
    ];
    for (name, ty, value) in generated {
        let (Some(var), Some(value)) = (config.variables.get(name), value) else {
            continue;
        };
        if mapping.variables.iter().any(|v| v.name == name) || !var.ty.accepts(&value) {
            continue;
        }
        debug_assert!(ty.accepts(&value));
        if let (Some(allowed), Value::String(s)) = (&var.allowed, &value)
            && !allowed.contains(s)
        {
            continue;
        }
        mapping.variables.push(RollbackVariable {
            name: name.to_string(),
            source: Source::Generated,
            current: None,
            rollback: value,
            sensitive: false,
        });
    }
    let set: BTreeSet<&str> = mapping.variables.iter().map(|v| v.name.as_str()).collect();
    let unrecorded = std::mem::take(&mut mapping.unrecorded);
    mapping.unrecorded = unrecorded
        .into_iter()
        .filter(|u| !set.contains(u.name.as_str()))
        .collect();
    Ok(mapping)
}

/// Why nothing was found for `name`.
fn unrecorded_reason(name: &str) -> String {
    match name {
        "rollback_strategy" => {
            "tfrollback sets it only when the rollback involves a blue/green slot its validation allows".into()
        }
        n if GENERATED.contains(&n) => {
            "tfrollback sets it only when its type (and validation) accept the value".into()
        }
        _ => "no output or config output key has that name".into(),
    }
}

/// The object outputs whose keys stand for variables of the same name (*config outputs*),
/// a precise rule so that an object that merely has a key like a variable (an
/// `output "vpc" { value = aws_vpc.main }` and `var.tags`) never feeds it:
///
/// 1. the outputs `tfrollback.hcl` lists in `config_outputs`;
/// 2. the output named `current_config`, the pattern docs/mapping.md documents;
/// 3. an object output every key of which names a declared variable, or is a slot name
///    (`active_slot`, `deployment_slot`, `live_slot`, `slot`) while the configuration has a
///    slot variable: an object that echoes inputs and nothing else.
///
/// Sensitive outputs qualify like the others (their values are withheld later); an empty
/// object never does. `--map OUTPUT.PATH=VARIABLE` reaches into any output.
pub(crate) fn config_outputs(
    config: &Configuration,
    slot_variable: Option<&str>,
    outputs: &BTreeMap<String, Output>,
) -> BTreeSet<String> {
    outputs
        .iter()
        .filter(|(name, output)| match output.value.as_object() {
            Some(object) if !object.is_empty() => {
                config.tool.config_outputs.contains(*name)
                    || name.as_str() == CONFIG_OUTPUT
                    || object.keys().all(|k| {
                        config.variables.contains_key(k)
                            || (slot_variable.is_some() && SLOT_NAMES.contains(&k.as_str()))
                    })
            }
            _ => false,
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// An object output that is not a config output but has keys named like declared variables:
/// the keys it does not feed, and the keys that keep it from counting as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct IgnoredObject {
    pub(crate) output: String,
    /// Keys named like a declared variable that this output does not feed.
    pub(crate) variable_keys: Vec<String>,
    /// Keys that name no declared variable.
    pub(crate) other_keys: Vec<String>,
}

/// The object outputs with keys named like declared variables that the mapping leaves alone
/// (see [`config_outputs`]): what `doctor` explains.
pub(crate) fn ignored_objects(
    config: &Configuration,
    slot_variable: Option<&str>,
    outputs: &BTreeMap<String, Output>,
) -> Vec<IgnoredObject> {
    let eligible = config_outputs(config, slot_variable, outputs);
    outputs
        .iter()
        .filter(|(name, _)| !eligible.contains(*name))
        .filter_map(|(name, output)| {
            let object = output.value.as_object()?;
            let (variable_keys, other_keys): (Vec<String>, Vec<String>) = object
                .keys()
                .cloned()
                .partition(|k| config.variables.contains_key(k));
            (!variable_keys.is_empty()).then(|| IgnoredObject {
                output: name.clone(),
                variable_keys,
                other_keys,
            })
        })
        .collect()
}

/// Which declared variable selects the blue/green slot, if any.
pub(crate) fn slot_variable(
    config: &Configuration,
    options: &MappingOptions,
) -> Result<Option<String>, MappingError> {
    if let Some(name) = options
        .slot_var
        .as_ref()
        .or(config.tool.slot_variable.as_ref())
    {
        return if config.variables.contains_key(name) {
            Ok(Some(name.clone()))
        } else {
            Err(MappingError::UnknownSlot { name: name.clone() })
        };
    }
    let by_validation: Vec<String> = config
        .variables
        .values()
        .filter(|v| matches!(v.ty, VarType::String | VarType::Any))
        .filter(|v| {
            v.allowed
                .as_ref()
                .is_some_and(|a| a.iter().any(|s| s == "blue") && a.iter().any(|s| s == "green"))
        })
        .map(|v| v.name.clone())
        .collect();
    let candidates = if by_validation.is_empty() {
        SLOT_NAMES
            .iter()
            .filter(|n| config.variables.contains_key(**n))
            .map(std::string::ToString::to_string)
            .collect()
    } else {
        by_validation
    };
    match candidates.len() {
        0 => Ok(None),
        1 => Ok(candidates.into_iter().next()),
        _ => Err(MappingError::AmbiguousSlot { candidates }),
    }
}

/// Where a version recorded the blue/green slot, and its value: the slot variable's output (or
/// object key) when the variable is known, else the first output or object key with a slot-like
/// name, else the first string output whose value names a colour slot. `outputs` holds values
/// as they may be shown (sensitive ones are never a slot).
pub(crate) fn find_slot(
    outputs: &BTreeMap<String, Value>,
    slot_var: Option<&str>,
) -> Option<(String, String)> {
    let as_slot = |path: String, v: &Value| v.as_str().map(|s| (path, s.to_string()));
    for name in slot_var.into_iter().chain(SLOT_NAMES) {
        if let Some(found) = outputs.get(name).and_then(|v| as_slot(name.to_string(), v)) {
            return Some(found);
        }
        for (output, value) in outputs {
            if let Some(found) = value
                .get(name)
                .and_then(|v| as_slot(format!("{output}.{name}"), v))
            {
                return Some(found);
            }
        }
    }
    outputs.iter().find_map(|(name, v)| match v.as_str() {
        Some(s @ ("blue" | "green")) => Some((name.clone(), s.to_string())),
        _ => None,
    })
}

/// Where the slot variable's value is recorded when no output carries its name: a slot-named
/// output or object key (`current_config.active_slot` for `deployment_slot`) whose value the
/// variable's validation allows.
fn slot_fallback_path(
    variable: &crate::model::config::Variable,
    outputs: &BTreeMap<String, Output>,
    objects: &BTreeSet<String>,
) -> Option<String> {
    // Keys of objects that are not config outputs are not looked at, as for other variables.
    let visible: BTreeMap<String, Value> = outputs
        .iter()
        .filter(|(n, o)| !o.sensitive && (!o.value.is_object() || objects.contains(*n)))
        .map(|(n, o)| (n.clone(), o.value.clone()))
        .collect();
    let (path, value) = find_slot(&visible, Some(&variable.name))?;
    match &variable.allowed {
        Some(allowed) if !allowed.contains(&value) => None,
        _ => Some(path),
    }
}

/// Variable name -> output path, from tfrollback.hcl then the flags (the flags win).
fn explicit_maps(
    config: &Configuration,
    options: &MappingOptions,
) -> Result<BTreeMap<String, String>, MappingError> {
    let mut maps = BTreeMap::new();
    let from_flags = options.maps.iter().map(|spec| {
        spec.split_once('=')
            .filter(|(p, v)| !p.is_empty() && !v.is_empty())
            .map(|(p, v)| (p.trim().to_string(), v.trim().to_string()))
            .ok_or_else(|| MappingError::BadMap { spec: spec.clone() })
    });
    let from_file = config
        .tool
        .map
        .iter()
        .map(|(p, v)| Ok((p.clone(), v.clone())));
    for pair in from_file.chain(from_flags) {
        let (path, variable) = pair?;
        if !config.variables.contains_key(&variable) {
            return Err(MappingError::UndeclaredVariable {
                source_path: path,
                variable,
            });
        }
        maps.insert(variable, path);
    }
    Ok(maps)
}

/// An output named like the variable, else the first config output (by name) with such a key.
fn implicit_path(
    variable: &str,
    outputs: &BTreeMap<String, Output>,
    objects: &BTreeSet<String>,
) -> Option<String> {
    if outputs.contains_key(variable) {
        return Some(variable.to_string());
    }
    outputs
        .iter()
        .filter(|(name, _)| objects.contains(*name))
        .find(|(_, o)| {
            o.value
                .as_object()
                .is_some_and(|m| m.contains_key(variable))
        })
        .map(|(name, _)| format!("{name}.{variable}"))
}

/// The value at `output.key.key...`, and whether its output is sensitive.
pub(crate) fn lookup<'a>(
    outputs: &'a BTreeMap<String, Output>,
    path: &str,
) -> Option<(&'a Value, bool)> {
    let mut parts = path.split('.');
    let output = outputs.get(parts.next()?)?;
    let mut value = &output.value;
    for part in parts {
        value = match value {
            Value::Object(m) => m.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some((value, output.sensitive))
}

fn check_value(
    name: &str,
    path: &str,
    ty: &VarType,
    allowed: Option<&[String]>,
    value: &Value,
    sensitive: bool,
) -> Result<(), MappingError> {
    if !ty.accepts(value) {
        return Err(MappingError::TypeMismatch {
            variable: name.to_string(),
            source_path: path.to_string(),
            expected: ty.describe(),
        });
    }
    if let (Some(allowed), Value::String(s)) = (allowed, value)
        && !allowed.contains(s)
    {
        return Err(MappingError::NotAllowed {
            variable: name.to_string(),
            value: match crate::model::redact(value, sensitive) {
                Value::String(shown) if sensitive => shown,
                _ => format!("{s:?}"),
            },
            allowed: allowed.to_vec(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{ToolConfig, Variable};
    use serde_json::json;

    fn var(name: &str, ty: VarType, allowed: Option<&[&str]>) -> Variable {
        Variable {
            name: name.into(),
            ty,
            sensitive: false,
            allowed: allowed.map(|a| a.iter().map(std::string::ToString::to_string).collect()),
        }
    }

    fn config(vars: Vec<Variable>) -> Configuration {
        Configuration {
            variables: vars.into_iter().map(|v| (v.name.clone(), v)).collect(),
            tool: ToolConfig::default(),
        }
    }

    fn outputs(pairs: &[(&str, Value, bool)]) -> BTreeMap<String, Output> {
        pairs
            .iter()
            .map(|(n, v, s)| {
                (
                    n.to_string(),
                    Output {
                        value: v.clone(),
                        sensitive: *s,
                    },
                )
            })
            .collect()
    }

    const BG: &[&str] = &["blue", "green"];

    #[test]
    fn maps_named_outputs_and_object_keys() {
        let cfg = config(vec![
            var("deployment_slot", VarType::String, Some(BG)),
            var("app_instance_count", VarType::Number, None),
            var("unrecorded", VarType::String, None),
        ]);
        let current = outputs(&[(
            "current_config",
            json!({"deployment_slot": "green", "app_instance_count": 4}),
            false,
        )]);
        let target = outputs(&[(
            "current_config",
            json!({"deployment_slot": "blue", "app_instance_count": 2}),
            false,
        )]);
        let m = map_variables(&cfg, &MappingOptions::default(), &current, &target, "v1").unwrap();
        assert_eq!(m.slot_variable.as_deref(), Some("deployment_slot"));
        assert_eq!(m.slot().unwrap().rollback, json!("blue"));
        assert_eq!(m.slot().unwrap().current, Some(json!("green")));
        assert_eq!(
            m.tfvars(),
            json!({"app_instance_count": 2, "deployment_slot": "blue"})
                .as_object()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn the_slot_variable_finds_a_slot_named_key() {
        let cfg = config(vec![var("deployment_slot", VarType::String, Some(BG))]);
        let target = outputs(&[("current_config", json!({"active_slot": "blue"}), false)]);
        let m = map_variables(&cfg, &MappingOptions::default(), &target, &target, "v").unwrap();
        assert_eq!(
            m.slot().unwrap().source,
            Source::Output("current_config.active_slot".into())
        );
        let purple = outputs(&[("current_config", json!({"active_slot": "purple"}), false)]);
        let m = map_variables(&cfg, &MappingOptions::default(), &purple, &purple, "v").unwrap();
        assert!(
            m.slot().is_none(),
            "a value the validation refuses is not the slot"
        );
    }

    #[test]
    fn explicit_maps_win_and_generated_variables_are_set() {
        let mut cfg = config(vec![
            var("active_slot", VarType::String, Some(BG)),
            var("rollback_enabled", VarType::Bool, None),
            var("rollback_version_id", VarType::String, None),
            var(
                "rollback_strategy",
                VarType::String,
                Some(&["none", "blue_green"]),
            ),
        ]);
        cfg.tool
            .map
            .insert("live.slot".into(), "active_slot".into());
        let target = outputs(&[
            ("live", json!({"slot": "green"}), false),
            ("active_slot", json!("blue"), false),
        ]);
        let opts = MappingOptions {
            maps: vec!["live.slot=active_slot".into()],
            ..Default::default()
        };
        let m = map_variables(&cfg, &opts, &BTreeMap::new(), &target, "vid-7").unwrap();
        let values = m.tfvars();
        assert_eq!(values["active_slot"], json!("green"));
        assert_eq!(values["rollback_enabled"], json!(true));
        assert_eq!(values["rollback_version_id"], json!("vid-7"));
        assert_eq!(values["rollback_strategy"], json!("blue_green"));
    }

    #[test]
    fn sensitive_outputs_are_skipped_unless_asked() {
        let cfg = config(vec![var("db_password", VarType::String, None)]);
        let target = outputs(&[("db_password", json!("hunter2"), true)]);
        let m = map_variables(&cfg, &MappingOptions::default(), &target, &target, "v").unwrap();
        assert!(m.variables.is_empty());
        assert_eq!(m.skipped[0].name, "db_password");
        let opts = MappingOptions {
            include_sensitive: true,
            ..Default::default()
        };
        let m = map_variables(&cfg, &opts, &target, &target, "v").unwrap();
        assert!(m.variables[0].sensitive);
    }

    #[test]
    fn slot_detection_and_its_errors() {
        let two = config(vec![
            var("a", VarType::String, Some(BG)),
            var("b", VarType::String, Some(&["blue", "green", "split"])),
        ]);
        assert_eq!(
            slot_variable(&two, &MappingOptions::default()),
            Err(MappingError::AmbiguousSlot {
                candidates: vec!["a".into(), "b".into()]
            })
        );
        let chosen = MappingOptions {
            slot_var: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(slot_variable(&two, &chosen).unwrap().as_deref(), Some("b"));
        let unknown = MappingOptions {
            slot_var: Some("c".into()),
            ..Default::default()
        };
        assert!(matches!(
            slot_variable(&two, &unknown),
            Err(MappingError::UnknownSlot { .. })
        ));
        let named = config(vec![var("live_slot", VarType::String, None)]);
        assert_eq!(
            slot_variable(&named, &MappingOptions::default())
                .unwrap()
                .as_deref(),
            Some("live_slot")
        );
    }

    #[test]
    fn values_must_fit_the_variable() {
        let cfg = config(vec![
            var("active_slot", VarType::String, Some(BG)),
            var("instance_count", VarType::Number, None),
        ]);
        let bad_slot = outputs(&[("active_slot", json!("purple"), false)]);
        assert!(matches!(
            map_variables(&cfg, &MappingOptions::default(), &bad_slot, &bad_slot, "v"),
            Err(MappingError::NotAllowed { .. })
        ));
        let bad_count = outputs(&[("instance_count", json!({"n": 1}), false)]);
        assert!(matches!(
            map_variables(
                &cfg,
                &MappingOptions::default(),
                &bad_count,
                &bad_count,
                "v"
            ),
            Err(MappingError::TypeMismatch { .. })
        ));
        let opts = MappingOptions {
            maps: vec!["nonsense".into()],
            ..Default::default()
        };
        assert!(matches!(
            map_variables(&cfg, &opts, &bad_slot, &bad_slot, "v"),
            Err(MappingError::BadMap { .. })
        ));
    }

    fn vpc_and_tags() -> (Configuration, BTreeMap<String, Output>) {
        let cfg = config(vec![
            var("tags", VarType::Map(Box::new(VarType::String)), None),
            var("app_version", VarType::String, None),
        ]);
        let outs = outputs(&[
            (
                "vpc",
                json!({"id": "vpc-1", "cidr_block": "10.0.0.0/16", "tags": {"team": "core"}}),
                false,
            ),
            ("app_version", json!("v3"), false),
        ]);
        (cfg, outs)
    }

    #[test]
    fn an_unrelated_object_output_never_feeds_a_variable() {
        let (cfg, outs) = vpc_and_tags();
        let m = map_variables(&cfg, &MappingOptions::default(), &outs, &outs, "v").unwrap();
        assert_eq!(m.tfvars().keys().collect::<Vec<_>>(), ["app_version"]);
        assert_eq!(m.unrecorded.len(), 1);
        assert_eq!(m.unrecorded[0].name, "tags");
        assert!(
            m.unrecorded[0]
                .reason
                .contains("no output or config output key has that name"),
            "{:?}",
            m.unrecorded
        );
        assert_eq!(
            ignored_objects(&cfg, None, &outs),
            [IgnoredObject {
                output: "vpc".into(),
                variable_keys: vec!["tags".into()],
                other_keys: vec!["cidr_block".into(), "id".into()],
            }]
        );

        // Named in tfrollback.hcl, its keys count; so does an explicit --map.
        let mut named = cfg.clone();
        named.tool.config_outputs = vec!["vpc".into()];
        let m = map_variables(&named, &MappingOptions::default(), &outs, &outs, "v").unwrap();
        assert_eq!(m.tfvars()["tags"], json!({"team": "core"}));
        assert!(m.unrecorded.is_empty());
        assert!(ignored_objects(&named, None, &outs).is_empty());
        let flag = MappingOptions {
            maps: vec!["vpc.tags=tags".into()],
            ..Default::default()
        };
        let m = map_variables(&cfg, &flag, &outs, &outs, "v").unwrap();
        assert_eq!(
            m.variables
                .iter()
                .find(|v| v.name == "tags")
                .unwrap()
                .source,
            Source::Output("vpc.tags".into())
        );
    }

    #[test]
    fn an_object_of_inputs_only_is_a_config_output_whatever_its_name() {
        let cfg = config(vec![
            var("deployment_slot", VarType::String, Some(BG)),
            var("app_version", VarType::String, None),
            var("app_instance_count", VarType::Number, None),
        ]);
        // Every key names a variable, or is a slot name standing for the slot variable.
        let release = outputs(&[(
            "release",
            json!({"active_slot": "green", "app_version": "v2", "app_instance_count": 3}),
            false,
        )]);
        let m = map_variables(&cfg, &MappingOptions::default(), &release, &release, "v").unwrap();
        let values = m.tfvars();
        assert_eq!(values["app_version"], json!("v2"));
        assert_eq!(values["app_instance_count"], json!(3));
        assert_eq!(values["deployment_slot"], json!("green"));

        // One key that is no input, and the object is left alone...
        let mixed = outputs(&[(
            "release",
            json!({"app_version": "v2", "url": "https://x"}),
            false,
        )]);
        let m = map_variables(&cfg, &MappingOptions::default(), &mixed, &mixed, "v").unwrap();
        assert!(m.variables.is_empty(), "{:?}", m.variables);
        // ...unless it is `current_config`, the documented pattern.
        let named = outputs(&[(
            CONFIG_OUTPUT,
            json!({"app_version": "v2", "url": "https://x"}),
            false,
        )]);
        let m = map_variables(&cfg, &MappingOptions::default(), &named, &named, "v").unwrap();
        assert_eq!(m.tfvars()["app_version"], json!("v2"));

        // A slot name counts as an input only when there is a slot variable.
        let no_slot = config(vec![var("app_version", VarType::String, None)]);
        let with_slot_key = outputs(&[(
            "release",
            json!({"slot": "blue", "app_version": "v2"}),
            false,
        )]);
        assert!(config_outputs(&no_slot, None, &with_slot_key).is_empty());
        assert_eq!(
            config_outputs(&cfg, Some("deployment_slot"), &with_slot_key),
            BTreeSet::from(["release".to_string()])
        );
        // An empty object is nobody's config output.
        let empty = outputs(&[("nothing", json!({}), false)]);
        assert!(config_outputs(&cfg, Some("deployment_slot"), &empty).is_empty());
    }

    #[test]
    fn the_slot_is_not_taken_from_an_unrelated_object() {
        let cfg = config(vec![var("deployment_slot", VarType::String, Some(BG))]);
        let lb = outputs(&[(
            "load_balancer",
            json!({"arn": "arn:aws:elb:x", "active_slot": "blue"}),
            false,
        )]);
        let m = map_variables(&cfg, &MappingOptions::default(), &lb, &lb, "v").unwrap();
        assert!(m.slot().is_none());
        assert_eq!(m.unrecorded[0].name, "deployment_slot");
    }

    #[test]
    fn every_declared_variable_not_set_is_accounted_for() {
        let cfg = config(vec![
            var("active_slot", VarType::String, Some(BG)),
            var("db_password", VarType::String, None),
            var("fail_on_slot", VarType::String, None),
            var("region", VarType::String, None),
            var("rollback_version_id", VarType::String, None),
            var("rollback_strategy", VarType::String, None),
        ]);
        let target = outputs(&[
            ("db_password", json!("hunter2"), true),
            ("region_name", json!("eu-west-1"), false),
        ]);
        let opts = MappingOptions {
            maps: vec!["settings.region=region".into()],
            ..Default::default()
        };
        let m = map_variables(&cfg, &opts, &BTreeMap::new(), &target, "vid").unwrap();
        // rollback_version_id is set by tfrollback; nothing else is.
        assert_eq!(
            m.tfvars().keys().collect::<Vec<_>>(),
            ["rollback_version_id"]
        );
        let unset: BTreeMap<String, String> =
            m.unset().into_iter().map(|s| (s.name, s.reason)).collect();
        assert_eq!(
            unset.keys().collect::<Vec<_>>(),
            [
                "active_slot",
                "db_password",
                "fail_on_slot",
                "region",
                "rollback_strategy"
            ]
        );
        assert!(unset["db_password"].contains("sensitive"));
        assert!(unset["region"].contains("`settings.region` names nothing"));
        assert!(unset["rollback_strategy"].contains("blue/green"));
        assert!(unset["fail_on_slot"].contains("no output or config output key has that name"));
    }

    #[test]
    fn only_slot_leaves_the_other_variables_unset() {
        let cfg = config(vec![
            var("active_slot", VarType::String, Some(BG)),
            var("green_version", VarType::String, None),
        ]);
        let target = outputs(&[
            ("active_slot", json!("blue"), false),
            ("green_version", json!("v1"), false),
        ]);
        let mut m = map_variables(&cfg, &MappingOptions::default(), &target, &target, "v").unwrap();
        m.only_slot();
        assert_eq!(m.tfvars().keys().collect::<Vec<_>>(), ["active_slot"]);
        assert_eq!(
            m.unset(),
            [Skipped {
                name: "green_version".into(),
                reason: "--only-slot sets the slot variable alone".into()
            }]
        );
    }

    #[test]
    fn finds_the_slot_in_list_rows() {
        let outs: BTreeMap<String, Value> = [
            (
                "current_config".to_string(),
                json!({"deployment_slot": "green", "n": 2}),
            ),
            ("url".to_string(), json!("https://x")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            find_slot(&outs, None),
            Some(("current_config.deployment_slot".into(), "green".into()))
        );
        let plain: BTreeMap<String, Value> =
            [("color".to_string(), json!("blue"))].into_iter().collect();
        assert_eq!(
            find_slot(&plain, None),
            Some(("color".into(), "blue".into()))
        );
        assert_eq!(
            find_slot(&plain, Some("active_slot")),
            Some(("color".into(), "blue".into()))
        );
    }
}
