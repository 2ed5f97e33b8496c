//! The published JSON Schema of the filter document (`runtime/schema/filter.schema.json`)
//! is generated from the Rust types and must be fresh. Regenerate it with
//! `CHRONO_UPDATE_SCHEMA=1 cargo test -p chrono-runtime --test filter_schema`.

use std::path::Path;

#[test]
fn published_filter_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/filter.schema.json");
    let generated = chrono_runtime::filter::json_schema();
    if std::env::var_os("CHRONO_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "runtime/schema/filter.schema.json is stale; regenerate it with \
         CHRONO_UPDATE_SCHEMA=1 cargo test -p chrono-runtime --test filter_schema"
    );
}

#[test]
fn schema_lists_every_field_and_operator() {
    let schema: serde_json::Value =
        serde_json::from_str(&chrono_runtime::filter::json_schema()).unwrap();
    let text = schema.to_string();
    for (name, _) in chrono_runtime::filter::Field::NAMED {
        assert!(
            text.contains(&format!("\"{name}\"")),
            "field {name} missing"
        );
    }
    for op in chrono_runtime::filter::Op::ALL {
        assert!(
            text.contains(&format!("\"{}\"", op.as_str())),
            "op {op:?} missing"
        );
    }
}
