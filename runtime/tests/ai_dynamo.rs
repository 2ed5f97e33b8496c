//! The DynamoDB parts against the moto server: sessions, the guard's intent cache (a
//! repeated question makes no guard call) and the conversation log, plus the audit log
//! entry in PostgreSQL.

mod ai_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ai_support::moto::{Moto, create_tables};
use ai_support::{analyst, pool, seed, service_with};
use chrono::Utc;
use chrono_runtime::ai::local::{LocalGuard, LocalTranslator};
use chrono_runtime::ai::provider::{GuardModel, Intent, ModelError};
use chrono_runtime::ai::store::{ChatStore, DynamoStore, Session, Turn, intent_key};
use chrono_runtime::ai::{ChatRequest, ReplyKind};
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// The local guard, counting its calls.
#[derive(Debug, Default)]
struct CountingGuard {
    calls: AtomicUsize,
}

impl GuardModel for CountingGuard {
    fn model_id(&self) -> &str {
        "counting-guard"
    }

    fn classify<'a>(&'a self, question: &'a str) -> BoxFuture<'a, Result<Intent, ModelError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        LocalGuard.classify(question)
    }
}

#[tokio::test]
async fn sessions_verdicts_and_turns_round_trip_and_expired_items_are_ignored() {
    let moto = Moto::start().await;
    let client = moto.dynamodb();
    let store = DynamoStore::new(client.clone(), create_tables(&client).await);
    let case_id = Uuid::now_v7();
    let now = Utc::now().timestamp();

    let live = Session {
        id: "s-live".into(),
        user: "u1".into(),
        case_id,
        tz: "Europe/Berlin".into(),
        recent: vec!["failed logons".into(), "only bob".into()],
        expires_at: now + 600,
    };
    store.put_session(&live).await.unwrap();
    assert_eq!(store.session("s-live").await.unwrap(), Some(live.clone()));
    let expired = Session {
        id: "s-old".into(),
        expires_at: now - 1,
        ..live.clone()
    };
    store.put_session(&expired).await.unwrap();
    assert_eq!(store.session("s-old").await.unwrap(), None);
    assert_eq!(store.session("s-missing").await.unwrap(), None);

    let key = intent_key("Failed logons?", "m1");
    assert_eq!(key, intent_key("failed   LOGONS", "m1"), "normalized");
    assert_ne!(
        key,
        intent_key("failed logons", "m2"),
        "model id is part of the key"
    );
    assert_eq!(store.cached_intent(&key).await.unwrap(), None);
    store.cache_intent(&key, Intent::Injection).await.unwrap();
    assert_eq!(
        store.cached_intent(&key).await.unwrap(),
        Some(Intent::Injection)
    );

    let t0: chrono::DateTime<Utc> = "2024-03-14T15:00:00Z".parse().unwrap();
    for (i, q) in ["first", "second"].iter().enumerate() {
        store
            .put_turn(&Turn {
                session_id: "s-live".into(),
                at: t0 + chrono::TimeDelta::seconds(i as i64),
                user: "u1".into(),
                case_id,
                question: q.to_string(),
                reply: json!({"kind": "filter", "n": i}),
            })
            .await
            .unwrap();
    }
    let turns = store.turns("s-live").await.unwrap();
    let questions: Vec<&str> = turns.iter().map(|t| t.question.as_str()).collect();
    assert_eq!(questions, ["first", "second"]);
    assert_eq!(turns[1].reply["n"], 1);
    assert!(store.turns("s-old").await.unwrap().is_empty());
}

#[sqlx::test(migrator = "chrono_runtime::db::MIGRATOR")]
async fn a_repeated_question_makes_no_guard_call(_: PgPoolOptions, opts: PgConnectOptions) {
    let db = pool(opts).await;
    let cases = seed(&db).await;
    let moto = Moto::start().await;
    let client = moto.dynamodb();
    let store = Arc::new(DynamoStore::new(
        client.clone(),
        create_tables(&client).await,
    ));
    let guard = Arc::new(CountingGuard::default());
    let service = service_with(
        db.clone(),
        guard.clone(),
        Arc::new(LocalTranslator),
        store.clone(),
        "2024-03-14T15:00:00Z".parse().unwrap(),
    );
    let user = analyst("u1", &[cases.case]);
    let ask = |q: &str, session: Option<String>| ChatRequest {
        case_id: cases.case,
        session_id: session,
        question: q.into(),
        tz: Some("Europe/Berlin".into()),
    };

    let first = service
        .handle(&user, ask("failed logons for bob", None))
        .await
        .unwrap();
    assert_eq!(first.kind, ReplyKind::Filter);
    assert_eq!(guard.calls.load(Ordering::SeqCst), 1);

    // Same question (differently typed), same session: answered from the cache.
    let second = service
        .handle(
            &user,
            ask("  Failed logons for BOB? ", Some(first.session_id.clone())),
        )
        .await
        .unwrap();
    assert_eq!(
        guard.calls.load(Ordering::SeqCst),
        1,
        "cache hit, no guard call"
    );
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(second.count, first.count);

    // A new question asks the guard again.
    service
        .handle(&user, ask("process starts", Some(first.session_id.clone())))
        .await
        .unwrap();
    assert_eq!(guard.calls.load(Ordering::SeqCst), 2);

    // The session remembers the questions, the conversation log holds every turn.
    let session = store.session(&first.session_id).await.unwrap().unwrap();
    assert_eq!(session.user, "u1");
    assert_eq!(session.case_id, cases.case);
    assert_eq!(session.recent.len(), 3);
    let turns = store.turns(&first.session_id).await.unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[2].question, "process starts");
    assert_eq!(turns[0].reply["kind"], "filter");

    // Someone else presenting this session id gets a session of their own.
    let other = analyst("u2", &[cases.case]);
    let theirs = service
        .handle(&other, ask("logoffs", Some(first.session_id.clone())))
        .await
        .unwrap();
    assert_ne!(theirs.session_id, first.session_id);

    // And every turn is in the audit log.
    let audited: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, detail->>'question' FROM audit_log \
         WHERE action = 'ai_filter' AND case_id = $1 ORDER BY id",
    )
    .bind(cases.case)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(audited.len(), 4);
    assert_eq!(audited[0], ("u1".into(), "failed logons for bob".into()));
    assert_eq!(audited[3].0, "u2");
}
