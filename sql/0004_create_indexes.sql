-- DSQL builds indexes asynchronously; the migrator waits for each job. No ASC/DESC in DSQL:
-- newest-first pages scan (created_at, id) backwards.
CREATE INDEX ASYNC IF NOT EXISTS tasks_created_idx ON tasks (created_at, id);
CREATE INDEX ASYNC IF NOT EXISTS tasks_status_idx ON tasks (status, created_at);
CREATE INDEX ASYNC IF NOT EXISTS tasks_assigned_to_idx ON tasks (assigned_to, created_at);
CREATE INDEX ASYNC IF NOT EXISTS tasks_project_idx ON tasks (project_id, created_at);
CREATE INDEX ASYNC IF NOT EXISTS task_updates_task_idx ON task_updates (task_id, updated_at);
