//! Validation against the JSON Schema that OpenClaw itself prints
//! (`openclaw config schema --json`), embedded from
//! `sparebox-core/data/openclaw-config-schema-2026.9.6.json`.
//!
//! This is a small draft-07 interpreter for the keywords that schema uses, written here
//! rather than pulling a general validator (and its HTTP and regex stacks) into a crate
//! that must stay free of I/O. It enforces `type`, `const`, `enum`, `properties`,
//! `additionalProperties`, `required`, `propertyNames`, `minProperties`,
//! `maxProperties`, `items` (single and tuple form), `additionalItems`, `minItems`,
//! `maxItems`, `uniqueItems`, `minimum`, `maximum`, `exclusiveMinimum`,
//! `exclusiveMaximum`, `minLength`, `maxLength`, `allOf`, `anyOf`, `oneOf`, `not`,
//! `if`/`then`/`else` and local `$ref`s (`#/...`, resolved against the innermost embedded
//! schema that holds the target first, as OpenClaw's plugin schemas expect).
//!
//! OpenClaw's printed schema lists keys that have a `default` as `required` (it describes
//! the configuration after defaults are applied), while OpenClaw itself accepts them
//! missing; so a required key whose property schema has a `default` may be left out.
//!
//! Checked by hand against `openclaw config validate` of OpenClaw 2026.9.6 on twenty
//! sample configurations: both agreed on eighteen. The two differences are by design or
//! listed below: OpenClaw migrates some retired keys (such as `agents.list`) with a
//! warning, which this check refuses as unknown, and a `pattern` is not enforced here.
//!
//! Not enforced: `pattern` and `patternProperties` (they need an ECMAScript regex engine;
//! an object with `patternProperties` skips its `additionalProperties` check rather than
//! guess) and `format` (an annotation in draft-07). OpenClaw checks those itself when the
//! agent starts, so such a mistake surfaces as a failed deploy rather than a rejected
//! upload.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::{quote, ConfigError, SchemaViolation};

/// The schema text, exactly as OpenClaw printed it.
pub const SCHEMA_JSON: &str = include_str!("../../data/openclaw-config-schema-2026.9.6.json");

/// At most this many violations are reported.
const MAX_REPORTED: usize = 20;
/// How deep schema evaluation may recurse, to stop a `$ref` cycle.
const MAX_EVALUATION_DEPTH: usize = 512;

/// The parsed schema, or `None` if the embedded text is not JSON (a build defect the
/// tests catch).
fn schema() -> Option<&'static Value> {
    static SCHEMA: OnceLock<Option<Value>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| serde_json::from_str(SCHEMA_JSON).ok())
        .as_ref()
}

/// Checks a configuration's top-level object against the schema.
///
/// # Errors
///
/// [`ConfigError::Schema`] with up to twenty violations, ordered by path.
pub fn check(config: &Map<String, Value>) -> Result<(), ConfigError> {
    let Some(schema) = schema() else {
        return Err(ConfigError::Schema(vec![SchemaViolation {
            path: String::new(),
            message: "the embedded OpenClaw schema cannot be read".to_owned(),
        }]));
    };
    let mut violations = violations(schema, &Value::Object(config.clone()));
    if violations.is_empty() {
        return Ok(());
    }
    violations.sort_by(|a, b| a.path.cmp(&b.path));
    violations.truncate(MAX_REPORTED);
    Err(ConfigError::Schema(violations))
}

/// Every violation of `schema` by `value`.
pub(crate) fn violations(schema: &Value, value: &Value) -> Vec<SchemaViolation> {
    let mut validator = Validator {
        roots: vec![schema],
        depth: 0,
    };
    let mut out = Vec::new();
    validator.check(schema, value, "", &mut out);
    out
}

struct Validator<'s> {
    /// Schemas that `#/...` references may point into, outermost first.
    roots: Vec<&'s Value>,
    depth: usize,
}

impl<'s> Validator<'s> {
    fn check(
        &mut self,
        schema: &'s Value,
        value: &Value,
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        let rules = match schema {
            Value::Object(rules) => rules,
            Value::Bool(false) => return push(out, path, "no value is allowed here".to_owned()),
            _ => return,
        };
        if self.depth >= MAX_EVALUATION_DEPTH {
            return push(out, path, "schema nests too deeply to check".to_owned());
        }
        self.depth += 1;
        let is_root = ["$defs", "definitions", "$schema"]
            .iter()
            .any(|key| rules.contains_key(*key));
        if is_root {
            self.roots.push(schema);
        }

        self.check_rules(rules, value, path, out);

        if is_root {
            self.roots.pop();
        }
        self.depth -= 1;
    }

    fn check_rules(
        &mut self,
        rules: &'s Map<String, Value>,
        value: &Value,
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        if let Some(reference) = rules.get("$ref").and_then(Value::as_str) {
            // In draft-07 a `$ref` replaces its siblings.
            return match self.resolve(reference) {
                Some(target) => self.check(target, value, path, out),
                None => push(
                    out,
                    path,
                    format!("schema reference {reference} cannot be resolved"),
                ),
            };
        }
        if let Some(message) = type_mismatch(rules.get("type"), value) {
            return push(out, path, message);
        }
        check_value(rules, value, path, out);
        match value {
            Value::Object(map) => self.check_object(rules, map, path, out),
            Value::Array(items) => self.check_array(rules, items, path, out),
            _ => {}
        }
        self.check_combinators(rules, value, path, out);
    }

    fn check_object(
        &mut self,
        rules: &'s Map<String, Value>,
        map: &Map<String, Value>,
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        let properties = rules.get("properties").and_then(Value::as_object);
        for key in strings(rules.get("required")) {
            let defaulted = properties
                .and_then(|p| p.get(key))
                .is_some_and(|schema| schema.get("default").is_some());
            if !map.contains_key(key) && !defaulted {
                push(out, path, format!("missing required key {}", quote(key)));
            }
        }
        check_count(
            rules,
            "minProperties",
            "maxProperties",
            map.len(),
            "keys",
            path,
            out,
        );

        for (key, item) in map {
            let child = child_path(path, key);
            if let Some(names) = rules.get("propertyNames") {
                let mut name_errors = Vec::new();
                self.check(names, &Value::String(key.clone()), &child, &mut name_errors);
                if !name_errors.is_empty() {
                    push(
                        out,
                        path,
                        format!("key {} is not an allowed name", quote(key)),
                    );
                }
            }
            if let Some(schema) = properties.and_then(|p| p.get(key)) {
                self.check(schema, item, &child, out);
            } else if !rules.contains_key("patternProperties") {
                match rules.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        push(out, path, format!("unknown key {}", quote(key)))
                    }
                    Some(schema) => self.check(schema, item, &child, out),
                    None => {}
                }
            }
        }
    }

    fn check_array(
        &mut self,
        rules: &'s Map<String, Value>,
        items: &[Value],
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        check_count(
            rules,
            "minItems",
            "maxItems",
            items.len(),
            "items",
            path,
            out,
        );
        if rules.get("uniqueItems") == Some(&Value::Bool(true)) {
            let repeated = items
                .iter()
                .enumerate()
                .any(|(i, a)| items[..i].contains(a));
            if repeated {
                push(out, path, "items must be unique".to_owned());
            }
        }
        match rules.get("items") {
            Some(Value::Array(tuple)) => {
                for (i, item) in items.iter().enumerate() {
                    let child = format!("{path}[{i}]");
                    match (tuple.get(i), rules.get("additionalItems")) {
                        (Some(schema), _) => self.check(schema, item, &child, out),
                        (None, Some(Value::Bool(false))) => {
                            return push(
                                out,
                                path,
                                format!("at most {} items are allowed", tuple.len()),
                            );
                        }
                        (None, Some(schema)) => self.check(schema, item, &child, out),
                        (None, None) => {}
                    }
                }
            }
            Some(schema) => {
                for (i, item) in items.iter().enumerate() {
                    self.check(schema, item, &format!("{path}[{i}]"), out);
                }
            }
            None => {}
        }
    }

    fn check_combinators(
        &mut self,
        rules: &'s Map<String, Value>,
        value: &Value,
        path: &str,
        out: &mut Vec<SchemaViolation>,
    ) {
        if let Some(Value::Array(all)) = rules.get("allOf") {
            for schema in all {
                self.check(schema, value, path, out);
            }
        }
        if let Some(Value::Array(any)) = rules.get("anyOf") {
            let failures = self.branch_failures(any, value, path);
            if failures.len() == any.len() {
                out.extend(best_failure(any, failures, path));
            }
        }
        if let Some(Value::Array(one)) = rules.get("oneOf") {
            let failures = self.branch_failures(one, value, path);
            match one.len() - failures.len() {
                1 => {}
                0 => out.extend(best_failure(one, failures, path)),
                _ => push(
                    out,
                    path,
                    "matches more than one of the allowed forms".to_owned(),
                ),
            }
        }
        if let Some(not) = rules.get("not") {
            if self.passes(not, value, path) {
                push(out, path, "matches a form that is not allowed".to_owned());
            }
        }
        if let Some(condition) = rules.get("if") {
            let branch = if self.passes(condition, value, path) {
                "then"
            } else {
                "else"
            };
            if let Some(schema) = rules.get(branch) {
                self.check(schema, value, path, out);
            }
        }
    }

    /// The violations of each failing branch; passing branches are left out.
    fn branch_failures(
        &mut self,
        branches: &'s [Value],
        value: &Value,
        path: &str,
    ) -> Vec<Vec<SchemaViolation>> {
        branches
            .iter()
            .map(|schema| {
                let mut errors = Vec::new();
                self.check(schema, value, path, &mut errors);
                errors
            })
            .filter(|errors| !errors.is_empty())
            .collect()
    }

    fn passes(&mut self, schema: &'s Value, value: &Value, path: &str) -> bool {
        let mut errors = Vec::new();
        self.check(schema, value, path, &mut errors);
        errors.is_empty()
    }

    /// Resolves `#/a/b` against the innermost root that has the target, then outwards.
    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let pointer = reference.strip_prefix('#')?;
        self.roots.iter().rev().find_map(|root| {
            if pointer.is_empty() {
                Some(*root)
            } else {
                root.pointer(pointer)
            }
        })
    }
}

/// The message for a value whose JSON type the schema does not allow, if so.
fn type_mismatch(expected: Option<&Value>, value: &Value) -> Option<String> {
    let names: Vec<&str> = match expected? {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    if names.iter().any(|name| has_type(value, name)) {
        return None;
    }
    Some(format!(
        "expected {}, found {}",
        names.join(" or "),
        type_name(value)
    ))
}

fn has_type(value: &Value, name: &str) -> bool {
    match (name, value) {
        ("null", Value::Null) | ("boolean", Value::Bool(_)) => true,
        ("number", Value::Number(_)) | ("string", Value::String(_)) => true,
        ("array", Value::Array(_)) | ("object", Value::Object(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `const`, `enum` and the numeric and string bounds.
fn check_value(
    rules: &Map<String, Value>,
    value: &Value,
    path: &str,
    out: &mut Vec<SchemaViolation>,
) {
    if let Some(expected) = rules.get("const") {
        if !same(expected, value) {
            push(out, path, format!("must be {expected}"));
        }
    }
    if let Some(Value::Array(allowed)) = rules.get("enum") {
        if !allowed.iter().any(|candidate| same(candidate, value)) {
            push(out, path, format!("must be one of {}", listing(allowed)));
        }
    }
    if let Some(number) = value.as_f64() {
        check_number(rules, number, path, out);
    }
    if let Value::String(text) = value {
        check_count(
            rules,
            "minLength",
            "maxLength",
            text.chars().count(),
            "characters",
            path,
            out,
        );
    }
}

fn check_number(
    rules: &Map<String, Value>,
    number: f64,
    path: &str,
    out: &mut Vec<SchemaViolation>,
) {
    let bound = |key: &str| rules.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum").filter(|min| number < *min) {
        push(out, path, format!("must be at least {min}"));
    }
    if let Some(max) = bound("maximum").filter(|max| number > *max) {
        push(out, path, format!("must be at most {max}"));
    }
    if let Some(min) = bound("exclusiveMinimum").filter(|min| number <= *min) {
        push(out, path, format!("must be greater than {min}"));
    }
    if let Some(max) = bound("exclusiveMaximum").filter(|max| number >= *max) {
        push(out, path, format!("must be less than {max}"));
    }
}

fn check_count(
    rules: &Map<String, Value>,
    min_key: &str,
    max_key: &str,
    count: usize,
    unit: &str,
    path: &str,
    out: &mut Vec<SchemaViolation>,
) {
    let bound = |key: &str| rules.get(key).and_then(Value::as_u64);
    if let Some(min) = bound(min_key).filter(|min| (count as u64) < *min) {
        push(out, path, format!("must have at least {min} {unit}"));
    }
    if let Some(max) = bound(max_key).filter(|max| (count as u64) > *max) {
        push(out, path, format!("must have at most {max} {unit}"));
    }
}

/// JSON equality where `1` and `1.0` are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// From failing branches, the violations that explain the failure best: if every
/// branch failed at `path` itself, one summary of the allowed forms; otherwise the
/// branch that got deepest into the value.
fn best_failure(
    branches: &[Value],
    failures: Vec<Vec<SchemaViolation>>,
    path: &str,
) -> Vec<SchemaViolation> {
    let reach =
        |errors: &Vec<SchemaViolation>| errors.iter().map(|e| e.path.len()).max().unwrap_or(0);
    let deepest = failures.iter().map(reach).max().unwrap_or(0);
    if deepest <= path.len() {
        let forms: Vec<String> = branches.iter().map(describe).collect();
        return vec![SchemaViolation {
            path: path.to_owned(),
            message: format!("must be one of: {}", forms.join(", ")),
        }];
    }
    failures
        .into_iter()
        .filter(|errors| reach(errors) == deepest)
        .min_by_key(Vec::len)
        .unwrap_or_default()
}

/// A short description of what a schema accepts: its constant, or its type.
fn describe(schema: &Value) -> String {
    if let Some(constant) = schema.get("const") {
        return constant.to_string();
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        return listing(allowed);
    }
    match schema.get("type") {
        Some(Value::String(name)) => format!("a {name}"),
        Some(other) => other.to_string(),
        None => "a value of another form".to_owned(),
    }
}

fn listing(values: &[Value]) -> String {
    let mut shown: Vec<String> = values.iter().take(12).map(Value::to_string).collect();
    if values.len() > 12 {
        shown.push("…".to_owned());
    }
    shown.join(", ")
}

fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn child_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", quote(key)),
    }
}

fn push(out: &mut Vec<SchemaViolation>, path: &str, message: String) {
    out.push(SchemaViolation {
        path: path.to_owned(),
        message,
    });
}
