-- EventBridge event ids already applied: recorded in the same transaction as the change,
-- so a second delivery of the same event changes nothing.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id varchar(128) PRIMARY KEY,
    event_type varchar(32) NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
