"""Migration files: loading, splitting into statements, and the DSQL compatibility check.

The check refuses, before anything runs, what DSQL rejects or what breaks its rules:
SERIAL, triggers, PL/pgSQL, temporary tables, TRUNCATE, extensions, CREATE TYPE, arrays
as column types, indexes that are not built ASYNC, sequences without a CACHE of 1 or at
least 65536; and, to keep an interrupted run re-runnable, CREATE without IF NOT EXISTS.
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-postgresql-compatibility-unsupported-features.html
https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-create-index-async.html
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# (pattern, why DSQL rejects it); patterns run on the statement with comments removed.
REJECTED = [
    (r"\b(small|big)?serial\b", "SERIAL is not available in DSQL: use uuid DEFAULT gen_random_uuid()"),
    (r"\bcreate\s+(or\s+replace\s+)?(constraint\s+)?trigger\b", "triggers are not supported"),
    (r"\blanguage\s+plpgsql\b|^\s*do\s", "PL/pgSQL is not supported"),
    (
        r"\bcreate\s+(or\s+replace\s+)?(function|procedure)\b(?![\s\S]*\blanguage\s+sql\b)",
        "only LANGUAGE SQL functions are supported",
    ),
    (r"\bcreate\s+(global\s+|local\s+)?(temp|temporary|unlogged)\s+table\b", "temporary tables are not supported"),
    (r"\bcreate\s+(unique\s+)?index\s+(?!async\b)", "indexes must be created with CREATE INDEX ASYNC"),
    (r"\btruncate\b", "TRUNCATE is not supported: delete in batches"),
    (
        r"\breferences\b",
        "foreign keys add reads and OCC conflicts (and older DSQL rejects them): "
        "keep referential integrity in the application",
    ),
    (r"\bcreate\s+extension\b", "extensions are not supported"),
    (r"\bcreate\s+type\b", "CREATE TYPE is not supported (use CHECK constraints or a domain)"),
    (
        r"\b(savepoint|vacuum|alter\s+system|create\s+materialized\s+view|create\s+database|tablespace)\b",
        "not supported by DSQL",
    ),
    (r"\bpartition\s+by\b", "partitioning is not supported"),
    (r"\b\w+\s*\[\s*\]|\binet\b", "arrays and inet are not column types in DSQL"),
]
IDENTITY = re.compile(r"\b(generated\s+\w+\s+as\s+identity|create\s+sequence)\b", re.IGNORECASE)
CACHE = re.compile(r"\bcache\s+(\d+)\b", re.IGNORECASE)
IDEMPOTENT = re.compile(
    r"^\s*create\s+(table|index\s+async|unique\s+index\s+async)\s+if\s+not\s+exists\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    statements: tuple[str, ...]
    checksum: str


def strip_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", " ", sql)


_DOLLAR = re.compile(r"\$[A-Za-z_]*\$")


def split_statements(sql: str) -> list[str]:
    """Split on semicolons outside quotes and dollar-quoted bodies; comments removed."""
    text = strip_comments(sql)
    statements, start, i = [], 0, 0
    while i < len(text):
        char = text[i]
        if char in ("'", '"'):
            end = text.find(char, i + 1)
            i = len(text) if end < 0 else end + 1
            continue
        dollar = _DOLLAR.match(text, i) if char == "$" else None
        if dollar:
            end = text.find(dollar.group(0), dollar.end())
            i = len(text) if end < 0 else end + len(dollar.group(0))
            continue
        if char == ";":
            statements.append(text[start:i])
            start = i + 1
        i += 1
    statements.append(text[start:])
    return [" ".join(s.split()) for s in statements if s.strip()]


def problems_of(statement: str) -> list[str]:
    """Why DSQL would reject this statement, or why it would break a re-run."""
    found = [why for pattern, why in REJECTED if re.search(pattern, statement, re.IGNORECASE)]
    if IDENTITY.search(statement):
        cache = CACHE.search(statement)
        if cache is None or not (int(cache.group(1)) == 1 or int(cache.group(1)) >= 65536):
            found.append("sequences and IDENTITY need an explicit CACHE of 1 or at least 65536")
    if re.match(r"^\s*create\s+(table|index|unique\s+index)\b", statement, re.IGNORECASE) and not IDEMPOTENT.match(
        statement
    ):
        found.append("CREATE TABLE / CREATE INDEX ASYNC need IF NOT EXISTS so an interrupted migration can re-run")
    return found


def load_migrations(directory: Path) -> list[Migration]:
    migrations: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if not match:
            raise ValueError(f"{path.name}: migration files are named NNNN_words.sql")
        version = match.group(1)
        if version in migrations:
            raise ValueError(f"two migrations have version {version}")
        text = path.read_text(encoding="utf-8")
        migrations[version] = Migration(
            version, path.stem, tuple(split_statements(text)), hashlib.sha256(text.encode()).hexdigest()
        )
    return list(migrations.values())


def check_migrations(migrations: list[Migration]) -> list[str]:
    """Every DSQL problem, as 'file: problem: statement'."""
    problems = []
    for migration in migrations:
        for statement in migration.statements:
            for why in problems_of(statement):
                problems.append(f"{migration.name}: {why}: {statement[:80]}")
    return problems
