//! The local AWS emulator for the `ai_*` tests: `moto_server` from the workspace's
//! `.venv` (`make venv`) on a free loopback port, killed when dropped, and the three
//! DynamoDB tables of filter-ai created in it.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use chrono_runtime::ai::store::TableNames;

/// A running moto server.
#[derive(Debug)]
pub struct Moto(chrono_tests::moto::Moto);

impl Moto {
    /// Starts moto and waits until it answers.
    pub async fn start() -> Moto {
        Moto(chrono_tests::moto::Moto::start().expect("moto"))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    /// A DynamoDB client for the emulator.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(self.endpoint())
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }
}

async fn table(client: &aws_sdk_dynamodb::Client, name: &str, pk: &str, sk: Option<&str>) {
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(pk)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(pk)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        );
    if let Some(sk) = sk {
        req = req
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(sk)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(sk)
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            );
    }
    req.send().await.unwrap();
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// Creates the three tables (keys as the data stack defines them).
pub async fn create_tables(client: &aws_sdk_dynamodb::Client) -> TableNames {
    let names = TableNames {
        sessions: "chrono-test-sessions".into(),
        intent_cache: "chrono-test-intent-cache".into(),
        conversations: "chrono-test-conversations".into(),
    };
    table(client, &names.sessions, "session_id", None).await;
    table(client, &names.intent_cache, "cache_key", None).await;
    table(
        client,
        &names.conversations,
        "session_id",
        Some("message_at"),
    )
    .await;
    names
}
