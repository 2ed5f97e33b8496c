//! A walker of Amazon States Language definitions for the states the pipeline uses, to
//! follow its failure paths where the local emulator cannot: moto 5.2.5 cannot run the
//! `ecs:runTask.sync` integration with AWS's parameter names and cannot make a state fail
//! with `States.TaskFailed` and a chosen cause.
//!
//! It implements the documented semantics the pipeline depends on
//! (<https://states-language.net/spec.html>,
//! <https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html>):
//! `Pass` (`Result`, `Parameters` with paths and the intrinsics `States.MathAdd` and
//! `States.StringToJson`), `Choice` (`IsPresent`, `IsString`, `StringMatches`,
//! `StringEquals`, `NumericLessThan`, `NumericEquals`, `And`, `Or`, `Not`), `Wait`, `Task`
//! and `Map` (their outcome given by the caller), `Retry` (`ErrorEquals`, `MaxAttempts`),
//! `Catch` (`ErrorEquals`, `ResultPath`), `Fail`, `Succeed`. A runtime error no `Catch` can
//! see — an intrinsic failing in a `Pass`, a `Choice` rule on a missing value, no rule
//! matching without `Default` — ends the walk as [`End::Runtime`], like `States.Runtime`
//! ends an execution. Anything outside this subset panics instead of being guessed.

use serde_json::{Map, Value, json};

/// How a walk ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// A `Succeed` state or an `End` state.
    Succeeded,
    /// A `Fail` state, or an error no `Catch` took.
    Failed(String),
    /// A runtime error in a state that cannot catch (`States.Runtime`).
    Runtime(String),
}

/// What a `Task` or `Map` state did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It succeeded (its result is discarded: the pipeline's tasks use `ResultPath: null`).
    Ok,
    /// It failed with this error and cause.
    Err(String, Option<String>),
}

/// One `Task`/`Map` state entered: its name and its `Parameters` with paths filled.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The state.
    pub state: String,
    /// Its resolved parameters.
    pub parameters: Value,
}

/// The result of a walk.
#[derive(Debug, Clone, PartialEq)]
pub struct Walk {
    /// The states entered, in order.
    pub path: Vec<String>,
    /// The task and map calls, in order.
    pub calls: Vec<Call>,
    /// How it ended.
    pub end: End,
}

/// The value at a reference path (`$`, `$.a.b`, `$.a[0].b`); `None` if absent.
pub fn get<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('$')?;
    let mut v = data;
    for seg in rest.split('.').filter(|s| !s.is_empty()) {
        let (field, index) = match seg.split_once('[') {
            Some((f, i)) => (f, Some(i.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (seg, None),
        };
        if !field.is_empty() {
            v = v.get(field)?;
        }
        if let Some(i) = index {
            v = v.get(i)?;
        }
    }
    Some(v)
}

fn set(data: &mut Value, path: &str, value: Value) {
    if path == "$" {
        *data = value;
        return;
    }
    let fields: Vec<&str> = path
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("unsupported ResultPath {path}"))
        .split('.')
        .collect();
    let mut v = data;
    for f in &fields[..fields.len() - 1] {
        if !v.get(*f).is_some_and(Value::is_object) {
            v[*f] = json!({});
        }
        v = &mut v[*f];
    }
    v[fields[fields.len() - 1]] = value;
}

/// `*` matches any run of characters (`StringMatches`).
fn string_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// A Choice rule; `Err` is a runtime error (a comparison on a missing value).
fn rule(r: &Value, data: &Value) -> Result<bool, String> {
    if let Some(all) = r.get("And").and_then(Value::as_array) {
        for x in all {
            if !rule(x, data)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(any) = r.get("Or").and_then(Value::as_array) {
        for x in any {
            if rule(x, data)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(not) = r.get("Not") {
        return Ok(!rule(not, data)?);
    }
    let var = r["Variable"]
        .as_str()
        .expect("a Choice rule has a Variable");
    let value = get(data, var);
    if let Some(want) = r.get("IsPresent") {
        return Ok(value.is_some() == want.as_bool().unwrap_or(true));
    }
    let value = value.ok_or_else(|| format!("Invalid path '{var}': the value is not present"))?;
    let ops = r.as_object().unwrap();
    let (op, arg) = ops
        .iter()
        .find(|(k, _)| *k != "Variable" && *k != "Next")
        .expect("a Choice rule has an operator");
    Ok(match op.as_str() {
        "IsString" => value.is_string() == arg.as_bool().unwrap_or(true),
        "StringMatches" => value
            .as_str()
            .is_some_and(|s| string_matches(arg.as_str().unwrap(), s)),
        "StringEquals" => value.as_str() == arg.as_str(),
        "NumericLessThan" => value.as_f64().zip(arg.as_f64()).is_some_and(|(a, b)| a < b),
        "NumericEquals" => value
            .as_f64()
            .zip(arg.as_f64())
            .is_some_and(|(a, b)| a == b),
        other => panic!("Choice operator {other} is not modelled"),
    })
}

/// A `Parameters` template with `.$` fields resolved. In `Pass` states the intrinsics the
/// pipeline uses are evaluated; elsewhere an intrinsic is kept as its text (the walker
/// does not run tasks).
fn parameters(t: &Value, data: &Value, evaluate: bool) -> Result<Value, String> {
    match t {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match (k.strip_suffix(".$"), v.as_str()) {
                    (Some(field), Some(expr)) => {
                        let value = if expr.starts_with("$") {
                            get(data, expr)
                                .cloned()
                                .ok_or_else(|| format!("path {expr} of {k} not found"))?
                        } else if evaluate {
                            intrinsic(expr, data)?
                        } else {
                            Value::String(expr.to_owned())
                        };
                        out.insert(field.to_owned(), value);
                    }
                    _ => {
                        out.insert(k.clone(), parameters(v, data, evaluate)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

fn intrinsic(expr: &str, data: &Value) -> Result<Value, String> {
    let arg = |name: &str| {
        expr.strip_prefix(name)
            .and_then(|r| r.strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
    };
    if let Some(args) = arg("States.MathAdd") {
        let (path, n) = args.split_once(", ").expect("two arguments");
        let a = get(data, path)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("States.MathAdd: {path} is not a number"))?;
        return Ok(json!(a + n.parse::<i64>().expect("an integer")));
    }
    if let Some(path) = arg("States.StringToJson") {
        let text = get(data, path)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("States.StringToJson: {path} is not a string"))?;
        return serde_json::from_str(text)
            .map_err(|e| format!("States.StringToJson: {path} is not JSON ({e})"));
    }
    panic!("intrinsic {expr} is not modelled")
}

/// The state a `Choice` goes to (`None`: no rule matched and no `Default`); `Err` is a
/// runtime error of a rule.
fn choose(s: &Value, data: &Value) -> Result<Option<String>, String> {
    for c in s["Choices"].as_array().into_iter().flatten() {
        if rule(c, data)? {
            return Ok(c["Next"].as_str().map(str::to_owned));
        }
    }
    Ok(s["Default"].as_str().map(str::to_owned))
}

fn matches(errors: &Value, error: &str) -> bool {
    errors
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|e| e == error || e == "States.ALL")
}

/// Walks `states` from `start` with `input`; `outcome` decides every `Task`/`Map` state.
pub fn walk(
    states: &Map<String, Value>,
    start: &str,
    input: Value,
    mut outcome: impl FnMut(&Call) -> Outcome,
) -> Walk {
    let mut data = input;
    let mut path = Vec::new();
    let mut calls = Vec::new();
    let mut name = start.to_owned();
    let end = loop {
        if path.len() > 500 {
            panic!("more than 500 states: {path:?}");
        }
        path.push(name.clone());
        let s = states
            .get(&name)
            .unwrap_or_else(|| panic!("no state {name}"));
        let next = |s: &Value| s["Next"].as_str().map(str::to_owned);
        match s["Type"].as_str().unwrap() {
            "Pass" => {
                let result = if let Some(r) = s.get("Result") {
                    r.clone()
                } else if let Some(p) = s.get("Parameters") {
                    match parameters(p, &data, true) {
                        Ok(v) => v,
                        Err(e) => break End::Runtime(format!("{name}: {e}")),
                    }
                } else {
                    data.clone()
                };
                match s.get("ResultPath") {
                    Some(Value::Null) => {}
                    Some(Value::String(p)) => set(&mut data, p, result),
                    None => data = result,
                    Some(other) => panic!("ResultPath {other}"),
                }
            }
            "Choice" => match choose(s, &data) {
                Ok(Some(n)) => {
                    name = n;
                    continue;
                }
                Ok(None) => break End::Runtime(format!("{name}: States.NoChoiceMatched")),
                Err(e) => break End::Runtime(format!("{name}: {e}")),
            },
            "Wait" => {}
            "Task" | "Map" => {
                let call = Call {
                    state: name.clone(),
                    parameters: parameters(&s["Parameters"], &data, false)
                        .unwrap_or_else(|e| panic!("{name}: {e}")),
                };
                let mut attempts: Vec<u64> = vec![0; s["Retry"].as_array().map_or(0, Vec::len)];
                let failure = loop {
                    calls.push(call.clone());
                    match outcome(&call) {
                        Outcome::Ok => break None,
                        Outcome::Err(error, cause) => {
                            let retrier = s["Retry"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .position(|r| matches(&r["ErrorEquals"], &error));
                            match retrier {
                                Some(i)
                                    if attempts[i]
                                        < s["Retry"][i]["MaxAttempts"].as_u64().unwrap_or(3) =>
                                {
                                    attempts[i] += 1;
                                }
                                _ => break Some((error, cause)),
                            }
                        }
                    }
                };
                if let Some((error, cause)) = failure {
                    let catcher = s["Catch"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| matches(&c["ErrorEquals"], &error));
                    let Some(c) = catcher else {
                        break End::Failed(error);
                    };
                    let mut caught = json!({"Error": error});
                    if let Some(cause) = cause {
                        caught["Cause"] = json!(cause);
                    }
                    match c.get("ResultPath") {
                        Some(Value::String(p)) => set(&mut data, p, caught),
                        Some(Value::Null) => {}
                        None => data = caught,
                        Some(other) => panic!("ResultPath {other}"),
                    }
                    name = c["Next"].as_str().unwrap().to_owned();
                    continue;
                }
                if let Some(p) = s["ResultPath"].as_str() {
                    set(&mut data, p, json!({}));
                }
            }
            "Fail" => break End::Failed(s["Error"].as_str().unwrap_or_default().to_owned()),
            "Succeed" => break End::Succeeded,
            other => panic!("state type {other} is not modelled"),
        }
        if s["End"] == true {
            break End::Succeeded;
        }
        name = next(s).unwrap_or_else(|| panic!("{name} has neither Next nor End"));
    };
    Walk { path, calls, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matches_and_paths() {
        assert!(string_matches(
            "*\"ExitCode\":75,*",
            r#"{"a":[{"ExitCode":75,"b":1}]}"#
        ));
        assert!(!string_matches(
            "*\"ExitCode\":75,*",
            r#"{"ExitCode":750,"b":1}"#
        ));
        let d = json!({"a": {"b": [{"c": 3}]}});
        assert_eq!(get(&d, "$.a.b[0].c"), Some(&json!(3)));
        assert_eq!(get(&d, "$.a.x"), None);
    }

    #[test]
    fn a_pass_state_parsing_plain_text_is_an_uncatchable_runtime_error() {
        let states = json!({
            "T": {"Type": "Task", "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.f", "Next": "P"}], "End": true},
            "P": {"Type": "Pass", "Parameters": {"x.$": "States.StringToJson($.f.Cause)"}, "End": true}
        });
        let w = walk(states.as_object().unwrap(), "T", json!({}), |_| {
            Outcome::Err("States.TaskFailed".into(), Some("not json".into()))
        });
        assert!(matches!(w.end, End::Runtime(_)), "{w:?}");
    }
}
