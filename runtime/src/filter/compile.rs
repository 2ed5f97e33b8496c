//! The compiler: a valid document → one parameterized SQL statement.
//!
//! Every column name in the SQL text comes from [`super::Field`] via a `match`; every value
//! from the document is a bound parameter ([`SqlParam`]). `not` is pushed down to the
//! leaves (De Morgan), so positive leaves stay plain, index-friendly predicates and a
//! negated leaf is `NOT COALESCE(p, false)`: events lacking the field match `neq`, `nin`
//! and `not`, as an investigator expects.

use chrono::{DateTime, Utc};
use sqlx::Arguments;
use sqlx::postgres::PgArguments;
use sqlx::types::ipnetwork::IpNetwork;
use uuid::Uuid;

use super::document::{FilterDocument, Node, Sort};
use super::time::{ResolveCtx, ResolvedRange};
use super::validate::{Checked, FilterError, FilterErrorKind, Pred, RefKind, check_leaf};

/// The event columns a search returns, in this order, over
/// `events e LEFT JOIN devices d … LEFT JOIN identities i …`.
pub const EVENT_COLUMNS: &str = "e.id, e.case_id, e.evidence_id, e.ts, e.timestamp_desc, \
    e.data_type, e.source, e.parser, e.message, e.event_code, e.action, e.outcome, \
    e.src_ip, e.dst_ip, e.attributes, e.tags, e.device_id, d.name AS device_name, \
    e.identity_id, i.kind AS identity_kind, i.value AS identity_value, e.source_file, \
    e.record_ref, e.title, e.category";

/// The FROM clause matching [`EVENT_COLUMNS`].
pub const EVENT_FROM: &str = "events e LEFT JOIN devices d ON d.id = e.device_id \
    LEFT JOIN identities i ON i.id = e.identity_id";

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// `uuid`
    Uuid(Uuid),
    /// `uuid[]`
    UuidArray(Vec<Uuid>),
    /// `text`
    Text(String),
    /// `text[]`
    TextArray(Vec<String>),
    /// `timestamptz`
    Timestamp(DateTime<Utc>),
    /// `timestamptz[]`
    TimestampArray(Vec<DateTime<Utc>>),
    /// `inet`
    Inet(IpNetwork),
    /// `inet[]`
    InetArray(Vec<IpNetwork>),
    /// `float8`
    Float(f64),
    /// `int8`
    BigInt(i64),
}

/// Where the previous page ended: the last event's time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    /// Time of the last event returned.
    pub ts: DateTime<Utc>,
    /// Id of the last event returned.
    pub id: i64,
}

/// SQL text plus its parameters, in order (`$1` is the case id).
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledQuery {
    /// The statement.
    pub sql: String,
    /// Values for `$1..$n`.
    pub params: Vec<SqlParam>,
    /// Page size asked for; the statement fetches one more row to tell whether a next
    /// page exists.
    pub page_size: u32,
    /// The time range the statement uses, in UTC.
    pub range: ResolvedRange,
}

impl CompiledQuery {
    /// The parameters as sqlx arguments, for `sqlx::query_as_with(&q.sql, q.arguments()?)`.
    pub fn arguments(&self) -> Result<PgArguments, sqlx::error::BoxDynError> {
        let mut args = PgArguments::default();
        for p in &self.params {
            match p {
                SqlParam::Uuid(v) => args.add(v)?,
                SqlParam::UuidArray(v) => args.add(v)?,
                SqlParam::Text(v) => args.add(v)?,
                SqlParam::TextArray(v) => args.add(v)?,
                SqlParam::Timestamp(v) => args.add(v)?,
                SqlParam::TimestampArray(v) => args.add(v)?,
                SqlParam::Inet(v) => args.add(v)?,
                SqlParam::InetArray(v) => args.add(v)?,
                SqlParam::Float(v) => args.add(v)?,
                SqlParam::BigInt(v) => args.add(v)?,
            }
        }
        Ok(args)
    }
}

/// The first page of events matching `doc` in case `case_id`.
pub fn compile(
    doc: &FilterDocument,
    case_id: Uuid,
    ctx: &ResolveCtx,
) -> Result<CompiledQuery, FilterError> {
    compile_page(doc, case_id, ctx, None)
}

/// The page after `after` (keyset pagination on `(ts, id)`; no OFFSET).
pub fn compile_page(
    doc: &FilterDocument,
    case_id: Uuid,
    ctx: &ResolveCtx,
    after: Option<&Keyset>,
) -> Result<CompiledQuery, FilterError> {
    let mut b = Builder::new(doc, case_id, ctx)?;
    if let Some(k) = after {
        let ts = b.bind(SqlParam::Timestamp(k.ts));
        let id = b.bind(SqlParam::BigInt(k.id));
        let cmp = match doc.sort {
            Sort::TsAsc => ">",
            Sort::TsDesc => "<",
        };
        b.sql
            .push_str(&format!(" AND (e.ts, e.id) {cmp} ({ts}, {id})"));
    }
    let dir = match doc.sort {
        Sort::TsAsc => "ASC",
        Sort::TsDesc => "DESC",
    };
    let limit = b.bind(SqlParam::BigInt(i64::from(doc.limit) + 1));
    b.sql
        .push_str(&format!(" ORDER BY e.ts {dir}, e.id {dir} LIMIT {limit}"));
    let where_clause = std::mem::take(&mut b.sql);
    Ok(CompiledQuery {
        sql: format!("SELECT {EVENT_COLUMNS} FROM {EVENT_FROM} WHERE {where_clause}"),
        params: b.params,
        page_size: doc.limit,
        range: b.range,
    })
}

/// `SELECT count(*)` of the events matching `doc` (ignores sort and limit).
pub fn compile_count(
    doc: &FilterDocument,
    case_id: Uuid,
    ctx: &ResolveCtx,
) -> Result<CompiledQuery, FilterError> {
    let b = Builder::new(doc, case_id, ctx)?;
    Ok(CompiledQuery {
        sql: format!("SELECT count(*) FROM events e WHERE {}", b.sql),
        params: b.params,
        page_size: doc.limit,
        range: b.range,
    })
}

/// `SELECT min(e.ts), max(e.ts)` of the events matching `doc` (ignores sort and limit).
pub fn compile_bounds(
    doc: &FilterDocument,
    case_id: Uuid,
    ctx: &ResolveCtx,
) -> Result<CompiledQuery, FilterError> {
    let b = Builder::new(doc, case_id, ctx)?;
    Ok(CompiledQuery {
        sql: format!("SELECT min(e.ts), max(e.ts) FROM events e WHERE {}", b.sql),
        params: b.params,
        page_size: doc.limit,
        range: b.range,
    })
}

/// Event counts per time bucket of the events matching `doc` within `from ..= to`:
/// rows `(start timestamptz, count bigint)` in time order, one per non-empty bucket, where
/// buckets are `width_seconds` wide and aligned on `origin` (PostgreSQL's `date_bin`).
///
/// A document with only a time range sums the stored per-minute and per-hour counts
/// where they answer exactly (see [`super::rollup`]); any condition counts the matching
/// events one by one.
pub fn compile_histogram(
    doc: &FilterDocument,
    case_id: Uuid,
    ctx: &ResolveCtx,
    origin: DateTime<Utc>,
    width_seconds: i64,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
) -> Result<CompiledQuery, FilterError> {
    let mut b = Builder::new(doc, case_id, ctx)?;
    if doc.condition.is_none() {
        let lo = b.range.from.map_or(from, |f| f.max(from));
        let hi = b.range.to.map_or(to, |t| t.min(to));
        if let Some(cover) = super::rollup::cover(lo, hi, origin, width_seconds) {
            return Ok(compile_rollup_histogram(
                &cover,
                case_id,
                origin,
                width_seconds,
                doc.limit,
                b.range,
            ));
        }
    }
    let from = b.bind(SqlParam::Timestamp(from));
    let to = b.bind(SqlParam::Timestamp(to));
    let width = b.bind(SqlParam::Text(format!("{width_seconds} seconds")));
    let origin = b.bind(SqlParam::Timestamp(origin));
    Ok(CompiledQuery {
        sql: format!(
            "SELECT date_bin({width}::interval, e.ts, {origin}) AS start, count(*) AS count \
             FROM events e WHERE {} AND e.ts >= {from} AND e.ts <= {to} GROUP BY 1 ORDER BY 1",
            b.sql
        ),
        params: b.params,
        page_size: doc.limit,
        range: b.range,
    })
}

/// The histogram from the pieces of `cover`: hour cells and minute cells over their lists
/// of half-open intervals, and the events of each raw interval (at most the two partial
/// minutes at the range's ends), binned like the event query.
///
/// Raw intervals are bound as scalars, one branch each: over an array the planner cannot
/// see that they are narrow and may scan the whole case.
fn compile_rollup_histogram(
    cover: &super::rollup::Cover,
    case_id: Uuid,
    origin: DateTime<Utc>,
    width_seconds: i64,
    page_size: u32,
    range: ResolvedRange,
) -> CompiledQuery {
    let mut b = Builder {
        sql: String::new(),
        params: Vec::new(),
        range,
    };
    let case = b.bind(SqlParam::Uuid(case_id));
    let width = b.bind(SqlParam::Text(format!("{width_seconds} seconds")));
    let origin = b.bind(SqlParam::Timestamp(origin));
    let mut branches = Vec::new();
    for (list, table, cell) in [
        (&cover.hours, "event_counts_hour", "hour"),
        (&cover.minutes, "event_counts_minute", "minute"),
    ] {
        if list.is_empty() {
            continue;
        }
        let lo = b.bind(SqlParam::TimestampArray(list.iter().map(|i| i.0).collect()));
        let hi = b.bind(SqlParam::TimestampArray(list.iter().map(|i| i.1).collect()));
        branches.push(format!(
            "SELECT c.{cell} AS t, c.n FROM unnest({lo}::timestamptz[], {hi}::timestamptz[]) \
             AS r(lo, hi) JOIN {table} c ON c.case_id = {case} AND c.{cell} >= r.lo \
             AND c.{cell} < r.hi"
        ));
    }
    for &(from, to) in &cover.raw {
        let lo = b.bind(SqlParam::Timestamp(from));
        let hi = b.bind(SqlParam::Timestamp(to));
        branches.push(format!(
            "SELECT e.ts AS t, 1::bigint AS n FROM events e \
             WHERE e.case_id = {case} AND e.ts >= {lo} AND e.ts < {hi}"
        ));
    }
    if branches.is_empty() {
        branches.push("SELECT NULL::timestamptz AS t, 0::bigint AS n WHERE false".into());
    }
    CompiledQuery {
        sql: format!(
            "SELECT date_bin({width}::interval, x.t, {origin}) AS start, sum(x.n)::bigint AS count \
             FROM ({}) x GROUP BY 1 ORDER BY 1",
            branches.join(" UNION ALL ")
        ),
        params: b.params,
        page_size,
        range: b.range,
    }
}

struct Builder {
    sql: String,
    params: Vec<SqlParam>,
    range: ResolvedRange,
}

impl Builder {
    /// The WHERE clause: case scope, time range, condition tree.
    fn new(doc: &FilterDocument, case_id: Uuid, ctx: &ResolveCtx) -> Result<Self, FilterError> {
        doc.validate()?;
        let mut b = Builder {
            sql: String::with_capacity(256),
            params: Vec::new(),
            range: ResolvedRange::default(),
        };
        let case = b.bind(SqlParam::Uuid(case_id));
        b.sql.push_str(&format!("e.case_id = {case}"));
        if let Some(time) = &doc.time {
            b.range = time
                .resolve(ctx)
                .map_err(|m| FilterError::new("$.time", FilterErrorKind::BadTime(m)))?;
            if let Some(from) = b.range.from {
                let p = b.bind(SqlParam::Timestamp(from));
                b.sql.push_str(&format!(" AND e.ts >= {p}"));
            }
            if let Some(to) = b.range.to {
                let p = b.bind(SqlParam::Timestamp(to));
                b.sql.push_str(&format!(" AND e.ts <= {p}"));
            }
        }
        if let Some(node) = &doc.condition {
            b.sql.push_str(" AND ");
            b.node(node, "$.where", false, ctx)?;
        }
        Ok(b)
    }

    fn bind(&mut self, p: SqlParam) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn node(
        &mut self,
        node: &Node,
        path: &str,
        negated: bool,
        ctx: &ResolveCtx,
    ) -> Result<(), FilterError> {
        match node {
            Node::All(children) | Node::Any(children) => {
                let (key, is_and) = match node {
                    Node::All(_) => ("all", true),
                    _ => ("any", false),
                };
                // De Morgan: under a negation AND becomes OR and vice versa.
                let joiner = if is_and != negated { " AND " } else { " OR " };
                self.sql.push('(');
                for (i, child) in children.iter().enumerate() {
                    if i > 0 {
                        self.sql.push_str(joiner);
                    }
                    self.node(child, &format!("{path}.{key}[{i}]"), negated, ctx)?;
                }
                self.sql.push(')');
                Ok(())
            }
            Node::Not(child) => self.node(child, &format!("{path}.not"), !negated, ctx),
            Node::Leaf(leaf) => {
                let Checked {
                    pred,
                    negated: leaf_negated,
                } = check_leaf(leaf, path)?;
                let predicate = self.pred(&pred, path, ctx)?;
                if negated != leaf_negated {
                    self.sql
                        .push_str(&format!("NOT COALESCE(({predicate}), false)"));
                } else {
                    self.sql.push_str(&format!("({predicate})"));
                }
                Ok(())
            }
        }
    }

    /// The positive form of a predicate.
    fn pred(&mut self, pred: &Pred, path: &str, ctx: &ResolveCtx) -> Result<String, FilterError> {
        Ok(match pred {
            Pred::Time(cmp, point) => {
                let t = point.resolve(ctx.tz).map_err(|m| {
                    FilterError::new(format!("{path}.value"), FilterErrorKind::BadTime(m))
                })?;
                let p = self.bind(SqlParam::Timestamp(t));
                format!("e.ts {} {p}", cmp.sql())
            }
            Pred::TextEq(col, values) => self.text_eq(col, values),
            Pred::TextLike(col, pattern) => {
                let p = self.bind(SqlParam::Text(pattern.clone()));
                format!("{col} ILIKE {p}")
            }
            Pred::NotNull(col) => format!("{col} IS NOT NULL"),
            Pred::IpEq(col, ips) => {
                if let [one] = ips.as_slice() {
                    let p = self.bind(SqlParam::Inet(*one));
                    format!("{col} = {p}")
                } else {
                    let p = self.bind(SqlParam::InetArray(ips.clone()));
                    format!("{col} = ANY({p})")
                }
            }
            Pred::IpIn(col, net) => {
                let p = self.bind(SqlParam::Inet(*net));
                format!("{col} <<= {p}")
            }
            Pred::TagAny(tags) => {
                let p = self.bind(SqlParam::TextArray(tags.clone()));
                format!("e.tags && {p}")
            }
            Pred::TagExists => "cardinality(e.tags) > 0".into(),
            Pred::LabelAny(labels) => {
                let p = self.bind(SqlParam::TextArray(labels.clone()));
                format!(
                    "EXISTS (SELECT 1 FROM event_labels l WHERE l.event_id = e.id \
                     AND l.label = ANY({p}))"
                )
            }
            Pred::LabelExists => {
                "EXISTS (SELECT 1 FROM event_labels l WHERE l.event_id = e.id)".into()
            }
            Pred::RefEq(kind, refs) => {
                let (col, table, name) = ref_columns(*kind);
                let mut parts = Vec::new();
                if !refs.ids.is_empty() {
                    let p = self.bind(SqlParam::UuidArray(refs.ids.clone()));
                    parts.push(format!("{col} = ANY({p})"));
                }
                if !refs.names.is_empty() {
                    let p = self.bind(SqlParam::TextArray(refs.names.clone()));
                    parts.push(format!(
                        "{col} IN (SELECT r.id FROM {table} r WHERE r.case_id = $1 \
                         AND lower(r.{name}) IN (SELECT lower(x) FROM unnest({p}::text[]) x))"
                    ));
                }
                parts.join(" OR ")
            }
            Pred::RefLike(kind, pattern) => {
                let (col, table, name) = ref_columns(*kind);
                let p = self.bind(SqlParam::Text(pattern.clone()));
                format!(
                    "{col} IN (SELECT r.id FROM {table} r WHERE r.case_id = $1 \
                     AND r.{name} ILIKE {p})"
                )
            }
            Pred::AttrEq(key, values) => {
                let text = self.attr(key, "->>", "#>>");
                if let [one] = values.as_slice() {
                    let p = self.bind(SqlParam::Text(one.clone()));
                    format!("{text} = {p}")
                } else {
                    let p = self.bind(SqlParam::TextArray(values.clone()));
                    format!("{text} = ANY({p})")
                }
            }
            Pred::AttrLike(key, pattern) => {
                let text = self.attr(key, "->>", "#>>");
                let p = self.bind(SqlParam::Text(pattern.clone()));
                format!("{text} ILIKE {p}")
            }
            Pred::AttrExists(key) => {
                let value = self.attr(key, "->", "#>");
                format!("{value} IS NOT NULL")
            }
            Pred::AttrNum(key, cmp, n) => {
                let value = self.attr(key, "->", "#>");
                let p = self.bind(SqlParam::Float(*n));
                // numeric, not float8: a huge number in attacker-supplied attributes must
                // not make the cast (and so the query) fail.
                format!(
                    "(CASE WHEN jsonb_typeof({value}) = 'number' \
                     THEN ({value})::numeric END) {} {p}::numeric",
                    cmp.sql()
                )
            }
        })
    }

    /// The attribute `key` (`op`: `->` for jsonb, `->>` for text). A dotted key also
    /// reaches into nested objects (`Event.EventData.LogonType`, how the pipeline keeps an
    /// EVTX record): the top-level key of that exact name first, else the path.
    fn attr(&mut self, key: &str, op: &str, path_op: &str) -> String {
        let k = self.bind(SqlParam::Text(key.to_owned()));
        if !key.contains('.') {
            return format!("(e.attributes {op} {k})");
        }
        let path = self.bind(SqlParam::TextArray(
            key.split('.').map(str::to_owned).collect(),
        ));
        format!("COALESCE(e.attributes {op} {k}, e.attributes {path_op} {path}::text[])")
    }

    fn text_eq(&mut self, col: &str, values: &[String]) -> String {
        if let [one] = values {
            let p = self.bind(SqlParam::Text(one.clone()));
            format!("{col} = {p}")
        } else {
            let p = self.bind(SqlParam::TextArray(values.to_vec()));
            format!("{col} = ANY({p})")
        }
    }
}

/// Event column, lookup table and its name column of a reference field.
fn ref_columns(kind: RefKind) -> (&'static str, &'static str, &'static str) {
    match kind {
        RefKind::Device => ("e.device_id", "devices", "name"),
        RefKind::Identity => ("e.identity_id", "identities", "value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ResolveCtx {
        ResolveCtx::utc("2024-06-01T12:00:00Z".parse().unwrap())
    }

    #[test]
    fn histograms_of_time_ranges_read_the_stored_counts_and_conditions_count_events() {
        let hist = |doc: &str, origin: &str, width: i64| {
            let doc = FilterDocument::parse(doc.as_bytes()).unwrap();
            let (from, to) = (
                "2024-03-01T10:00:30Z".parse().unwrap(),
                "2024-03-02T10:00:00Z".parse().unwrap(),
            );
            compile_histogram(
                &doc,
                Uuid::nil(),
                &ctx(),
                origin.parse().unwrap(),
                width,
                (from, to),
            )
            .unwrap()
            .sql
        };
        let monday = "2001-01-01T00:00:00Z";
        for (doc, origin, width, counts) in [
            ("{}", monday, 900, true),
            (
                r#"{"time": {"from": "2024-03-01T12:00:00Z"}}"#,
                monday,
                3600,
                true,
            ),
            // Kolkata: midnight at 18:30 UTC
            ("{}", "2000-12-31T18:30:00Z", 86_400, true),
            // 30 s buckets and an origin inside a minute cannot be summed from minutes
            ("{}", monday, 30, false),
            ("{}", "2000-12-31T23:40:28Z", 3600, false),
            (
                r#"{"where": {"field": "action", "op": "eq", "value": "logon"}}"#,
                monday,
                900,
                false,
            ),
        ] {
            let sql = hist(doc, origin, width);
            assert_eq!(
                sql.contains("event_counts_"),
                counts,
                "{doc} {origin} {width}: {sql}"
            );
        }
    }

    #[test]
    fn user_strings_never_reach_the_sql_text() {
        let evil = "x'); DROP TABLE events; --";
        let doc = FilterDocument::parse(
            format!(
                r#"{{"where": {{"any": [
                    {{"field": "message", "op": "contains", "value": "{evil}"}},
                    {{"field": "attr.{evil}", "op": "eq", "value": "{evil}"}},
                    {{"field": "identity", "op": "in", "value": ["{evil}"]}}]}}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let q = compile(&doc, Uuid::nil(), &ctx()).unwrap();
        assert!(!q.sql.contains("DROP"), "{}", q.sql);
        assert!(q.params.contains(&SqlParam::Text(evil.into())));
    }

    #[test]
    fn not_is_pushed_to_the_leaves_and_negated_leaves_are_null_safe() {
        let doc = FilterDocument::parse(
            br#"{"where": {"not": {"all": [
                {"field": "action", "op": "eq", "value": "logon"},
                {"field": "outcome", "op": "neq", "value": "success"}]}}}"#,
        )
        .unwrap();
        let q = compile(&doc, Uuid::nil(), &ctx()).unwrap();
        assert!(
            q.sql
                .contains("(NOT COALESCE((e.action = $2), false) OR (e.outcome = $3))"),
            "{}",
            q.sql
        );
    }

    #[test]
    fn pages_continue_after_the_keyset_in_sort_order() {
        let doc = FilterDocument {
            sort: Sort::TsDesc,
            limit: 10,
            ..Default::default()
        };
        let k = Keyset {
            ts: ctx().now,
            id: 42,
        };
        let q = compile_page(&doc, Uuid::nil(), &ctx(), Some(&k)).unwrap();
        assert!(q.sql.contains("(e.ts, e.id) < ($2, $3)"), "{}", q.sql);
        assert!(q.sql.ends_with("ORDER BY e.ts DESC, e.id DESC LIMIT $4"));
        assert_eq!(q.params[3], SqlParam::BigInt(11));
        assert!(!q.sql.contains("OFFSET"));
    }
}
