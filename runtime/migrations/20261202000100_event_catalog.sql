-- The event catalog (runtime/catalog/, issue 17): every event carries the catalog's title
-- of its kind of event and its category (the strings of runtime/src/vocab.rs `Category`),
-- written by the pipeline. Events stored before this migration have neither; the API gives
-- them the catalog's title at read time where the event type is unambiguous.
ALTER TABLE events
    ADD COLUMN title    text,
    ADD COLUMN category text;

-- the filter language's `category` field
CREATE INDEX events_category ON events (case_id, category, ts, id);
