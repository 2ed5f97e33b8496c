-- The pipeline's upload step (runtime/src/pipeline/upload.rs): one row of counts per
-- uploaded part, replaced when the part is uploaded again, so the evidence's counts are
-- sums that a re-run never doubles; and the evidence's own record, device and identity
-- counts (events_count + bad_records = records_seen).

ALTER TABLE evidence
    ADD COLUMN records_seen     bigint NOT NULL DEFAULT 0 CHECK (records_seen >= 0),
    ADD COLUMN devices_count    bigint NOT NULL DEFAULT 0 CHECK (devices_count >= 0),
    ADD COLUMN identities_count bigint NOT NULL DEFAULT 0 CHECK (identities_count >= 0);

CREATE TABLE evidence_parts (
    evidence_id  uuid NOT NULL REFERENCES evidence (id) ON DELETE CASCADE,
    part         text NOT NULL,
    records_seen bigint NOT NULL CHECK (records_seen >= 0),
    events       bigint NOT NULL CHECK (events >= 0),
    bad_records  bigint NOT NULL CHECK (bad_records >= 0),
    -- the part's first bad records: [{"record": "<location>", "message": "..."}]
    errors       jsonb NOT NULL DEFAULT '[]'::jsonb,
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (evidence_id, part),
    CHECK (events + bad_records = records_seen)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON evidence_parts TO chrono_rw;
