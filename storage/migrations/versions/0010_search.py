"""Full-text search over messages, subjects, contacts and identities, kept by the database.

SQLite: FTS5 tables with external content (`search_*`) kept current by triggers; messages and
subjects are tokenised by unicode61 (case and diacritics folded), names, companies and
identities by trigrams so that any part of a name, an email or a phone number is found.
PostgreSQL: a stored `messages.search_vector` and GIN indexes over
`to_tsvector('russian', ...)` (the `russian` configuration stems Cyrillic words with the
Russian Snowball stemmer and Latin ones with the English one) and pg_trgm trigram indexes
for names, companies and identities.

Nothing is indexed by Python on the ingest path: the database keeps the indexes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (fts table, content table, columns, tokenizer)
_SQLITE_TABLES = (
    ("search_messages", "messages", ("text",), "unicode61 remove_diacritics 2"),
    ("search_subjects", "conversations", ("subject",), "unicode61 remove_diacritics 2"),
    ("search_contacts", "contacts", ("name", "company"), "trigram"),
    ("search_identities", "identities", ("value",), "trigram"),
)

_POSTGRES_INDEXES = (
    # A stored vector, so that matching a row already read costs no stemming: the newest
    # matches are then found walking the primary key backwards as well as through the index.
    "ALTER TABLE messages ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('russian', coalesce(text, ''))) STORED",
    "CREATE INDEX ix_search_messages ON messages USING gin (search_vector)",
    "CREATE INDEX ix_search_subjects ON conversations "
    "USING gin (to_tsvector('russian', coalesce(subject, '')))",
    "CREATE INDEX ix_search_contacts_name ON contacts USING gin (name gin_trgm_ops)",
    "CREATE INDEX ix_search_contacts_company ON contacts USING gin (company gin_trgm_ops)",
    "CREATE INDEX ix_search_identities ON identities USING gin (value gin_trgm_ops)",
)


def _sqlite_upgrade() -> None:
    for fts, content, columns, tokenizer in _SQLITE_TABLES:
        names = ", ".join(columns)
        new = ", ".join(f"new.{column}" for column in columns)
        old = ", ".join(f"old.{column}" for column in columns)
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({names}, content='{content}', "
            f"content_rowid='id', tokenize='{tokenizer}')"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {content} BEGIN "
            f"INSERT INTO {fts}(rowid, {names}) VALUES (new.id, {new}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {content} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.id, {old}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {names} ON {content} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.id, {old}); "
            f"INSERT INTO {fts}(rowid, {names}) VALUES (new.id, {new}); END"
        )
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for statement in _POSTGRES_INDEXES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for fts, _content, _columns, _tokenizer in _SQLITE_TABLES:
            for trigger in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{trigger}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
        return
    for statement in _POSTGRES_INDEXES:
        if statement.startswith("CREATE INDEX"):
            op.execute(f"DROP INDEX IF EXISTS {statement.split()[2]}")
    op.execute("ALTER TABLE messages DROP COLUMN IF EXISTS search_vector")
