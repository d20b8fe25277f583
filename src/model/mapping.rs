//! From recorded outputs to rollback input variables. Terraform keeps no input variables in
//! state, so the outputs a version recorded are the only record of them: an output named like
//! the variable, a key of an object output, or an explicit `--map` / `tfrollback.hcl` mapping.
//! Pure: the caller supplies the configuration and both versions' outputs.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::config::{Configuration, VarType};
use crate::model::state::Output;

/// Names a variable is commonly given when it selects the live blue/green slot.
const SLOT_NAMES: [&str; 4] = ["active_slot", "deployment_slot", "live_slot", "slot"];

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

/// A variable the target recorded but that will not be set, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub(crate) name: String,
    pub(crate) reason: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Mapping {
    pub(crate) slot_variable: Option<String>,
    pub(crate) variables: Vec<RollbackVariable>,
    pub(crate) skipped: Vec<Skipped>,
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
    for (name, var) in &config.variables {
        let path = match explicit.get(name) {
            Some(path) => Some(path.clone()),
            None => implicit_path(name, target).or_else(|| {
                (slot_variable.as_deref() == Some(name.as_str()))
                    .then(|| slot_fallback_path(var, target))
                    .flatten()
            }),
        };
        let Some(path) = path else { continue };
        let Some((value, sensitive)) = lookup(target, &path) else {
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
    Ok(mapping)
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
) -> Option<String> {
    let visible: BTreeMap<String, Value> = outputs
        .iter()
        .filter(|(_, o)| !o.sensitive)
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

/// An output named like the variable, else the first object output (by name) with such a key.
fn implicit_path(variable: &str, outputs: &BTreeMap<String, Output>) -> Option<String> {
    if outputs.contains_key(variable) {
        return Some(variable.to_string());
    }
    outputs
        .iter()
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
