//! GitHub Actions `if:` expressions, evaluated the way the runner decides whether a step runs:
//! the operators, literals, status functions and `steps.<id>.outcome` that step conditions
//! use. Anything else is refused loudly.

use std::collections::BTreeMap;

/// How a step ended, as `steps.<id>.outcome` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ExprValue {
    Bool(bool),
    Str(String),
}

impl ExprValue {
    fn truthy(&self) -> bool {
        match self {
            ExprValue::Bool(b) => *b,
            ExprValue::Str(s) => !s.is_empty(),
        }
    }
}

/// What a condition sees: whether a step has failed, and the outcomes of steps with an `id`.
pub struct ExprContext<'a> {
    pub job_failed: bool,
    pub outcomes: &'a BTreeMap<String, Outcome>,
}

/// Whether a step with this `if:` runs. As in GitHub Actions, a condition without a status
/// function means `success() && (condition)`.
pub fn step_runs(condition: Option<&str>, ctx: &ExprContext) -> bool {
    let Some(condition) = condition else {
        return !ctx.job_failed;
    };
    let condition = condition.trim();
    let condition = condition
        .strip_prefix("${{")
        .and_then(|c| c.strip_suffix("}}"))
        .unwrap_or(condition);
    let has_status = ["success()", "failure()", "always()", "cancelled()"]
        .iter()
        .any(|f| condition.contains(f));
    let tokens = tokenize(condition);
    let mut pos = 0;
    let value = parse_or(&tokens, &mut pos, ctx);
    assert_eq!(pos, tokens.len(), "trailing tokens in `{condition}`");
    value.truthy() && (has_status || !ctx.job_failed)
}

fn tokenize(expr: &str) -> Vec<String> {
    let mut tokens = vec![];
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&c| c == '\'')
                .expect("closing quote")
                + i
                + 1;
            tokens.push(chars[i..=end].iter().collect());
            i = end + 1;
        } else if "()".contains(c) {
            tokens.push(c.to_string());
            i += 1;
        } else if let Some(op) = chars
            .get(i..i + 2)
            .map(|pair| pair.iter().collect::<String>())
            .filter(|pair| ["&&", "||", "==", "!="].contains(&pair.as_str()))
        {
            tokens.push(op);
            i += 2;
        } else if c == '!' {
            tokens.push("!".into());
            i += 1;
        } else {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "._-".contains(chars[i]))
            {
                i += 1;
            }
            assert!(i > start, "unexpected `{c}` in `{expr}`");
            tokens.push(chars[start..i].iter().collect());
        }
    }
    tokens
}

fn parse_or(t: &[String], pos: &mut usize, ctx: &ExprContext) -> ExprValue {
    let mut value = parse_and(t, pos, ctx);
    while t.get(*pos).is_some_and(|s| s == "||") {
        *pos += 1;
        let right = parse_and(t, pos, ctx);
        value = if value.truthy() { value } else { right };
    }
    value
}

fn parse_and(t: &[String], pos: &mut usize, ctx: &ExprContext) -> ExprValue {
    let mut value = parse_unary(t, pos, ctx);
    while t.get(*pos).is_some_and(|s| s == "&&") {
        *pos += 1;
        let right = parse_unary(t, pos, ctx);
        value = if value.truthy() { right } else { value };
    }
    value
}

fn parse_unary(t: &[String], pos: &mut usize, ctx: &ExprContext) -> ExprValue {
    if t.get(*pos).is_some_and(|s| s == "!") {
        *pos += 1;
        return ExprValue::Bool(!parse_unary(t, pos, ctx).truthy());
    }
    let left = parse_primary(t, pos, ctx);
    match t.get(*pos).map(String::as_str) {
        Some(op @ ("==" | "!=")) => {
            let op = op.to_string();
            *pos += 1;
            let right = parse_primary(t, pos, ctx);
            ExprValue::Bool((left == right) == (op == "=="))
        }
        _ => left,
    }
}

fn parse_primary(t: &[String], pos: &mut usize, ctx: &ExprContext) -> ExprValue {
    let token = t.get(*pos).expect("an operand").clone();
    *pos += 1;
    if token == "(" {
        let value = parse_or(t, pos, ctx);
        assert_eq!(t.get(*pos).map(String::as_str), Some(")"), "unbalanced ()");
        *pos += 1;
        return value;
    }
    if let Some(s) = token.strip_prefix('\'') {
        return ExprValue::Str(s.trim_end_matches('\'').to_string());
    }
    if t.get(*pos).is_some_and(|s| s == "(") {
        assert_eq!(
            t.get(*pos + 1).map(String::as_str),
            Some(")"),
            "arguments to {token}()"
        );
        *pos += 2;
        return ExprValue::Bool(match token.as_str() {
            "success" => !ctx.job_failed,
            "failure" => ctx.job_failed,
            "always" => true,
            "cancelled" => false,
            other => panic!("unknown function {other}() in a step condition"),
        });
    }
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        ["steps", id, "outcome"] => ExprValue::Str(
            ctx.outcomes
                .get(*id)
                .map(|o| o.as_str().to_string())
                .unwrap_or_default(),
        ),
        _ => panic!("unknown operand `{token}` in a step condition"),
    }
}
