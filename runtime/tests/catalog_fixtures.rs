//! The event catalog against real evidence: the pipeline's own split → parse → upload of the
//! files in `runtime/testdata/evidence/` (Security and Sysmon EVTX from real machines; the
//! auth.log, RFC 5424 syslog and CloudTrail files written for our tests).
//!
//! * Every catalog entry that names a fixture is found in it, with the entry's title and
//!   category, and every event the pipeline titled belongs to an entry naming its file
//!   (both ways, so the `fixture` fields cannot drift from the evidence).
//! * Every event whose kind the catalog knows got its title and category.
//! * The catalog's filter condition for an entry selects exactly the events the pipeline
//!   titled with it, and the translator asked the entry's title finds them.
//! * The timeline API returns `title` and `category` and filters on `category`; events
//!   stored without a title get the catalog's where their kind is unambiguous.
//!
//! There is no System-log EVTX among the real fixtures: the System entries of the catalog
//! are covered by none of this (see `runtime/catalog/windows-system.yaml`).

mod ai_support;
mod common;

use std::collections::{BTreeMap, BTreeSet};

use ai_support::{rows, seed};
use chrono_runtime::ai::translate::{Translation, translate};
use chrono_runtime::filter::{FilterDocument, ResolveCtx};
use chrono_runtime::knowledge::{self, EventType, Origin};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// (title, category, source, event_code, evidence file) → events.
async fn titled(
    db: &PgPool,
    case: Uuid,
) -> Vec<(String, String, String, Option<String>, String, i64)> {
    sqlx::query_as(
        "SELECT e.title, e.category, e.source, e.event_code, ev.file_name, count(*) \
         FROM events e JOIN evidence ev ON ev.id = e.evidence_id \
         WHERE e.case_id = $1 AND e.title IS NOT NULL GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 5",
    )
    .bind(case)
    .fetch_all(db)
    .await
    .unwrap()
}

fn entry_of<'a>(title: &str, source: &str, code: Option<&str>) -> Option<&'a EventType> {
    let mut found = knowledge::catalog().event_types.iter().filter(|t| {
        t.title == title && t.sources().contains(&source) && t.code().as_deref() == code
    });
    let one = found.next();
    assert!(
        found.next().is_none(),
        "{title} {source} {code:?} is ambiguous"
    );
    one
}

fn doc_of(entry: &EventType) -> FilterDocument {
    FilterDocument {
        condition: knowledge::condition(&[entry]),
        ..FilterDocument::default()
    }
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn catalog_entries_match_the_real_fixtures_both_ways(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = ai_support::pool(opts).await;
    let cases = seed(&db).await;
    let catalog = knowledge::catalog();
    let ctx = ResolveCtx::utc("2026-12-02T00:00:00Z".parse().unwrap());

    // events → entries: every titled event belongs to an entry naming its file
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut events_per_entry: BTreeMap<String, i64> = BTreeMap::new();
    for (title, category, source, code, file, n) in titled(&db, cases.case).await {
        let entry = entry_of(&title, &source, code.as_deref())
            .unwrap_or_else(|| panic!("{title} ({source} {code:?}) is in no catalog entry"));
        assert_eq!(category, entry.category.as_str(), "{title}");
        assert!(
            entry.fixtures.contains(&file),
            "{} holds `{title}` but the entry ({}) names only {:?}",
            file,
            entry.file,
            entry.fixtures
        );
        seen.entry(entry.key()).or_default().insert(file);
        *events_per_entry.entry(entry.key()).or_default() += n;
    }
    // entries → events: every entry naming a fixture is found in every file it names
    let mut covered = 0;
    for t in catalog
        .event_types
        .iter()
        .filter(|t| !t.fixtures.is_empty())
    {
        let files: BTreeSet<String> = t.fixtures.iter().cloned().collect();
        assert_eq!(seen.get(&t.key()), Some(&files), "{}: {}", t.key(), t.title);
        // the entry's filter condition selects exactly the events titled with it (and with
        // the entries a filter cannot tell from it: two sshd shapes share their marker)
        let condition = knowledge::condition(&[t]);
        let twins: i64 = catalog
            .event_types
            .iter()
            .filter(|o| knowledge::condition(&[o]) == condition)
            .filter_map(|o| events_per_entry.get(&o.key()))
            .sum();
        let selected = rows(&db, cases.case, &doc_of(t), &ctx).await;
        assert_eq!(
            selected.count,
            twins,
            "{}: the catalog's condition and the pipeline's titles disagree",
            t.key()
        );
        covered += 1;
    }
    println!(
        "catalog entries found in the real fixtures: {covered} of {} (the others have no fixture)",
        catalog.event_types.len()
    );
    assert!(covered >= 50, "only {covered} entries covered");

    // no event of a kind the catalog knows is left without a title
    let untitled: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT data_type, source, event_code, count(*) FROM events \
         WHERE case_id = $1 AND title IS NULL GROUP BY 1, 2, 3",
    )
    .bind(cases.case)
    .fetch_all(&db)
    .await
    .unwrap();
    for (data_type, source, code, n) in untitled {
        assert!(
            catalog
                .stored(&data_type, &source, code.as_deref())
                .is_none(),
            "{n} {data_type} {source} {code:?} events have no title"
        );
    }
}

/// Asking for an event type by its catalog title finds its events (the translator matches
/// titles), for every entry the real fixtures hold.
#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_translator_finds_each_fixture_entry_by_its_title(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = ai_support::pool(opts).await;
    let cases = seed(&db).await;
    let ctx = ResolveCtx::utc("2026-12-02T00:00:00Z".parse().unwrap());
    let mut exact = 0;
    let mut wider = Vec::new();
    let entries: Vec<&EventType> = knowledge::catalog()
        .event_types
        .iter()
        .filter(|t| !t.fixtures.is_empty())
        .collect();
    for t in &entries {
        let want = rows(&db, cases.case, &doc_of(t), &ctx).await;
        let Translation::Filter(doc) = translate(&t.title, &ctx) else {
            panic!("{:?}: no filter", t.title);
        };
        let got = rows(&db, cases.case, &doc, &ctx).await;
        assert!(
            want.first.is_subset(&got.first) && got.count >= want.count,
            "{:?} ({}): the translator's filter misses events of the entry: {}",
            t.title,
            t.key(),
            serde_json::to_string(&doc).unwrap()
        );
        if got == want {
            exact += 1;
        } else {
            wider.push(format!(
                "{:?}: {} events for {}",
                t.title, got.count, want.count
            ));
        }
    }
    println!(
        "titles asked: {} entries, {exact} found exactly, the rest with more events:\n{}",
        entries.len(),
        wider.join("\n")
    );
    assert!(
        exact * 10 >= entries.len() * 8,
        "{exact} of {}",
        entries.len()
    );
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn the_timeline_api_returns_titles_and_filters_on_category(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let db = ai_support::pool(opts).await;
    let cases = seed(&db).await;
    let app = common::app(db.clone());
    let token = common::token("u-analyst", &["analyst"], &[cases.case.to_string()]);
    let search = format!("/api/v1/cases/{}/events/search", cases.case);

    let (s, page) = common::call(
        &app,
        "POST",
        &search,
        Some(&token),
        Some(
            json!({"where": {"field": "category", "op": "eq", "value": "account_management"},
                    "limit": 1000}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let titles: BTreeSet<&str> = events
        .iter()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    for expected in [
        "A user account was created",
        "A member was added to a security-enabled local group",
        "A security-enabled local group was changed",
        "The name of an account was changed",
        "Local user account created",
        "IAM user created",
        "IAM access key created",
    ] {
        assert!(
            titles.contains(expected),
            "{expected} missing from {titles:?}"
        );
    }
    assert!(events.iter().all(|e| e["category"] == "account_management"));
    assert_eq!(
        events.len(),
        97,
        "the account management events of the fixtures"
    );

    // an unknown category is the filter's 400 with the path
    let (s, e) = common::call(
        &app,
        "POST",
        &search,
        Some(&token),
        Some(json!({"where": {"field": "category", "op": "eq", "value": "logons"}})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["path"].as_str()),
        (400, Some("$.where.value"))
    );

    // an event stored before the pipeline wrote titles gets the catalog's
    let evidence = common::insert_evidence(&db, cases.case).await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO events (case_id, evidence_id, ts, timestamp_desc, data_type, source, parser, \
         event_code, record_ref, dedup_key) VALUES ($1, $2, '2016-01-01T00:00:00Z', 'Event Recorded', \
         'windows:evtx:record', 'Security', 'winevtx', '4719', 'old-1', 'old-1') RETURNING id",
    )
    .bind(cases.case)
    .bind(evidence)
    .fetch_one(&db)
    .await
    .unwrap();
    let (s, one) = common::call(
        &app,
        "GET",
        &format!("/api/v1/cases/{}/events/{id}", cases.case),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["title"], "System audit policy was changed");
    assert_eq!(one["category"], "policy_change");
    // … and one whose kind the catalog does not know has none
    let (_, page) = common::call(
        &app,
        "POST",
        &search,
        Some(&token),
        Some(json!({"where": {"field": "source", "op": "eq", "value": "CRON"}})),
    )
    .await;
    assert!(page["events"][0]["title"].is_null(), "{page}");

    // the OpenAPI document describes the fields
    let (_, api) = common::call(&app, "GET", "/api/v1/openapi.json", None, None).await;
    let event = &api["components"]["schemas"]["Event"]["properties"];
    assert!(
        event["title"].is_object() && event["category"].is_object(),
        "{event}"
    );
}

#[test]
fn catalog_sizes_per_source() {
    let c = knowledge::catalog();
    let mut per_origin: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &c.event_types {
        let kind = match &t.origin {
            Origin::Windows { channel, .. } if channel == "Security" => "Windows Security log",
            Origin::Windows { channel, .. } if channel.contains("Sysmon") => "Sysmon",
            Origin::Windows { .. } => "Windows System and operational logs",
            Origin::Linux { .. } => "Linux auth lines",
            Origin::CloudTrail { .. } => "CloudTrail event names",
        };
        *per_origin.entry(kind).or_default() += 1;
    }
    for (kind, n) in &per_origin {
        println!("catalog: {n} {kind}");
    }
    println!(
        "catalog: {} logon types, {} well-known SIDs and accounts, {} failed-logon status codes, \
         {} categories, {} actions, {} families, {} audit subcategories",
        c.logon_types.len(),
        c.sids.len(),
        c.status_codes.len(),
        c.categories.len(),
        c.actions.len(),
        c.families.len(),
        c.subcategories.len()
    );
    for f in &c.files {
        println!(
            "catalog file {}: {} entries, read {}, {} sources",
            f.file,
            f.entries,
            f.read,
            f.sources.len()
        );
    }
    assert_eq!(per_origin.len(), 5);
}
