-- ChronoTracer runtime schema: cases, evidence, devices, identities, events, labels,
-- saved filters, audit log. Applied by sqlx (`sqlx::migrate!`), by `chronoctl` on deploy
-- and by every `#[sqlx::test]`.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE cases (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_created_by ON cases (created_by);

-- One uploaded evidence file and its processing state:
-- registered -> uploaded -> processing -> done | failed (and again to processing on a re-run).
CREATE TABLE evidence (
    id           uuid PRIMARY KEY,
    case_id      uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    file_name    text NOT NULL CHECK (length(file_name) BETWEEN 1 AND 255),
    format       text,
    source_key   text NOT NULL UNIQUE,
    state        text NOT NULL DEFAULT 'registered'
                 CHECK (state IN ('registered', 'uploaded', 'processing', 'done', 'failed')),
    events_count bigint NOT NULL DEFAULT 0 CHECK (events_count >= 0),
    bad_records  bigint NOT NULL DEFAULT 0 CHECK (bad_records >= 0),
    -- the first errors met (bad records, failure cause): [{"record": "...", "message": "..."}]
    errors       jsonb NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(errors) = 'array'),
    execution_id text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX evidence_case ON evidence (case_id, created_at, id);

CREATE TABLE devices (
    id         uuid PRIMARY KEY,
    case_id    uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    name       text NOT NULL,
    kind       text NOT NULL DEFAULT 'host',
    attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (case_id, name)
);

CREATE TABLE identities (
    id           uuid PRIMARY KEY,
    case_id      uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    kind         text NOT NULL,
    value        text NOT NULL,
    display_name text,
    UNIQUE (case_id, kind, value)
);
CREATE INDEX identities_case_value ON identities (case_id, lower(value));
CREATE INDEX devices_case_name ON devices (case_id, lower(name));

-- action/outcome hold the strings of runtime/src/vocab.rs.
CREATE TABLE events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id        uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    evidence_id    uuid NOT NULL REFERENCES evidence (id) ON DELETE CASCADE,
    ts             timestamptz NOT NULL,
    timestamp_desc text NOT NULL,
    data_type      text NOT NULL,
    source         text NOT NULL,
    parser         text NOT NULL,
    message        text,
    device_id      uuid REFERENCES devices (id) ON DELETE SET NULL,
    identity_id    uuid REFERENCES identities (id) ON DELETE SET NULL,
    event_code     text,
    action         text,
    outcome        text,
    src_ip         inet,
    dst_ip         inet,
    attributes     jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags           text[] NOT NULL DEFAULT '{}',
    -- provenance: the file inside the evidence (archive member, part) and the record in it
    source_file    text,
    record_ref     text NOT NULL,
    -- re-running the same evidence must not duplicate events
    dedup_key      text NOT NULL,
    UNIQUE (evidence_id, dedup_key)
);
-- the timeline (keyset pagination on (ts, id)) and the common filters
CREATE INDEX events_timeline ON events (case_id, ts, id);
CREATE INDEX events_action ON events (case_id, action, outcome, ts, id);
CREATE INDEX events_identity ON events (case_id, identity_id, ts, id);
CREATE INDEX events_device ON events (case_id, device_id, ts, id);
CREATE INDEX events_event_code ON events (case_id, event_code, ts);
CREATE INDEX events_src_ip ON events (case_id, src_ip);
CREATE INDEX events_message_trgm ON events USING gin (message gin_trgm_ops);
CREATE INDEX events_tags ON events USING gin (tags);

-- per-user labels on events (star, comment, ...)
CREATE TABLE event_labels (
    event_id   bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    case_id    uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    user_sub   text NOT NULL,
    label      text NOT NULL CHECK (length(label) BETWEEN 1 AND 64),
    note       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, user_sub, label)
);
CREATE INDEX event_labels_case_label ON event_labels (case_id, label);

CREATE TABLE saved_filters (
    id         uuid PRIMARY KEY,
    case_id    uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    name       text NOT NULL,
    document   jsonb NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (case_id, created_by, name)
);

-- who did what; every AI question and the filter it became (action = 'ai_filter')
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    case_id uuid,
    action  text NOT NULL,
    detail  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_case ON audit_log (case_id, at);

-- The one write the read-only role may do: append to the audit log.
CREATE FUNCTION chrono_audit(p_actor text, p_case uuid, p_action text, p_detail jsonb)
RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    INSERT INTO audit_log (actor, case_id, action, detail)
    VALUES (p_actor, p_case, p_action, coalesce(p_detail, '{}'::jsonb))
    RETURNING id
$$;
REVOKE ALL ON FUNCTION chrono_audit(text, uuid, text, jsonb) FROM PUBLIC;

-- Group roles (NOLOGIN); the deployment creates login users that are members of them.
-- Roles are cluster-wide and migrations of several databases may run at once, so a
-- concurrent creation is tolerated.
DO $$
BEGIN
    BEGIN
        CREATE ROLE chrono_rw NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        CREATE ROLE chrono_ro NOLOGIN;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
END
$$;

-- read-write: the API and the pipeline
GRANT USAGE ON SCHEMA public TO chrono_rw, chrono_ro;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO chrono_rw;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO chrono_rw;
GRANT EXECUTE ON FUNCTION chrono_audit(text, uuid, text, jsonb) TO chrono_rw;
-- read-only: the AI filter (name resolution, counts), plus appending to the audit log
GRANT SELECT ON cases, devices, identities, events, event_labels, saved_filters TO chrono_ro;
GRANT EXECUTE ON FUNCTION chrono_audit(text, uuid, text, jsonb) TO chrono_ro;
