//! Property tests: arbitrary bytes into every parser (and through detection, containers
//! and EVTX chunks) never panic, and every record seen is accounted for.

use chrono::{TimeZone, Utc};
use chrono_runtime::pipeline::formats::{self, MemberContext, evtx};
use chrono_runtime::pipeline::{CountSink, Format, ParseOptions, SplitOptions, parse_evidence};
use proptest::prelude::*;
use std::io::Cursor;

const TEXT_FORMATS: [Format; 6] = [
    Format::Syslog,
    Format::TimesketchCsv,
    Format::TimesketchJsonl,
    Format::PlasoJsonLine,
    Format::CloudTrail,
    Format::CloudTrailJsonl,
];

fn ctx() -> MemberContext {
    MemberContext {
        member: "fuzz".into(),
        evidence_id: None,
        reference_time: Some(Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap()),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/evidence")
            .join(name),
    )
    .unwrap()
}

/// Bytes that look a little like each format, so the fuzzing gets past the first check.
fn texty() -> impl Strategy<Value = Vec<u8>> {
    let seeds = prop::sample::select(vec![
        &b"<34>1 2024-01-01T00:00:00Z h a 1 - - "[..],
        b"Jan  1 00:00:00 host sshd[1]: Accepted password for ",
        b"message,datetime,timestamp,timestamp_desc\n",
        b"{\"message\": \"x\", \"datetime\": \"",
        b"{\"Records\":[{\"eventTime\":\"2024-01-01T00:00:00Z\",",
        b"{\"__container_type__\": \"event\", \"date_time\": {",
        b"",
    ]);
    (seeds, prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(seed, tail)| {
        let mut v = seed.to_vec();
        v.extend(tail);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn text_parsers_never_panic_and_account_for_every_record(bytes in texty()) {
        for format in TEXT_FORMATS {
            let mut sink = CountSink::default();
            let mut reader = Cursor::new(&bytes);
            // An Err (the member as a whole is unreadable) is fine; a panic is not.
            let _ = formats::parse_text(format, &mut reader, &ctx(), &mut sink);
            prop_assert!(sink.tally.is_balanced());
        }
    }

    #[test]
    fn detection_and_containers_never_panic(
        magic in prop::sample::select(vec![&b""[..], b"PK\x03\x04", b"\x1f\x8b\x08\x00", b"ElfFile\x00"]),
        tail in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend(tail);
        let mut sink = CountSink::default();
        let _ = parse_evidence(Cursor::new(bytes), &SplitOptions::new("fuzz"), &ParseOptions::default(), &mut sink);
        prop_assert!(sink.tally.is_balanced());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A real EVTX file with bytes overwritten at random places: damaged chunks and records
    /// are bad records, never a panic.
    #[test]
    fn evtx_with_damaged_bytes_never_panics(edits in prop::collection::vec((0usize..69632, any::<u8>()), 1..40)) {
        let mut bytes = fixture("new-user-security.evtx");
        for (at, value) in edits {
            if at < bytes.len() {
                bytes[at] = value;
            }
        }
        let mut sink = CountSink::default();
        let _ = evtx::parse(Cursor::new(bytes), None, &ctx(), 1, &mut sink);
        prop_assert!(sink.tally.is_balanced());
    }

    #[test]
    fn evtx_from_arbitrary_bytes_after_a_header_never_panics(tail in prop::collection::vec(any::<u8>(), 0..70000)) {
        let mut bytes = fixture("new-user-security.evtx")[..4096].to_vec();
        bytes.extend(tail);
        let mut sink = CountSink::default();
        let _ = evtx::parse(Cursor::new(bytes), None, &ctx(), 1, &mut sink);
        prop_assert!(sink.tally.is_balanced());
    }
}
