//! The Terraform state file (format version 4): a streaming scanner that summarises a version
//! without holding its body (and can stop after the head: terraform writes the small fields and
//! the outputs before the resources), a reader for the last bytes of a body (`check_results`,
//! and proof that the document ends), and a full parse that indexes resource instances by
//! address. Pure: no I/O. Sensitive output values never leave this module in a summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// The only state format this tool reads and writes.
pub(crate) const FORMAT_VERSION: u64 = 4;

/// Outputs larger than this are refused rather than buffered without bound.
pub(crate) const MAX_OUTPUTS_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum StateError {
    #[error("the state body is not JSON: {detail}")]
    NotJson { detail: String },
    #[error("the state body ends before the JSON document does (truncated)")]
    Truncated,
    #[error("state format version {version} is not supported (tfrollback reads version 4)")]
    UnsupportedFormat { version: u64 },
    #[error("the state has no `{field}` field")]
    MissingField { field: &'static str },
    #[error("the state's `{field}` field is invalid: {detail}")]
    InvalidField { field: &'static str, detail: String },
    #[error("the state's outputs section is larger than {} MiB", MAX_OUTPUTS_BYTES / 1024 / 1024)]
    OutputsTooLarge,
    #[error("the state is encrypted client-side (OpenTofu state encryption), so it cannot be read")]
    Encrypted,
    /// A reason found earlier and remembered (the summary cache keeps it as text).
    #[error("{reason}")]
    Known { reason: String },
}

/// One output as recorded in a state: the value is absent when the output is sensitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutputSummary {
    pub(crate) sensitive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) value: Option<Value>,
}

impl OutputSummary {
    /// The value as it may be shown to people: sensitive values are replaced.
    pub(crate) fn display_value(&self) -> Value {
        // A summary keeps no value of a sensitive output, so a missing value is hidden too.
        match &self.value {
            Some(v) => crate::model::redact(v, self.sensitive),
            None => crate::model::redact(&Value::Null, true),
        }
    }
}

/// What `list` and `show` need to know about one state version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StateSummary {
    pub(crate) terraform_version: String,
    pub(crate) serial: u64,
    pub(crate) lineage: String,
    /// The number of entries of the `resources` array; None when only the head and tail of the
    /// body were read (counting needs the whole body).
    pub(crate) resources: Option<u64>,
    pub(crate) outputs: BTreeMap<String, OutputSummary>,
    /// The state records check results (see `StateScanner::checks`).
    #[serde(default)]
    pub(crate) checks: bool,
}

#[derive(Deserialize)]
struct RawOutput {
    value: Value,
    #[serde(default)]
    sensitive: bool,
}

/// Which top-level field the scanner is inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Version,
    TerraformVersion,
    Serial,
    Lineage,
    Outputs,
    Resources,
    CheckResults,
    EncryptedData,
    Other,
}

impl Field {
    fn from_key(key: &[u8]) -> Field {
        match key {
            b"version" => Field::Version,
            b"terraform_version" => Field::TerraformVersion,
            b"serial" => Field::Serial,
            b"lineage" => Field::Lineage,
            b"outputs" => Field::Outputs,
            b"resources" => Field::Resources,
            b"check_results" => Field::CheckResults,
            b"encrypted_data" => Field::EncryptedData,
            _ => Field::Other,
        }
    }

    /// Fields whose value bytes are kept (everything else is only walked through).
    fn captured(self) -> bool {
        matches!(
            self,
            Field::Version
                | Field::TerraformVersion
                | Field::Serial
                | Field::Lineage
                | Field::Outputs
        )
    }
}

/// Summarises a state body fed in chunks, holding only the small top-level fields and the
/// outputs: the resources array is walked and counted, never kept, so memory stays flat
/// whatever the size of the state.
#[derive(Debug, Default)]
pub(crate) struct StateScanner {
    depth: usize,
    in_string: bool,
    escape: bool,
    started: bool,
    done: bool,
    expect_key: bool,
    in_key: bool,
    key: Vec<u8>,
    field: Option<Field>,
    capture: Vec<u8>,
    resources: u64,
    version: Option<Vec<u8>>,
    terraform_version: Option<Vec<u8>>,
    serial: Option<Vec<u8>>,
    lineage: Option<Vec<u8>>,
    outputs: Option<Vec<u8>>,
    /// Whether `check_results` holds anything: terraform writes them only at the end of a
    /// walk, so an intermediate snapshot persisted mid-apply has none.
    checks: bool,
    encrypted: bool,
    /// Offset of the byte being scanned, and where the top-level serial's value starts and ends.
    pos: usize,
    value_start: usize,
    serial_span: Option<(usize, usize)>,
}

impl StateScanner {
    pub(crate) fn new() -> StateScanner {
        StateScanner::default()
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), StateError> {
        let mut i = 0;
        while i < chunk.len() {
            if self.done {
                if !chunk[i].is_ascii_whitespace() {
                    return Err(not_json("unexpected data after the end of the document"));
                }
                i += 1;
                continue;
            }
            // Fast paths over bytes that cannot change anything: the inside of strings that
            // are not kept, and the inside of values that are only walked (the resources).
            if !self.capturing() && !self.in_key && !self.escape && self.depth >= 2 {
                let rest = &chunk[i..];
                let skip = if self.in_string {
                    memchr::memchr2(b'"', b'\\', rest)
                } else {
                    rest.iter()
                        .position(|b| matches!(b, b'"' | b'{' | b'}' | b'[' | b']'))
                };
                let skip = skip.unwrap_or(rest.len());
                i += skip;
                self.pos += skip;
                if i == chunk.len() {
                    break;
                }
            }
            self.step(chunk[i])?;
            self.pos += 1;
            i += 1;
        }
        Ok(())
    }

    /// Whether the bytes of the current value are being kept.
    fn capturing(&self) -> bool {
        self.field.is_some_and(Field::captured)
    }

    fn step(&mut self, b: u8) -> Result<(), StateError> {
        if self.in_string {
            if self.in_key {
                if !self.escape && b == b'"' {
                    self.in_key = false;
                    self.in_string = false;
                    let field = Field::from_key(&self.key);
                    // Known at the key: a head read can stop here instead of walking the
                    // (large) ciphertext.
                    self.encrypted |= field == Field::EncryptedData;
                    self.field = Some(field);
                    return Ok(());
                }
                self.key.push(b);
            } else {
                self.push(b)?;
            }
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return Ok(());
        }
        if !self.started {
            return match b {
                b'{' => {
                    self.started = true;
                    self.depth = 1;
                    self.expect_key = true;
                    Ok(())
                }
                b if b.is_ascii_whitespace() => Ok(()),
                _ => Err(not_json("the document is not a JSON object")),
            };
        }
        match b {
            b'"' if self.depth == 1 && self.expect_key => {
                self.expect_key = false;
                self.in_key = true;
                self.in_string = true;
                self.key.clear();
            }
            b'"' => {
                self.in_string = true;
                self.push(b)?;
            }
            b'[' | b'{' if self.depth == 1 && self.field == Some(Field::CheckResults) => {
                self.checks = true;
                self.depth += 1;
            }
            b'{' | b'[' => {
                if self.depth == 1 && self.field.is_none() {
                    return Err(not_json("a value without a key"));
                }
                if self.depth == 2 && self.field == Some(Field::Resources) && b == b'{' {
                    self.resources += 1;
                }
                self.push(b)?;
                self.depth += 1;
            }
            b'}' | b']' if self.depth == 1 => {
                if b == b']' {
                    return Err(not_json("mismatched brackets"));
                }
                self.end_value()?;
                self.depth = 0;
                self.done = true;
            }
            b'}' | b']' => {
                self.push(b)?;
                self.depth -= 1;
            }
            b',' if self.depth == 1 => {
                self.end_value()?;
                self.expect_key = true;
            }
            b':' if self.depth == 1 => {
                if self.field.is_none() {
                    return Err(not_json("a colon without a key"));
                }
                self.capture.clear();
                self.value_start = self.pos + 1;
            }
            _ => self.push(b)?,
        }
        Ok(())
    }

    fn push(&mut self, b: u8) -> Result<(), StateError> {
        match self.field {
            Some(field) if field.captured() => {
                if field == Field::Outputs && self.capture.len() >= MAX_OUTPUTS_BYTES {
                    return Err(StateError::OutputsTooLarge);
                }
                self.capture.push(b);
                Ok(())
            }
            Some(_) => Ok(()),
            None if b.is_ascii_whitespace() => Ok(()),
            None => Err(not_json("a value without a key")),
        }
    }

    fn end_value(&mut self) -> Result<(), StateError> {
        let Some(field) = self.field.take() else {
            // `{}` or a trailing position with no key: only valid for an empty object.
            return Ok(());
        };
        let bytes = std::mem::take(&mut self.capture);
        match field {
            Field::Version => self.version = Some(bytes),
            Field::TerraformVersion => self.terraform_version = Some(bytes),
            Field::Serial => {
                self.serial_span = Some((self.value_start, self.pos));
                self.serial = Some(bytes);
            }
            Field::Lineage => self.lineage = Some(bytes),
            Field::Outputs => self.outputs = Some(bytes),
            Field::EncryptedData => self.encrypted = true,
            Field::Resources | Field::CheckResults | Field::Other => {}
        }
        Ok(())
    }

    /// Whether the head has been read: every field a summary needs except the resource count
    /// and the check results, or enough to refuse the body (encrypted, another format
    /// version). Terraform writes these fields first, so this is true after a small prefix
    /// of a body it wrote; a body written in another order may need every byte.
    pub(crate) fn head_done(&self) -> bool {
        self.done
            || self.refused()
            || (self.version.is_some()
                && self.terraform_version.is_some()
                && self.serial.is_some()
                && self.lineage.is_some()
                && self.outputs.is_some())
    }

    /// Whether what was fed already refuses the body, whatever follows: encrypted, or
    /// another format version.
    pub(crate) fn refused(&self) -> bool {
        let other_format = self
            .version
            .as_deref()
            .and_then(|b| serde_json::from_slice::<u64>(b).ok())
            .is_some_and(|v| v != FORMAT_VERSION);
        self.encrypted || other_format
    }

    /// The summary from the head alone (see `head_done`): no resource count, and the check
    /// results as the tail said (`read_tail`). When the whole document was fed, this is
    /// `finish`, count included.
    pub(crate) fn finish_head(self, checks: bool) -> Result<StateSummary, StateError> {
        if self.done {
            return self.finish();
        }
        if self.encrypted {
            return Err(StateError::Encrypted);
        }
        if !self.head_done() {
            return Err(StateError::Truncated);
        }
        let mut summary = self.summary()?;
        summary.resources = None;
        summary.checks = checks;
        Ok(summary)
    }

    /// The summary, once the whole document has been fed.
    pub(crate) fn finish(self) -> Result<StateSummary, StateError> {
        if self.encrypted {
            return Err(StateError::Encrypted);
        }
        if !self.done {
            return Err(if self.started {
                StateError::Truncated
            } else {
                not_json("the body is empty")
            });
        }
        self.summary()
    }

    fn summary(self) -> Result<StateSummary, StateError> {
        let version: u64 = parse_field(self.version.as_deref(), "version")?;
        if version != FORMAT_VERSION {
            return Err(StateError::UnsupportedFormat { version });
        }
        let outputs = match self.outputs {
            Some(bytes) => parse_outputs(&bytes)?,
            None => BTreeMap::new(),
        };
        Ok(StateSummary {
            terraform_version: parse_field(self.terraform_version.as_deref(), "terraform_version")?,
            serial: parse_field(self.serial.as_deref(), "serial")?,
            lineage: parse_field(self.lineage.as_deref(), "lineage")?,
            resources: Some(self.resources),
            outputs,
            checks: self.checks,
        })
    }
}

/// What the last bytes of a body prove, from a suffix read: `Some(checks)` when they end
/// the document with terraform's top-level `"check_results": VALUE }` (checks: the value is
/// not null), None when they do not show that (a body cut short, trailing data, a writer that
/// puts no `check_results` last): the caller then reads the whole body for the diagnosis.
///
/// A key `"check_results"` nested in a resource could only be followed by more closing
/// brackets, so accepting exactly one `}` after the value picks the top-level one.
pub(crate) fn read_tail(tail: &[u8]) -> Option<bool> {
    const KEY: &[u8] = b"\"check_results\"";
    let at = memchr::memmem::rfind(tail, KEY)?;
    // The key follows another member (or opens the object, or the tail starts at it).
    let before = tail[..at].iter().rev().find(|b| !b.is_ascii_whitespace());
    if !matches!(before, None | Some(b',' | b'{')) {
        return None;
    }
    let rest = trim_start(&tail[at + KEY.len()..]);
    let rest = trim_start(rest.strip_prefix(b":")?);
    let mut values =
        serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
    values.next()?.ok()?;
    let value = &rest[..values.byte_offset()];
    let after = trim_start(&rest[values.byte_offset()..]);
    let after = trim_start(after.strip_prefix(b"}")?);
    after.is_empty().then(|| value != b"null")
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[n..]
}

fn not_json(detail: &str) -> StateError {
    StateError::NotJson {
        detail: detail.to_string(),
    }
}

fn parse_field<T: serde::de::DeserializeOwned>(
    bytes: Option<&[u8]>,
    field: &'static str,
) -> Result<T, StateError> {
    let bytes = bytes.ok_or(StateError::MissingField { field })?;
    serde_json::from_slice(bytes).map_err(|e| StateError::InvalidField {
        field,
        detail: e.to_string(),
    })
}

fn parse_outputs(bytes: &[u8]) -> Result<BTreeMap<String, OutputSummary>, StateError> {
    let raw: BTreeMap<String, RawOutput> = parse_field(Some(bytes), "outputs")?;
    Ok(raw
        .into_iter()
        .map(|(name, o)| (name, summarize_output(o)))
        .collect())
}

fn summarize_output(o: RawOutput) -> OutputSummary {
    OutputSummary {
        sensitive: o.sensitive,
        value: (!o.sensitive).then_some(o.value),
    }
}

/// The same state with another serial, every other byte unchanged: a rollback writes an old
/// content as a new version, which needs a serial above the current one.
pub(crate) fn with_serial(body: &[u8], serial: u64) -> Result<Vec<u8>, StateError> {
    let mut scanner = StateScanner::new();
    scanner.feed(body)?;
    let (start, end) = scanner
        .serial_span
        .ok_or(StateError::MissingField { field: "serial" })?;
    scanner.finish()?;
    let value = &body[start..end];
    let lead = value.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let trail = value
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&body[..start + lead]);
    out.extend_from_slice(serial.to_string().as_bytes());
    out.extend_from_slice(&body[end - trail..]);
    Ok(out)
}

/// Summarises a whole body held in memory.
pub(crate) fn summarize(body: &[u8]) -> Result<StateSummary, StateError> {
    let mut scanner = StateScanner::new();
    scanner.feed(body)?;
    scanner.finish()
}

/// One output with its value, sensitive or not. Only the full parse has these; callers decide
/// what may be shown.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Output {
    pub(crate) value: Value,
    pub(crate) sensitive: bool,
}

impl Output {
    /// The output as a summary keeps it: no value when it is sensitive.
    pub(crate) fn summary(&self) -> OutputSummary {
        OutputSummary {
            sensitive: self.sensitive,
            value: (!self.sensitive).then(|| self.value.clone()),
        }
    }
}

/// The summaries of a state's outputs.
pub(crate) fn output_summaries(
    outputs: &BTreeMap<String, Output>,
) -> BTreeMap<String, OutputSummary> {
    outputs
        .iter()
        .map(|(n, o)| (n.clone(), o.summary()))
        .collect()
}

/// A state parsed whole, borrowing its body: resource instances stay raw JSON slices, so the
/// memory needed is little more than the body itself.
#[derive(Debug)]
pub(crate) struct State<'a> {
    pub(crate) terraform_version: String,
    pub(crate) serial: u64,
    pub(crate) lineage: String,
    pub(crate) outputs: BTreeMap<String, Output>,
    /// Resource instances by address (`module.m.aws_instance.web[0]`), in the file's order.
    pub(crate) instances: BTreeMap<String, &'a RawValue>,
}

#[derive(Deserialize)]
struct FileV4<'a> {
    version: u64,
    terraform_version: String,
    serial: u64,
    lineage: String,
    #[serde(default, borrow)]
    outputs: Option<&'a RawValue>,
    #[serde(default, borrow)]
    resources: Vec<ResourceV4<'a>>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: Option<u64>,
    encrypted_data: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ResourceV4<'a> {
    #[serde(default)]
    module: Option<String>,
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default, borrow)]
    instances: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct InstanceKey {
    #[serde(default)]
    index_key: Option<Value>,
    /// Set on an object a `create_before_destroy` replacement left behind: the same address
    /// then holds the new (current) object and this deposed one.
    #[serde(default)]
    deposed: Option<String>,
}

impl<'a> State<'a> {
    pub(crate) fn parse(body: &'a str) -> Result<State<'a>, StateError> {
        let file: FileV4<'a> = serde_json::from_str(body).map_err(|e| classify(body, e))?;
        if file.version != FORMAT_VERSION {
            return Err(StateError::UnsupportedFormat {
                version: file.version,
            });
        }
        let outputs: BTreeMap<String, RawOutput> = match file.outputs {
            Some(raw) if raw.get().len() > MAX_OUTPUTS_BYTES => {
                return Err(StateError::OutputsTooLarge);
            }
            Some(raw) => serde_json::from_str(raw.get()).map_err(|e| StateError::InvalidField {
                field: "outputs",
                detail: e.to_string(),
            })?,
            None => BTreeMap::new(),
        };
        let mut instances = BTreeMap::new();
        for resource in &file.resources {
            let base = resource_address(resource);
            for raw in &resource.instances {
                // Most instances have no index key and are not deposed: only parse the ones
                // that may be.
                let key =
                    if raw.get().contains("\"index_key\"") || raw.get().contains("\"deposed\"") {
                        serde_json::from_str::<InstanceKey>(raw.get()).map_err(|e| {
                            StateError::InvalidField {
                                field: "resources",
                                detail: e.to_string(),
                            }
                        })?
                    } else {
                        InstanceKey {
                            index_key: None,
                            deposed: None,
                        }
                    };
                let mut address = match key.index_key {
                    None => base.clone(),
                    Some(Value::String(s)) => format!("{base}[{}]", Value::String(s)),
                    Some(other) => format!("{base}[{other}]"),
                };
                if let Some(deposed) = key.deposed {
                    address.push_str(&format!(" (deposed {deposed})"));
                }
                instances.insert(address, *raw);
            }
        }
        Ok(State {
            terraform_version: file.terraform_version,
            serial: file.serial,
            lineage: file.lineage,
            outputs: outputs
                .into_iter()
                .map(|(name, o)| {
                    (
                        name,
                        Output {
                            value: o.value,
                            sensitive: o.sensitive,
                        },
                    )
                })
                .collect(),
            instances,
        })
    }
}

/// Turns a serde error on a whole body into the most useful of our errors.
fn classify(body: &str, e: serde_json::Error) -> StateError {
    if e.is_eof() {
        return StateError::Truncated;
    }
    if e.is_syntax() {
        return not_json(&e.to_string());
    }
    match serde_json::from_str::<VersionOnly>(body) {
        Ok(VersionOnly {
            encrypted_data: Some(_),
            ..
        }) => StateError::Encrypted,
        Ok(VersionOnly {
            version: Some(v), ..
        }) if v != FORMAT_VERSION => StateError::UnsupportedFormat { version: v },
        _ => StateError::InvalidField {
            field: "state",
            detail: e.to_string(),
        },
    }
}

fn resource_address(r: &ResourceV4<'_>) -> String {
    let mut address = String::new();
    if let Some(module) = &r.module {
        address.push_str(module);
        address.push('.');
    }
    if r.mode == "data" {
        address.push_str("data.");
    }
    address.push_str(&r.kind);
    address.push('.');
    address.push_str(&r.name);
    address
}

/// A short lineage for tables: the first 8 characters, as people compare them by eye.
pub(crate) fn short_lineage(lineage: &str) -> &str {
    lineage.get(..8).unwrap_or(lineage)
}

/// Whether version `a` is newer than `b` (`1.11.4` > `1.9.8`); pre-release suffixes are ignored.
pub(crate) fn is_newer(a: &str, b: &str) -> bool {
    fn parts(v: &str) -> Vec<u64> {
        v.trim_start_matches('v')
            .split(['-', '+'])
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    }
    let (mut a, mut b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    a.resize(len, 0);
    b.resize(len, 0);
    a > b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn compares_versions_numerically() {
        assert!(is_newer("1.11.4", "1.9.8"));
        assert!(is_newer("1.12.0-beta1", "1.11.4"));
        assert!(!is_newer("1.11.4", "1.11.4"));
        assert!(!is_newer("1.5", "1.5.0"));
        assert!(!is_newer("0.15.5", "1.0.0"));
    }

    fn sample() -> String {
        serde_json::to_string_pretty(&sample_value()).unwrap()
    }

    /// A document with its top-level keys in terraform's order (serde_json sorts them).
    fn terraform_order(doc: &Value, pretty: bool) -> String {
        let members: Vec<String> = [
            "version",
            "terraform_version",
            "serial",
            "lineage",
            "outputs",
            "resources",
            "check_results",
        ]
        .iter()
        .filter_map(|k| {
            let v = doc.get(*k)?;
            let v = if pretty {
                serde_json::to_string_pretty(v)
                    .unwrap()
                    .replace('\n', "\n  ")
            } else {
                v.to_string()
            };
            Some(format!("\"{k}\": {v}"))
        })
        .collect();
        if pretty {
            format!("{{\n  {}\n}}\n", members.join(",\n  "))
        } else {
            format!("{{{}}}", members.join(","))
        }
    }

    fn tf_sample() -> String {
        terraform_order(&sample_value(), true)
    }

    fn sample_value() -> Value {
        json!({
            "version": 4,
            "terraform_version": "1.11.4",
            "serial": 7,
            "lineage": "3f1c2a9e-aaaa-bbbb-cccc-0123456789ab",
            "outputs": {
                "active_slot": {"value": "green", "type": "string"},
                "db_password": {"value": "hunter2", "type": "string", "sensitive": true},
                "tricky": {"value": "a \"quoted\" } ] { [ value", "type": "string"}
            },
            "resources": [
                {"mode": "managed", "type": "terraform_data", "name": "router", "provider": "p",
                 "instances": [{"schema_version": 0, "attributes": {"input": "{x}"}}]},
                {"module": "module.app", "mode": "managed", "type": "terraform_data", "name": "blue", "provider": "p",
                 "instances": [{"index_key": 0, "attributes": {}}, {"index_key": 1, "attributes": {}}]},
                {"mode": "data", "type": "terraform_remote_state", "name": "net", "provider": "p",
                 "instances": [{"index_key": "k", "attributes": {}}]}
            ],
            "check_results": null
        })
    }

    #[test]
    fn scanner_summarises_and_drops_sensitive_values() {
        let s = summarize(sample().as_bytes()).unwrap();
        assert_eq!(s.serial, 7);
        assert_eq!(s.terraform_version, "1.11.4");
        assert_eq!(s.resources, Some(3));
        assert!(!s.checks, "check_results is null");
        assert_eq!(s.outputs["active_slot"].value, Some(json!("green")));
        assert_eq!(s.outputs["db_password"].value, None);
        assert!(s.outputs["db_password"].sensitive);
        assert_eq!(
            s.outputs["tricky"].value,
            Some(json!("a \"quoted\" } ] { [ value"))
        );
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn scanner_works_one_byte_at_a_time() {
        let body = sample();
        let mut scanner = StateScanner::new();
        for b in body.as_bytes() {
            scanner.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(
            scanner.finish().unwrap(),
            summarize(body.as_bytes()).unwrap()
        );
    }

    #[test]
    fn scanner_reports_truncation_and_garbage() {
        let body = sample();
        assert_eq!(
            summarize(&body.as_bytes()[..body.len() / 2]),
            Err(StateError::Truncated)
        );
        assert!(matches!(
            summarize(b"<html>nope</html>"),
            Err(StateError::NotJson { .. })
        ));
        assert!(matches!(summarize(b""), Err(StateError::NotJson { .. })));
        assert!(matches!(
            summarize(b"{\"version\": 4} trailing"),
            Err(StateError::NotJson { .. })
        ));
    }

    #[test]
    fn scanner_refuses_other_format_versions_and_encrypted_state() {
        let v3 = br#"{"version": 3, "terraform_version": "0.11.0", "serial": 1, "lineage": "x", "modules": []}"#;
        assert_eq!(
            summarize(v3),
            Err(StateError::UnsupportedFormat { version: 3 })
        );
        let tofu = br#"{"serial": 1, "lineage": "x", "meta": {"key_provider.pbkdf2.k": "e30="}, "encrypted_data": "AAAA", "encryption_version": "v0"}"#;
        assert_eq!(summarize(tofu), Err(StateError::Encrypted));
        assert_eq!(
            State::parse(std::str::from_utf8(tofu).unwrap()).unwrap_err(),
            StateError::Encrypted
        );
    }

    #[test]
    fn serial_is_rewritten_in_place() {
        let body = sample();
        let out = with_serial(body.as_bytes(), 12).unwrap();
        let before: Value = serde_json::from_str(&body).unwrap();
        let mut after: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(after["serial"], json!(12));
        after["serial"] = json!(7);
        assert_eq!(before, after);
        assert_eq!(out.len(), body.len() + 1);
        let compact = br#"{"version":4,"serial":3,"lineage":"l","terraform_version":"1.0.0","outputs":{"serial":{"value":1}}}"#;
        let out = with_serial(compact, 400).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"version":4,"serial":400,"lineage":"l","terraform_version":"1.0.0","outputs":{"serial":{"value":1}}}"#
        );
    }

    #[test]
    fn full_parse_indexes_instances_by_address() {
        let body = sample();
        let state = State::parse(&body).unwrap();
        let addresses: Vec<_> = state.instances.keys().cloned().collect();
        assert_eq!(
            addresses,
            vec![
                "data.terraform_remote_state.net[\"k\"]",
                "module.app.terraform_data.blue[0]",
                "module.app.terraform_data.blue[1]",
                "terraform_data.router",
            ]
        );
        assert_eq!(state.outputs["db_password"].value, json!("hunter2"));
    }

    /// Feeds `body` a few bytes at a time until the head is read; returns how much was fed.
    fn feed_head(scanner: &mut StateScanner, body: &[u8], step: usize) -> usize {
        let mut fed = 0;
        while fed < body.len() && !scanner.head_done() {
            let end = (fed + step).min(body.len());
            scanner.feed(&body[fed..end]).unwrap();
            fed = end;
        }
        fed
    }

    #[test]
    fn the_head_ends_before_the_resources() {
        let body = tf_sample();
        let resources_at = body.find("\"resources\"").unwrap();
        let mut scanner = StateScanner::new();
        let fed = feed_head(&mut scanner, body.as_bytes(), 7);
        assert!(scanner.head_done());
        assert!(
            fed <= resources_at + 7,
            "stopped at {fed}, resources at {resources_at}"
        );
        let head = scanner.finish_head(true).unwrap();
        let full = summarize(body.as_bytes()).unwrap();
        assert_eq!(head.resources, None, "counting needs the whole body");
        assert!(head.checks, "the tail's word is taken");
        assert_eq!(
            StateSummary {
                resources: full.resources,
                checks: full.checks,
                ..head
            },
            full
        );
        assert!(!format!("{full:?}").contains("hunter2"));
    }

    #[test]
    fn a_head_read_still_refuses_what_a_whole_read_refuses() {
        // Encrypted: known at the key, before the ciphertext.
        let tofu = format!(
            r#"{{"serial": 1, "lineage": "x", "meta": {{}}, "encrypted_data": "{}", "encryption_version": "v0"}}"#,
            "A".repeat(100_000)
        );
        let mut scanner = StateScanner::new();
        let fed = feed_head(&mut scanner, tofu.as_bytes(), 64);
        assert!(fed < 200, "{fed}");
        assert_eq!(scanner.finish_head(false), Err(StateError::Encrypted));
        // Another format version: known from the first field.
        let v3 = format!(
            r#"{{"version": 3, "terraform_version": "0.11.0", "serial": 1, "lineage": "x", "modules": [{}]}}"#,
            "{}, ".repeat(10_000) + "{}"
        );
        let mut scanner = StateScanner::new();
        assert!(feed_head(&mut scanner, v3.as_bytes(), 16) < 64);
        assert_eq!(
            scanner.finish_head(false),
            Err(StateError::UnsupportedFormat { version: 3 })
        );
        // Not JSON: the first bytes say so.
        let mut scanner = StateScanner::new();
        assert!(matches!(
            scanner.feed(b"<html><body>503</body></html>"),
            Err(StateError::NotJson { .. })
        ));
        // Outputs too large: the head grows until the limit, then gives up.
        let big = format!(
            r#"{{"version": 4, "terraform_version": "1.11.4", "serial": 1, "lineage": "l", "outputs": {{"o": {{"value": "{}"}}}}, "resources": []}}"#,
            "x".repeat(MAX_OUTPUTS_BYTES)
        );
        let mut scanner = StateScanner::new();
        assert_eq!(
            scanner.feed(big.as_bytes()),
            Err(StateError::OutputsTooLarge)
        );
        // A body that ends inside its head is truncated, as a whole read says.
        let body = tf_sample();
        let cut = &body.as_bytes()[..body.find("\"outputs\"").unwrap() + 20];
        let mut scanner = StateScanner::new();
        scanner.feed(cut).unwrap();
        assert!(!scanner.head_done());
        assert_eq!(scanner.finish_head(false), Err(StateError::Truncated));
        // A head that holds the whole document gives the full summary, count included.
        let mut scanner = StateScanner::new();
        scanner.feed(body.as_bytes()).unwrap();
        assert_eq!(
            scanner.finish_head(false).unwrap(),
            summarize(body.as_bytes()).unwrap()
        );
    }

    #[test]
    fn the_tail_proves_the_end_and_tells_the_check_results() {
        let body = tf_sample();
        let key_at = body.rfind("\"check_results\"").unwrap();
        for from in [0, key_at.saturating_sub(30), key_at - 1, key_at] {
            assert_eq!(
                read_tail(&body.as_bytes()[from..]),
                Some(false),
                "from {from}"
            );
        }
        let checked = body.replace(
            "\"check_results\": null",
            "\"check_results\": [{\"object_kind\": \"resource\", \"config_addr\": \"x\", \"status\": \"pass\", \"objects\": null}]",
        );
        assert_eq!(read_tail(checked.as_bytes()), Some(true));
        assert_eq!(
            read_tail(b"\n  ],\n  \"check_results\": []\n}\n"),
            Some(true)
        );
        // A tail too short to hold the key, a body cut short, trailing data, no check_results
        // at the end: nothing is proven, so the caller reads the whole body.
        assert_eq!(read_tail(&body.as_bytes()[key_at + 3..]), None);
        assert_eq!(read_tail(&body.as_bytes()[..body.len() - 3]), None);
        assert_eq!(read_tail(format!("{body} x").as_bytes()), None);
        assert_eq!(read_tail(b"  \"resources\": []\n}\n"), None);
        // A key of that name inside a resource is followed by more closing brackets.
        assert_eq!(
            read_tail(b"{\"attributes\": {\"check_results\": null}}]}\n"),
            None
        );
        assert_eq!(read_tail(b"[\"check_results\": null}"), None);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever the values and however the body is split, the scanner agrees with a full
        /// parse by serde_json.
        #[test]
        fn scanner_agrees_with_serde(
            outputs in prop::collection::btree_map("[a-z_]{1,8}", (arb_json(), any::<bool>()), 0..5),
            resources in prop::collection::vec(arb_json(), 0..6),
            serial in any::<u32>(),
            split in any::<prop::sample::Index>(),
            pretty in any::<bool>(),
        ) {
            let doc = json!({
                "version": 4,
                "terraform_version": "1.9.0",
                "serial": serial,
                "lineage": "l",
                "outputs": outputs.iter().map(|(k, (v, s))| (k.clone(), json!({"value": v, "sensitive": s}))).collect::<serde_json::Map<_, _>>(),
                "resources": resources.iter().map(|attrs| json!({"mode": "managed", "type": "t", "name": "n", "instances": [{"attributes": {"a": attrs}}]})).collect::<Vec<_>>(),
            });
            let body = if pretty { serde_json::to_vec_pretty(&doc) } else { serde_json::to_vec(&doc) }.unwrap();
            let at = split.index(body.len() + 1);
            let mut scanner = StateScanner::new();
            scanner.feed(&body[..at]).unwrap();
            scanner.feed(&body[at..]).unwrap();
            let s = scanner.finish().unwrap();
            prop_assert_eq!(s.serial, u64::from(serial));
            prop_assert_eq!(s.resources, Some(resources.len() as u64));
            for (name, (value, sensitive)) in &outputs {
                let o = &s.outputs[name];
                prop_assert_eq!(o.sensitive, *sensitive);
                prop_assert_eq!(o.value.as_ref(), (!*sensitive).then_some(value));
            }
        }

        /// Stopping after the head gives the same fields as reading every byte, and the tail
        /// of any terraform-shaped body proves its end.
        #[test]
        fn head_and_tail_agree_with_a_whole_read(
            outputs in prop::collection::btree_map("[a-z_]{1,8}", (arb_json(), any::<bool>()), 0..5),
            resources in prop::collection::vec(arb_json(), 0..6),
            checks in any::<bool>(),
            step in 1usize..64,
            tail_len in 24usize..200,
            pretty in any::<bool>(),
        ) {
            let doc = json!({
                "version": 4,
                "terraform_version": "1.9.0",
                "serial": 3,
                "lineage": "l",
                "outputs": outputs.iter().map(|(k, (v, s))| (k.clone(), json!({"value": v, "sensitive": s}))).collect::<serde_json::Map<_, _>>(),
                "resources": resources.iter().map(|attrs| json!({"mode": "managed", "type": "t", "name": "n", "instances": [{"attributes": {"check_results": attrs}}]})).collect::<Vec<_>>(),
                "check_results": if checks { json!([]) } else { Value::Null },
            });
            let body = terraform_order(&doc, pretty).into_bytes();
            let full = summarize(&body).unwrap();
            let tail = &body[body.len().saturating_sub(tail_len)..];
            prop_assert_eq!(read_tail(tail), Some(checks));
            let mut scanner = StateScanner::new();
            feed_head(&mut scanner, &body, step);
            let done = scanner.done;
            let head = scanner.finish_head(checks).unwrap();
            prop_assert_eq!(head.resources, if done { full.resources } else { None });
            prop_assert_eq!(head.checks, checks);
            prop_assert_eq!(&head.outputs, &full.outputs);
            prop_assert_eq!(head.serial, full.serial);
        }

        /// Arbitrary bytes never panic the scanner.
        #[test]
        fn scanner_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = summarize(&body);
        }
    }
}
