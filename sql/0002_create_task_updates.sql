-- One row per changed field. No foreign key: the application deletes a task's history
-- with the task, in the same transaction.
CREATE TABLE IF NOT EXISTS task_updates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id uuid NOT NULL,
    field_name varchar(50) NOT NULL,
    old_value text,
    new_value text,
    updated_by varchar(100) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
