-- What the investigators' web app needs (issue 15): saved filters that can be edited,
-- append-only comments on events, multipart evidence uploads and their abort.

ALTER TABLE saved_filters
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT saved_filters_name_length CHECK (length(name) BETWEEN 1 AND 100);
CREATE INDEX saved_filters_case_name ON saved_filters (case_id, name, id);

-- Comments on events: appended, never edited or removed by the application (its roles may
-- only read and insert); they go with their event or case.
CREATE TABLE event_comments (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    case_id    uuid NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    author     text NOT NULL,
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_comments_event ON event_comments (case_id, event_id, id);
GRANT SELECT, INSERT ON event_comments TO chrono_rw;
GRANT USAGE, SELECT ON SEQUENCE event_comments_id_seq TO chrono_rw;
GRANT SELECT ON event_comments TO chrono_ro;

-- Uploads: the declared size, and for a multipart upload its part size and S3 upload id
-- (cleared once the upload is completed or aborted). `aborted`: the upload was given up;
-- nothing of it is kept in S3.
ALTER TABLE evidence
    ADD COLUMN size_bytes bigint CHECK (size_bytes >= 0),
    ADD COLUMN part_size  bigint CHECK (part_size > 0),
    ADD COLUMN upload_id  text;
ALTER TABLE evidence DROP CONSTRAINT evidence_state_check;
ALTER TABLE evidence ADD CONSTRAINT evidence_state_check
    CHECK (state IN ('registered', 'uploaded', 'processing', 'done', 'failed', 'aborted'));
