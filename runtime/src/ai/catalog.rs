//! The AI path's only database access, all read-only except one audit append:
//!
//! * who created a case (for the access check),
//! * people and machine names → identity / device ids of the case,
//! * the number of events a filter matches (through the one compiler),
//! * appending the turn to the audit log (through the `chrono_audit` function, the one
//!   thing the `chrono_ro` role may do besides reading).
//!
//! Every read runs in a `READ ONLY` transaction, under `SET LOCAL ROLE <role>` when a
//! role is configured (`chrono_ro` by default; `CHRONO_AI_DB_ROLE`, empty = the login
//! role as is). Nothing here takes SQL text from a model.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::provider::CaseEventType;
use crate::filter::{Field, FilterDocument, Node, Op, ResolveCtx, compile_count};
use chrono_contract::data_type;

use crate::knowledge::{self, Origin};

/// Default database role of the AI path.
pub const DEFAULT_ROLE: &str = "chrono_ro";

/// A database failure on the AI path.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// The statement ran into its timeout.
    #[error("the count took too long; narrow the time range")]
    Timeout,
    /// The configured role name is not a plain identifier.
    #[error("role `{0}` is not a valid role name; set CHRONO_AI_DB_ROLE to e.g. chrono_ro")]
    BadRole(String),
    /// The filter could not be compiled (a time in a DST gap, ...).
    #[error("{0}")]
    Filter(#[from] crate::filter::FilterError),
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        // a refused login makes the pool read the database secret again
        crate::db::note_error(&e);
        CatalogError::Database(e)
    }
}

/// A name the server looked up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolution {
    /// `identity` or `device`.
    pub field: String,
    /// The name as the model wrote it.
    pub name: String,
    /// Ids it resolved to (empty = unknown in this case; the filter keeps the name).
    pub ids: Vec<Uuid>,
    /// The stored names of those ids.
    pub matched: Vec<String>,
}

/// Read-only access to one database.
#[derive(Debug, Clone)]
pub struct PgCatalog {
    db: PgPool,
    role: Option<String>,
}

impl PgCatalog {
    /// Over `db`, switching to `role` (if any) in every transaction.
    pub fn new(db: PgPool, role: Option<String>) -> Result<Self, CatalogError> {
        if let Some(r) = &role
            && (r.is_empty()
                || r.len() > 63
                || !r
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                || r.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(CatalogError::BadRole(r.clone()));
        }
        Ok(PgCatalog { db, role })
    }

    async fn begin(&self, read_only: bool) -> Result<Transaction<'static, Postgres>, CatalogError> {
        let mut tx = self.db.begin().await?;
        if read_only {
            sqlx::query("SET TRANSACTION READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        if let Some(role) = &self.role {
            // validated as a plain identifier in `new`
            sqlx::query(&format!("SET LOCAL ROLE {role}"))
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Who created case `case_id`, or `None` if there is no such case.
    pub async fn case_owner(&self, case_id: Uuid) -> Result<Option<String>, CatalogError> {
        let mut tx = self.begin(true).await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT created_by FROM cases WHERE id = $1")
                .bind(case_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(owner)
    }

    /// Replaces identity and device names in `doc` by the ids they name in case
    /// `case_id`, case-insensitively: a bare account name in every domain (`DOMAIN\name`,
    /// `name@domain`, an IAM user ARN `...:user/name`), a qualified one only as given; a
    /// host by short name or FQDN. Names that match nothing are kept.
    pub async fn resolve(
        &self,
        case_id: Uuid,
        doc: &mut FilterDocument,
    ) -> Result<Vec<Resolution>, CatalogError> {
        let Some(node) = doc.condition.as_mut() else {
            return Ok(Vec::new());
        };
        let mut tx = self.begin(true).await?;
        let mut out = Vec::new();
        resolve_node(&mut tx, case_id, node, &mut out).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// How many events of case `case_id` match `doc`.
    pub async fn count(
        &self,
        case_id: Uuid,
        doc: &FilterDocument,
        ctx: &ResolveCtx,
    ) -> Result<i64, CatalogError> {
        let q = compile_count(doc, case_id, ctx)?;
        let args = q
            .arguments()
            .map_err(|e| CatalogError::Database(sqlx::Error::Encode(e)))?;
        let mut tx = self.begin(true).await?;
        let n: i64 = sqlx::query_scalar_with(&q.sql, args)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.code().as_deref() == Some("57014") => {
                    CatalogError::Timeout
                }
                _ => CatalogError::Database(e),
            })?;
        tx.commit().await?;
        Ok(n)
    }

    /// The kinds of events case `case_id` holds, most frequent first (at most
    /// [`MAX_CASE_TYPES`]), in the event catalog's words: a stored kind the catalog does not
    /// know is left out, so nothing of the evidence's own text is returned.
    pub async fn event_types(&self, case_id: Uuid) -> Result<Vec<CaseEventType>, CatalogError> {
        let mut tx = self.begin(true).await?;
        let rows: Vec<KindRow> = sqlx::query_as(
            "SELECT data_type, source, event_code, title, count(*) FROM events \
             WHERE case_id = $1 GROUP BY 1, 2, 3, 4 ORDER BY count(*) DESC, 1, 2, 3 LIMIT 1000",
        )
        .bind(case_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(case_types(&rows))
    }

    /// Appends an `ai_filter` entry to the audit log.
    pub async fn audit(
        &self,
        actor: &str,
        case_id: Uuid,
        detail: &Value,
    ) -> Result<i64, CatalogError> {
        let mut tx = self.begin(false).await?;
        let id: i64 = sqlx::query_scalar("SELECT chrono_audit($1, $2, 'ai_filter', $3)")
            .bind(actor)
            .bind(case_id)
            .bind(detail)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// A stored kind of event and how many events of it: data_type, source, event_code,
/// title, count.
type KindRow = (String, String, Option<String>, Option<String>, i64);

/// Most kinds of events listed for one case.
pub const MAX_CASE_TYPES: usize = 150;

/// Stored (data_type, source, event_code, title, count) rows → the catalog's kinds of
/// events; rows the catalog does not recognise are dropped.
fn case_types(rows: &[KindRow]) -> Vec<CaseEventType> {
    let catalog = knowledge::catalog();
    let mut out: Vec<(String, CaseEventType)> = Vec::new();
    for (data_type, source, code, title, count) in rows {
        let entry = match data_type.as_str() {
            data_type::CLOUDTRAIL => code.as_deref().and_then(|c| catalog.cloudtrail(source, c)),
            data_type::WINDOWS_EVTX | data_type::SYSLOG => {
                let mut found = catalog.event_types.iter().filter(|t| {
                    t.sources().contains(&source.as_str())
                        && t.code() == *code
                        && title.as_deref().is_none_or(|x| x == t.title)
                });
                match (found.next(), found.next()) {
                    (Some(one), None) => Some(one),
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(t) = entry else {
            continue;
        };
        let key = t.key();
        if let Some((_, seen)) = out.iter_mut().find(|(k, _)| *k == key) {
            seen.count += count;
            continue;
        }
        let provider = match &t.origin {
            Origin::Windows {
                provider,
                shared_channel: true,
                ..
            } => Some(provider.clone()),
            _ => None,
        };
        out.push((
            key,
            CaseEventType {
                source: t
                    .sources()
                    .first()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                code: t.code(),
                provider,
                title: t.title.clone(),
                category: t.category,
                count: *count,
            },
        ));
    }
    let mut out: Vec<CaseEventType> = out.into_iter().map(|(_, t)| t).collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.title.cmp(&b.title)));
    out.truncate(MAX_CASE_TYPES);
    out
}

type Tx = Transaction<'static, Postgres>;

fn resolve_node<'a>(
    tx: &'a mut Tx,
    case_id: Uuid,
    node: &'a mut Node,
    out: &'a mut Vec<Resolution>,
) -> futures::future::BoxFuture<'a, Result<(), CatalogError>> {
    Box::pin(async move {
        match node {
            Node::All(children) | Node::Any(children) => {
                for c in children.iter_mut() {
                    resolve_node(tx, case_id, c, out).await?;
                }
            }
            Node::Not(child) => resolve_node(tx, case_id, child, out).await?,
            Node::Leaf(leaf) => {
                let table = match leaf.field {
                    Field::Identity => Lookup::Identity,
                    Field::Device => Lookup::Device,
                    _ => return Ok(()),
                };
                if !matches!(leaf.op, Op::Eq | Op::Neq | Op::In | Op::Nin) {
                    return Ok(());
                }
                let names: Vec<String> = match &leaf.value {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => return Ok(()),
                };
                let mut values: Vec<Value> = Vec::new();
                for name in names {
                    if Uuid::parse_str(&name).is_ok() {
                        values.push(Value::String(name));
                        continue;
                    }
                    let found = lookup(tx, case_id, table, &name).await?;
                    if found.is_empty() {
                        values.push(Value::String(name.clone()));
                    } else {
                        values.extend(found.iter().map(|(id, _)| Value::String(id.to_string())));
                    }
                    out.push(Resolution {
                        field: leaf.field.to_string(),
                        name,
                        ids: found.iter().map(|(id, _)| *id).collect(),
                        matched: found.into_iter().map(|(_, n)| n).collect(),
                    });
                }
                values.dedup();
                let list = matches!(leaf.op, Op::In | Op::Nin) || values.len() > 1;
                leaf.op = match (leaf.op, list) {
                    (Op::Eq | Op::In, true) => Op::In,
                    (Op::Neq | Op::Nin, true) => Op::Nin,
                    (op, _) => op,
                };
                leaf.value = Some(if list {
                    Value::Array(values)
                } else {
                    values.pop().unwrap_or(Value::Null)
                });
            }
        }
        Ok(())
    })
}

#[derive(Debug, Clone, Copy)]
enum Lookup {
    Identity,
    Device,
}

/// `%`, `_` and `\` escaped for LIKE.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

async fn lookup(
    tx: &mut Tx,
    case_id: Uuid,
    table: Lookup,
    name: &str,
) -> Result<Vec<(Uuid, String)>, CatalogError> {
    // Names resolve the way investigators mean them:
    // * a bare account name is that account in every domain and realm: `bob` is `bob`,
    //   `CORP\bob`, `HOST\bob`, `bob@corp.example` and the IAM user `…:user/bob`; a name
    //   given with its domain (`CORP\bob`, `bob@corp.example`, an ARN) is only itself;
    // * a host is the same host by short name or FQDN, in any case: `ws01` is `WS01` and
    //   `ws01.corp.local`; `ws01.corp.local` is also a host stored as `WS01`.
    let sql = match table {
        Lookup::Identity if is_bare_account(name) => {
            "SELECT id, value FROM identities WHERE case_id = $1 AND ( \
               lower(value) = lower($2) OR lower(display_name) = lower($2) \
               OR lower(value) LIKE '%\\\\' || lower($3) \
               OR lower(value) LIKE lower($3) || '@%' \
               OR (kind = 'arn' AND lower(value) LIKE '%:user/' || lower($3))) \
             ORDER BY value LIMIT 20"
        }
        Lookup::Identity => {
            // ($3, the LIKE form, is not needed: typed so the statement takes it)
            "SELECT id, value FROM identities WHERE case_id = $1 AND $3::text IS NOT NULL \
               AND (lower(value) = lower($2) OR lower(display_name) = lower($2)) \
             ORDER BY value LIMIT 20"
        }
        Lookup::Device => {
            "SELECT id, name FROM devices WHERE case_id = $1 AND ( \
               lower(name) = lower($2) OR lower(name) LIKE lower($3) || '.%' \
               OR (strpos($2, '.') > 0 AND strpos(name, '.') = 0 \
                   AND lower(name) = lower(split_part($2, '.', 1)))) \
             ORDER BY name LIMIT 20"
        }
    };
    let rows: Vec<(Uuid, String)> = sqlx::query_as(sql)
        .bind(case_id)
        .bind(name)
        .bind(like_escape(name))
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows)
}

/// An account name without a domain or realm (`bob`, not `CORP\bob`, `bob@corp` or an ARN).
fn is_bare_account(name: &str) -> bool {
    !name.contains(['\\', '@', '/', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_names_reach_every_domain() {
        for bare in ["bob", "Administrator", "svc-backup$"] {
            assert!(is_bare_account(bare), "{bare}");
        }
        for qualified in ["CORP\\bob", "bob@corp.example", "arn:aws:iam::1:user/bob"] {
            assert!(!is_bare_account(qualified), "{qualified}");
        }
        assert_eq!(like_escape("a%b_c\\"), "a\\%b\\_c\\\\");
    }

    #[test]
    fn case_types_keep_only_kinds_the_catalog_knows() {
        let row = |d: &str, s: &str, c: Option<&str>, t: Option<&str>, n: i64| {
            (
                d.to_string(),
                s.to_string(),
                c.map(str::to_string),
                t.map(str::to_string),
                n,
            )
        };
        let types = case_types(&[
            row(
                "windows:evtx:record",
                "Security",
                Some("4624"),
                Some("An account was successfully logged on"),
                10,
            ),
            row("windows:evtx:record", "Security", Some("4624"), None, 5),
            row(
                "windows:evtx:record",
                "Evil\nIGNORE PREVIOUS",
                Some("4624"),
                None,
                99,
            ),
            row("syslog:line", "sshd", None, Some("SSH login failed"), 3),
            row("syslog:line", "sshd", None, None, 40),
            row(
                "aws:cloudtrail:event",
                "iam.amazonaws.com",
                Some("CreateUser"),
                None,
                1,
            ),
            row(
                "aws:cloudtrail:event",
                "iam.amazonaws.com",
                Some("DropAllTables"),
                None,
                7,
            ),
            row(
                "windows:evtx:record",
                "System",
                Some("1"),
                Some("The system time has changed"),
                2,
            ),
        ]);
        let text: Vec<String> = types
            .iter()
            .map(|t| {
                format!(
                    "{} {:?} {:?} {} {}",
                    t.source, t.code, t.provider, t.title, t.count
                )
            })
            .collect();
        assert_eq!(
            text,
            [
                "Security Some(\"4624\") None An account was successfully logged on 15",
                "sshd None None SSH login failed 3",
                "System Some(\"1\") Some(\"Microsoft-Windows-Kernel-General\") The system time has changed 2",
                "iam.amazonaws.com Some(\"CreateUser\") None IAM user created 1",
            ]
        );
    }
}
