-- Event counts per case per UTC minute and per UTC hour (issue 15): the histogram of a
-- filter that has only a time range sums these cells instead of counting every event
-- (runtime/src/filter/rollup.rs decides which cells; the edges of a range that cut a cell
-- are counted from `events` itself, so every answer stays exact).
--
-- Kept by statement-level triggers with transition tables on `events` (INSERT, UPDATE,
-- DELETE — cascades from evidence and cases included — and TRUNCATE), so every way events
-- arrive or leave (the pipeline's INSERT ... SELECT, COPY, the seed, a manual fix) keeps them
-- right. The trigger function runs as the owner of these tables (SECURITY DEFINER): the
-- service roles may read the counts but never write them.
--
-- Concurrency: each statement adds its deltas with one INSERT ... ON CONFLICT DO UPDATE
-- whose rows are sorted by (case_id, cell), minutes before hours, so two uploads into the
-- same minutes take the row locks in the same order (no deadlock) and the increments
-- serialize on the row (none lost). Cells whose count falls to zero are removed.
--
-- No foreign key to cases: a case's deletion cascades to its events, whose trigger takes
-- the cells down to zero and removes them; a foreign key would race with that cascade.

CREATE TABLE event_counts_minute (
    case_id uuid NOT NULL,
    minute  timestamptz NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (case_id, minute)
);

CREATE TABLE event_counts_hour (
    case_id uuid NOT NULL,
    hour    timestamptz NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (case_id, hour)
);

-- date_bin with a UTC origin, never date_trunc: date_trunc on timestamptz cuts in the
-- session's TimeZone, which would put half-hour zones' cells on the half hour.
CREATE FUNCTION chrono_event_counts_add() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO event_counts_minute AS c (case_id, minute, n)
    SELECT case_id, date_bin('1 minute', ts, '2001-01-01 00:00:00+00'), count(*)
    FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (case_id, minute) DO UPDATE SET n = c.n + EXCLUDED.n;
    INSERT INTO event_counts_hour AS c (case_id, hour, n)
    SELECT case_id, date_bin('1 hour', ts, '2001-01-01 00:00:00+00'), count(*)
    FROM new_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (case_id, hour) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION chrono_event_counts_remove() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO event_counts_minute AS c (case_id, minute, n)
    SELECT case_id, date_bin('1 minute', ts, '2001-01-01 00:00:00+00'), -count(*)
    FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (case_id, minute) DO UPDATE SET n = c.n + EXCLUDED.n;
    INSERT INTO event_counts_hour AS c (case_id, hour, n)
    SELECT case_id, date_bin('1 hour', ts, '2001-01-01 00:00:00+00'), -count(*)
    FROM old_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (case_id, hour) DO UPDATE SET n = c.n + EXCLUDED.n;
    DELETE FROM event_counts_minute c
    USING (SELECT DISTINCT case_id, date_bin('1 minute', ts, '2001-01-01 00:00:00+00') AS minute
           FROM old_rows) o
    WHERE c.case_id = o.case_id AND c.minute = o.minute AND c.n <= 0;
    DELETE FROM event_counts_hour c
    USING (SELECT DISTINCT case_id, date_bin('1 hour', ts, '2001-01-01 00:00:00+00') AS hour
           FROM old_rows) o
    WHERE c.case_id = o.case_id AND c.hour = o.hour AND c.n <= 0;
    RETURN NULL;
END
$$;

-- An UPDATE that moves events in time or between cases: the old cells lose them, the new
-- ones gain them; an update that touches neither column nets to zero and writes nothing.
CREATE FUNCTION chrono_event_counts_move() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO event_counts_minute AS c (case_id, minute, n)
    SELECT case_id, date_bin('1 minute', ts, '2001-01-01 00:00:00+00'), sum(d)
    FROM (SELECT case_id, ts, -1 AS d FROM old_rows
          UNION ALL SELECT case_id, ts, 1 FROM new_rows) m
    GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
    ON CONFLICT (case_id, minute) DO UPDATE SET n = c.n + EXCLUDED.n;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO event_counts_hour AS c (case_id, hour, n)
    SELECT case_id, date_bin('1 hour', ts, '2001-01-01 00:00:00+00'), sum(d)
    FROM (SELECT case_id, ts, -1 AS d FROM old_rows
          UNION ALL SELECT case_id, ts, 1 FROM new_rows) m
    GROUP BY 1, 2 HAVING sum(d) <> 0 ORDER BY 1, 2
    ON CONFLICT (case_id, hour) DO UPDATE SET n = c.n + EXCLUDED.n;
    DELETE FROM event_counts_minute c
    USING (SELECT DISTINCT case_id, date_bin('1 minute', ts, '2001-01-01 00:00:00+00') AS minute
           FROM old_rows) o
    WHERE c.case_id = o.case_id AND c.minute = o.minute AND c.n <= 0;
    DELETE FROM event_counts_hour c
    USING (SELECT DISTINCT case_id, date_bin('1 hour', ts, '2001-01-01 00:00:00+00') AS hour
           FROM old_rows) o
    WHERE c.case_id = o.case_id AND c.hour = o.hour AND c.n <= 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION chrono_event_counts_clear() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    DELETE FROM event_counts_minute;
    DELETE FROM event_counts_hour;
    RETURN NULL;
END
$$;

REVOKE ALL ON FUNCTION chrono_event_counts_add() FROM PUBLIC;
REVOKE ALL ON FUNCTION chrono_event_counts_remove() FROM PUBLIC;
REVOKE ALL ON FUNCTION chrono_event_counts_move() FROM PUBLIC;
REVOKE ALL ON FUNCTION chrono_event_counts_clear() FROM PUBLIC;

-- No write reaches `events` between the backfill and the triggers (and none is lost):
-- SHARE ROW EXCLUSIVE blocks writers until this migration commits; readers go on.
LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER events_counts_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chrono_event_counts_add();
CREATE TRIGGER events_counts_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chrono_event_counts_remove();
CREATE TRIGGER events_counts_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chrono_event_counts_move();
CREATE TRIGGER events_counts_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION chrono_event_counts_clear();

-- the events stored before this migration
INSERT INTO event_counts_minute (case_id, minute, n)
SELECT case_id, date_bin('1 minute', ts, '2001-01-01 00:00:00+00'), count(*)
FROM events GROUP BY 1, 2;
INSERT INTO event_counts_hour (case_id, hour, n)
SELECT case_id, date_bin('1 hour', ts, '2001-01-01 00:00:00+00'), count(*)
FROM events GROUP BY 1, 2;

GRANT SELECT ON event_counts_minute, event_counts_hour TO chrono_rw, chrono_ro;
