-- WebSocket connections of both regions' APIs in one table (the clusters are one database),
-- and what each one subscribed to. No foreign key: a connection's subscriptions are deleted
-- with it, in the same transaction.
-- endpoint: the management API that reaches the connection (its own region's WebSocket stage).
-- expires_at: when API Gateway has closed the connection at the latest (its 2-hour limit);
-- a row whose $disconnect never came is skipped by the broadcast and deleted.
CREATE TABLE IF NOT EXISTS connections (
    connection_id varchar(128) PRIMARY KEY,
    region varchar(32) NOT NULL,
    endpoint varchar(512) NOT NULL,
    principal varchar(255),
    connected_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
-- topic: 'all', 'project:<id>' or 'assignee:<name>'. The key leads with the topic: a
-- broadcast reads the subscribers of a task's topics as ranges of it.
CREATE TABLE IF NOT EXISTS subscriptions (
    topic varchar(128) NOT NULL,
    connection_id varchar(128) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, connection_id)
);
CREATE INDEX ASYNC IF NOT EXISTS subscriptions_connection_idx ON subscriptions (connection_id);
CREATE INDEX ASYNC IF NOT EXISTS connections_expires_idx ON connections (expires_at);
