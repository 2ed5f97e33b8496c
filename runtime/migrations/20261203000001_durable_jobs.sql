-- Issue 18: nothing lost, nothing stuck, nobody in.
--
-- 1. Durable processing jobs. A processing request is a row here before it is acknowledged;
--    locally a worker leases it (`FOR UPDATE SKIP LOCKED`, a lease renewed while it runs,
--    retaken when it lapses), in AWS it names its Step Functions execution, which the API
--    checks (DescribeExecution) when the evidence looks stuck. At most one job of an evidence
--    is open (queued or running) at a time.
-- 2. Chain of custody: the SHA-256 the uploader declared and S3 verified, on the evidence.
-- 3. The audit log is append-only for every application role, and for its owner too unless
--    the owner drops the trigger on purpose.
-- 4. The runtime acts as `chrono_rw` (its sessions set the role, see runtime/src/db), so
--    tables created by later migrations are granted to it by default.

CREATE TABLE pipeline_jobs (
    id               uuid PRIMARY KEY,
    evidence_id      uuid NOT NULL REFERENCES evidence (id) ON DELETE CASCADE,
    case_id          uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    source_key       text NOT NULL,
    -- who runs it: the local worker (leases) or Step Functions (an execution)
    runner           text NOT NULL CHECK (runner IN ('local', 'step_functions')),
    state            text NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'running', 'done', 'failed')),
    -- the evidence file's size in bytes (0 when unknown): small jobs get an express slot
    size_bytes       bigint NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    -- fair order: the request time plus a handicap growing with the size (bounded), so
    -- a small file requested just after a big one goes first, and a big one waiting long
    -- enough goes before later small ones
    rank_at          timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    lease_owner      text,
    lease_expires_at timestamptz,
    execution_arn    text,
    -- when the API last asked Step Functions about the execution
    checked_at       timestamptz,
    error            text,
    requested_by     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE UNIQUE INDEX pipeline_jobs_one_open ON pipeline_jobs (evidence_id)
    WHERE state IN ('queued', 'running');
CREATE INDEX pipeline_jobs_queue ON pipeline_jobs (rank_at, id)
    WHERE runner = 'local' AND state IN ('queued', 'running');
CREATE INDEX pipeline_jobs_evidence ON pipeline_jobs (evidence_id, created_at);

ALTER TABLE evidence
    -- lowercase hex SHA-256 of the whole file, as declared at registration and verified
    -- by S3 on upload (single PUT) and by the pipeline before processing
    ADD COLUMN sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- S3's composite checksum of a multipart upload (base64 of the SHA-256 of the parts'
    -- SHA-256s, `-<parts>`)
    ADD COLUMN sha256_composite text,
    -- when the pipeline last found the stored bytes to match `sha256`
    ADD COLUMN sha256_verified_at timestamptz,
    -- the original file name when it had to be changed (escaped), and the job processing it
    ADD COLUMN file_name_original text,
    ADD COLUMN job_id uuid;

-- Evidence left `processing` by the in-memory local queue (lost on every restart) has no
-- way forward: fail it with the reason so it can be processed again. Evidence processing
-- under a Step Functions execution gets a job that names the execution, which the API
-- checks.
WITH lost AS (
    UPDATE evidence SET state = 'failed', updated_at = now(),
        errors = jsonb_build_array(jsonb_build_object('record', 'pipeline', 'message',
            'processing was interrupted: the local pipeline queue of this version was lost '
            'when the API stopped; process the evidence again')) || errors
    WHERE state = 'processing' AND (execution_id IS NULL OR execution_id NOT LIKE 'arn:%')
    RETURNING id
)
SELECT count(*) FROM lost;

INSERT INTO pipeline_jobs (id, evidence_id, case_id, source_key, runner, state, rank_at,
                           attempts, execution_arn, requested_by, started_at)
SELECT gen_random_uuid(), e.id, e.case_id, e.source_key, 'step_functions', 'running',
       e.updated_at, 1, e.execution_id, e.created_by, e.updated_at
FROM evidence e
WHERE e.state = 'processing' AND e.execution_id LIKE 'arn:%';
UPDATE evidence e SET job_id = j.id FROM pipeline_jobs j WHERE j.evidence_id = e.id;

-- An evidence's `events_count` is now exactly its rows (the upload step adds the rows each
-- part's transaction inserted, in that transaction). Rows committed before their counts
-- (a part whose count update failed, e.g. on a NUL in a member name) are counted now.
UPDATE evidence e SET events_count = c.n, records_seen = c.n + e.bad_records
FROM (SELECT evidence_id, count(*) AS n FROM events GROUP BY evidence_id) c
WHERE c.evidence_id = e.id AND e.events_count <> c.n;
UPDATE evidence e SET events_count = 0, records_seen = e.bad_records
WHERE e.events_count <> 0 AND NOT EXISTS (SELECT 1 FROM events WHERE evidence_id = e.id);

-- The audit log: append-only. No application role may change or remove a row, and a
-- trigger refuses it for everyone else (the owner would have to drop the trigger first,
-- which is DDL the runtime never runs).
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM chrono_rw, chrono_ro, PUBLIC;
GRANT SELECT, INSERT ON audit_log TO chrono_rw;
CREATE FUNCTION chrono_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION chrono_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION chrono_audit_append_only();
-- Comments stay as issue 15 made them: read and insert only.
REVOKE UPDATE, DELETE, TRUNCATE ON event_comments FROM chrono_rw, chrono_ro, PUBLIC;

-- What the runtime (acting as chrono_rw) needs of the new table; what later migrations of
-- this user create is granted the same way by default (an append-only table revokes).
GRANT SELECT, INSERT, UPDATE, DELETE ON pipeline_jobs TO chrono_rw;
GRANT SELECT ON pipeline_jobs TO chrono_ro;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO chrono_rw;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO chrono_rw;
