-- Tasks. UUID keys (no SERIAL in DSQL); updated_at is set by the application (no triggers).
CREATE TABLE IF NOT EXISTS tasks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title varchar(255) NOT NULL,
    description text,
    status varchar(20) NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'in-progress', 'completed', 'cancelled')),
    priority varchar(10) NOT NULL DEFAULT 'medium'
        CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    assigned_to varchar(100),
    created_by varchar(100) NOT NULL,
    project_id bigint,
    due_date timestamptz,
    completed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version integer NOT NULL DEFAULT 1
);
