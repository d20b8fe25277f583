//! The Terraform configuration as far as a rollback needs it: the declared input variables
//! (type, sensitivity, the values their validation allows) and the optional `tfrollback.hcl`.

use std::collections::BTreeMap;

use hcl::expr::Expression;
use serde::Deserialize;
use serde_json::Value;

use crate::model::hclx;

pub(crate) const TOOL_CONFIG_FILE: &str = "tfrollback.hcl";

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{file} cannot be parsed as HCL: {detail}")]
    Hcl { file: String, detail: String },
}

/// A declared input variable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Variable {
    pub(crate) name: String,
    pub(crate) ty: VarType,
    pub(crate) sensitive: bool,
    /// The values a `contains([...], var.NAME)` validation allows, when there is one.
    pub(crate) allowed: Option<Vec<String>>,
}

/// A Terraform type constraint, as far as checking a rollback value needs it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum VarType {
    Any,
    String,
    Number,
    Bool,
    List(Box<VarType>),
    Map(Box<VarType>),
    Object(BTreeMap<String, (VarType, bool)>),
    Tuple(Vec<VarType>),
}

impl VarType {
    fn parse(expr: &Expression) -> VarType {
        match expr {
            Expression::Variable(v) => match v.as_str() {
                "string" => VarType::String,
                "number" => VarType::Number,
                "bool" => VarType::Bool,
                _ => VarType::Any,
            },
            Expression::FuncCall(call) => {
                let arg = call.args.first();
                match (call.name.name.as_str(), arg) {
                    ("list" | "set", Some(a)) => VarType::List(Box::new(VarType::parse(a))),
                    ("map", Some(a)) => VarType::Map(Box::new(VarType::parse(a))),
                    ("tuple", Some(Expression::Array(items))) => {
                        VarType::Tuple(items.iter().map(VarType::parse).collect())
                    }
                    ("object", Some(Expression::Object(fields))) => VarType::Object(
                        fields
                            .iter()
                            .filter_map(|(k, v)| Some((hclx::object_key(k)?, VarType::field(v))))
                            .collect(),
                    ),
                    _ => VarType::Any,
                }
            }
            _ => VarType::Any,
        }
    }

    /// An object field's type and whether it is `optional(...)`.
    fn field(expr: &Expression) -> (VarType, bool) {
        match expr {
            Expression::FuncCall(call) if call.name.name.as_str() == "optional" => (
                call.args
                    .first()
                    .map(VarType::parse)
                    .unwrap_or(VarType::Any),
                true,
            ),
            other => (VarType::parse(other), false),
        }
    }

    /// Whether Terraform would accept `value` for this type (with its usual conversions).
    pub(crate) fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) | (VarType::Any, _) => true,
            (VarType::String, v) => v.is_string() || v.is_number() || v.is_boolean(),
            (VarType::Number, Value::Number(_)) => true,
            (VarType::Number, Value::String(s)) => s.parse::<f64>().is_ok(),
            (VarType::Bool, Value::Bool(_)) => true,
            (VarType::Bool, Value::String(s)) => s == "true" || s == "false",
            (VarType::List(t), Value::Array(items)) => items.iter().all(|i| t.accepts(i)),
            (VarType::Map(t), Value::Object(m)) => m.values().all(|i| t.accepts(i)),
            (VarType::Tuple(ts), Value::Array(items)) => {
                ts.len() == items.len() && ts.iter().zip(items).all(|(t, i)| t.accepts(i))
            }
            (VarType::Object(fields), Value::Object(m)) => {
                fields
                    .iter()
                    .all(|(name, (t, optional))| match m.get(name) {
                        Some(v) => t.accepts(v),
                        None => *optional,
                    })
            }
            _ => false,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            VarType::Any => "any".into(),
            VarType::String => "string".into(),
            VarType::Number => "number".into(),
            VarType::Bool => "bool".into(),
            VarType::List(t) => format!("list({})", t.describe()),
            VarType::Map(t) => format!("map({})", t.describe()),
            VarType::Tuple(_) => "tuple".into(),
            VarType::Object(_) => "object".into(),
        }
    }
}

/// `tfrollback.hcl`: mappings a team writes down once instead of passing flags.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolConfig {
    #[serde(default)]
    pub(crate) slot_variable: Option<String>,
    /// `"OUTPUT.PATH" = "VARIABLE"`.
    #[serde(default)]
    pub(crate) map: BTreeMap<String, String>,
    /// Object outputs whose keys record input variables, besides those the mapping rules
    /// recognise by themselves (docs/mapping.md).
    #[serde(default)]
    pub(crate) config_outputs: Vec<String>,
}

/// What tfrollback reads of the working directory's configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Configuration {
    pub(crate) variables: BTreeMap<String, Variable>,
    pub(crate) tool: ToolConfig,
}

impl Configuration {
    /// The configuration from the `*.tf` files' texts (name, text) and `tfrollback.hcl`'s.
    pub(crate) fn from_files(
        tf_files: &[(String, String)],
        tool: Option<&str>,
    ) -> Result<Configuration, ConfigError> {
        let mut variables = BTreeMap::new();
        for (file, text) in tf_files {
            for v in parse_variables(file, text)? {
                variables.insert(v.name.clone(), v);
            }
        }
        let tool = match tool {
            Some(text) => parse_tool_config(TOOL_CONFIG_FILE, text)?,
            None => ToolConfig::default(),
        };
        Ok(Configuration { variables, tool })
    }
}

pub(crate) fn parse_tool_config(file: &str, text: &str) -> Result<ToolConfig, ConfigError> {
    hcl::from_str(text).map_err(|e| ConfigError::Hcl {
        file: file.to_string(),
        detail: e.to_string(),
    })
}

/// The `variable` blocks of one file.
pub(crate) fn parse_variables(file: &str, text: &str) -> Result<Vec<Variable>, ConfigError> {
    let body = hcl::parse(text).map_err(|e| ConfigError::Hcl {
        file: file.to_string(),
        detail: e.to_string(),
    })?;
    let mut out = vec![];
    for block in body.blocks().filter(|b| b.identifier() == "variable") {
        let Some(name) = block.labels().first().map(|l| l.as_str().to_string()) else {
            continue;
        };
        let attr = |key: &str| block.body().attributes().find(|a| a.key() == key);
        let ty = attr("type")
            .map(|a| VarType::parse(a.expr()))
            .unwrap_or(VarType::Any);
        let sensitive = attr("sensitive")
            .and_then(|a| hclx::literal(a.expr()))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let mut allowed: Option<Vec<String>> = None;
        for validation in block
            .body()
            .blocks()
            .filter(|b| b.identifier() == "validation")
        {
            if let Some(cond) = validation
                .body()
                .attributes()
                .find(|a| a.key() == "condition")
                && let Some(values) = allowed_values(cond.expr(), &name)
            {
                allowed.get_or_insert_with(Vec::new).extend(values);
            }
        }
        out.push(Variable {
            name,
            ty,
            sensitive,
            allowed,
        });
    }
    Ok(out)
}

/// The string list of a `contains([...], var.NAME)` anywhere in a validation condition.
fn allowed_values(condition: &Expression, name: &str) -> Option<Vec<String>> {
    let mut found = None;
    hclx::walk(condition, &mut |e| {
        let Expression::FuncCall(call) = e else {
            return;
        };
        if call.name.name.as_str() != "contains" || call.args.len() != 2 {
            return;
        }
        if hclx::var_reference(&call.args[1]) != Some(name) {
            return;
        }
        if let Some(Value::Array(items)) = hclx::literal(&call.args[0]) {
            let strings: Vec<String> = items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            found = Some(strings);
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VARS: &str = r#"
        variable "active_slot" {
          type        = string
          default     = "blue"
          description = "the live slot"
          validation {
            condition     = contains(["blue", "green"], var.active_slot)
            error_message = "blue or green"
          }
        }
        variable "traffic" {
          type = string
          validation {
            condition     = var.traffic == "" || contains(["blue", "blue-90", "split", "green-90", "green"], var.traffic)
            error_message = "x"
          }
        }
        variable "count_by_slot" { type = map(number) }
        variable "db_password" {
          type      = string
          sensitive = true
        }
        variable "settings" {
          type = object({ name = string, size = optional(number, 2) })
        }
        variable "untyped" {}
    "#;

    #[test]
    fn reads_variables_types_and_allowed_values() {
        let vars = parse_variables("variables.tf", VARS).unwrap();
        let by_name: BTreeMap<_, _> = vars.iter().map(|v| (v.name.as_str(), v)).collect();
        assert_eq!(by_name["active_slot"].ty, VarType::String);
        assert_eq!(
            by_name["active_slot"].allowed,
            Some(vec!["blue".to_string(), "green".to_string()])
        );
        assert_eq!(by_name["traffic"].allowed.as_ref().unwrap().len(), 5);
        assert!(by_name["db_password"].sensitive);
        assert_eq!(
            by_name["count_by_slot"].ty,
            VarType::Map(Box::new(VarType::Number))
        );
        assert_eq!(by_name["untyped"].ty, VarType::Any);
    }

    #[test]
    fn type_checks_follow_terraform_conversions() {
        let vars = parse_variables("v.tf", VARS).unwrap();
        let settings = &vars.iter().find(|v| v.name == "settings").unwrap().ty;
        assert!(settings.accepts(&json!({"name": "a"})));
        assert!(!settings.accepts(&json!({"size": 1})));
        assert!(VarType::String.accepts(&json!(3)));
        assert!(VarType::Number.accepts(&json!("3")));
        assert!(!VarType::Number.accepts(&json!("three")));
        assert!(!VarType::Bool.accepts(&json!(1)));
        assert!(VarType::Map(Box::new(VarType::Number)).accepts(&json!({"blue": 2})));
        assert!(!VarType::List(Box::new(VarType::String)).accepts(&json!({"a": 1})));
    }

    #[test]
    fn reads_tool_config_and_refuses_unknown_settings() {
        let c = parse_tool_config(
            "tfrollback.hcl",
            "slot_variable = \"deployment_slot\"\nmap = { \"current_config.active_slot\" = \"deployment_slot\" }\n",
        )
        .unwrap();
        assert_eq!(c.slot_variable.as_deref(), Some("deployment_slot"));
        assert_eq!(c.map["current_config.active_slot"], "deployment_slot");
        assert!(c.config_outputs.is_empty());
        let named = parse_tool_config(
            "tfrollback.hcl",
            "config_outputs = [\"release\", \"deploy_inputs\"]\n",
        )
        .unwrap();
        assert_eq!(named.config_outputs, ["release", "deploy_inputs"]);
        assert!(parse_tool_config("tfrollback.hcl", "slot_varible = \"x\"\n").is_err());
        assert!(parse_variables("bad.tf", "variable \"x\" {").is_err());
    }
}
