//! Small readings of HCL expressions that tfrollback needs without evaluating Terraform:
//! literal values, and references to `var.NAME`. Pure.

use hcl::expr::{Expression, ObjectKey, Operation, TemplateExpr, TraversalOperator};
use serde_json::{Map, Value};

/// The value of a literal expression (no references, functions or templates), as JSON.
pub(crate) fn literal(expr: &Expression) -> Option<Value> {
    Some(match expr {
        Expression::Null => Value::Null,
        Expression::Bool(b) => Value::Bool(*b),
        Expression::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64()?)
            }
        }
        Expression::String(s) => Value::String(s.clone()),
        Expression::TemplateExpr(t) => match t.as_ref() {
            TemplateExpr::QuotedString(s) if !s.contains("${") && !s.contains("%{") => {
                Value::String(s.clone())
            }
            _ => return None,
        },
        Expression::Array(items) => Value::Array(items.iter().map(literal).collect::<Option<_>>()?),
        Expression::Object(object) => {
            let mut map = Map::new();
            for (key, value) in object {
                map.insert(object_key(key)?, literal(value)?);
            }
            Value::Object(map)
        }
        Expression::Parenthesis(inner) => literal(inner)?,
        _ => return None,
    })
}

/// An object key as a plain string, when it is one.
pub(crate) fn object_key(key: &ObjectKey) -> Option<String> {
    match key {
        ObjectKey::Identifier(id) => Some(id.as_str().to_string()),
        ObjectKey::Expression(e) => match literal(e)? {
            Value::String(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// The attributes of a body whose values are literals.
pub(crate) fn literal_attributes(body: &hcl::Body) -> Map<String, Value> {
    body.attributes()
        .filter_map(|a| Some((a.key().to_string(), literal(a.expr())?)))
        .collect()
}

/// The variable name when `expr` is exactly `var.NAME`.
pub(crate) fn var_reference(expr: &Expression) -> Option<&str> {
    let Expression::Traversal(t) = expr else {
        return None;
    };
    match (&t.expr, t.operators.as_slice()) {
        (Expression::Variable(v), [TraversalOperator::GetAttr(name)]) if v.as_str() == "var" => {
            Some(name.as_str())
        }
        _ => None,
    }
}

/// Visits every sub-expression of `expr`, depth first, the expression itself included.
pub(crate) fn walk<'a>(expr: &'a Expression, visit: &mut dyn FnMut(&'a Expression)) {
    visit(expr);
    match expr {
        Expression::Array(items) => items.iter().for_each(|e| walk(e, visit)),
        Expression::Object(object) => object.values().for_each(|e| walk(e, visit)),
        Expression::Parenthesis(inner) => walk(inner, visit),
        Expression::FuncCall(call) => call.args.iter().for_each(|e| walk(e, visit)),
        Expression::Conditional(c) => {
            walk(&c.cond_expr, visit);
            walk(&c.true_expr, visit);
            walk(&c.false_expr, visit);
        }
        Expression::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => walk(&u.expr, visit),
            Operation::Binary(b) => {
                walk(&b.lhs_expr, visit);
                walk(&b.rhs_expr, visit);
            }
        },
        Expression::Traversal(t) => walk(&t.expr, visit),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expr(src: &str) -> Expression {
        let body = hcl::parse(&format!("x = {src}\n")).unwrap();
        body.attributes().next().unwrap().expr().clone()
    }

    #[test]
    fn literals_become_json() {
        assert_eq!(
            literal(&expr(r#"{ a = 1, "b.c" = [true, null, "s"], d = 1.5 }"#)),
            Some(json!({"a": 1, "b.c": [true, null, "s"], "d": 1.5}))
        );
        assert_eq!(literal(&expr("\"x-${var.y}\"")), None);
        assert_eq!(literal(&expr("var.y")), None);
    }

    #[test]
    fn finds_var_references() {
        assert_eq!(var_reference(&expr("var.active_slot")), Some("active_slot"));
        assert_eq!(var_reference(&expr("local.active_slot")), None);
        let mut names = vec![];
        walk(
            &expr("contains([\"a\"], var.s) && length(var.t) > 0"),
            &mut |e| {
                if let Some(n) = var_reference(e) {
                    names.push(n.to_string());
                }
            },
        );
        assert_eq!(names, vec!["s", "t"]);
    }
}
