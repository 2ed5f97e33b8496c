//! The one filter language of ChronoTracer: the JSON document that the UI, the REST API
//! and the AI translator all produce, its validation, its time-range resolution and its
//! compilation to parameterized SQL.
//!
//! A document looks like
//!
//! ```json
//! { "time":  { "last": "24h" },
//!   "where": { "all": [ { "field": "action",  "op": "eq", "value": "logon" },
//!                       { "not": { "field": "outcome", "op": "eq", "value": "success" } } ] },
//!   "sort":  "ts_desc",
//!   "limit": 100 }
//! ```
//!
//! * [`FilterDocument`] is the typed document (serde + JSON Schema, published as
//!   `runtime/schema/filter.schema.json`).
//! * [`FilterDocument::parse`] deserializes *and* validates untrusted JSON; every error is a
//!   [`FilterError`] carrying the JSON path (`$.where.all[1].value`) of what is wrong.
//! * [`compile`] / [`compile_page`] / [`compile_count`] / [`compile_bounds`] /
//!   [`compile_histogram`] turn a valid document, the case id
//!   taken from the authenticated session and a [`ResolveCtx`] (now + IANA time zone) into a
//!   [`CompiledQuery`]: SQL text whose column names come from [`Field`] and whose values are
//!   all bound parameters.
//!
//! This module never executes SQL and never sees who the user is; case scope is an argument.

mod compile;
mod document;
mod rollup;
mod time;
mod validate;

pub use compile::{
    CompiledQuery, EVENT_COLUMNS, EVENT_FROM, Keyset, SqlParam, compile, compile_bounds,
    compile_count, compile_histogram, compile_page,
};
pub use document::{
    Field, FilterDocument, Leaf, Node, Op, Sort, Span, SpanUnit, TimePoint, TimeRange,
};
pub use time::{ResolveCtx, ResolvedRange};
pub use validate::{
    FilterError, FilterErrorKind, MAX_DEPTH, MAX_IN_VALUES, MAX_LEAVES, MAX_LIMIT, MAX_STRING_CHARS,
};

/// The JSON Schema of [`FilterDocument`], as published in `runtime/schema/filter.schema.json`
/// (pretty-printed, trailing newline).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(FilterDocument);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
