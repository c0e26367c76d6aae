"""Alembic environment for the control plane's database.

The URL is, in order: ``config.attributes["url"]`` (set by ``Store.migrate``),
``EDGE_DATABASE_URL``, then ``sqlalchemy.url`` in alembic.ini.

An upgrade runs in one transaction that first takes a database-wide lock
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so processes
starting together migrate once and the others then find the schema at head.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from alembic import context
from edge.platform.models import Base, make_engine

config = context.config
target_metadata = Base.metadata
# pg_advisory_xact_lock key serialising upgrades ("EDGE" in ASCII).
MIGRATION_LOCK_KEY = 0x45444745


def _url() -> str:
    url = (config.attributes.get("url") or os.environ.get("EDGE_DATABASE_URL")
           or config.get_main_option("sqlalchemy.url"))
    if not url:
        raise RuntimeError("no database URL: set EDGE_DATABASE_URL")
    return str(url)


def run_migrations_offline() -> None:
    """Print the SQL of the migrations instead of running them (``--sql``)."""
    url = _url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"),
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations in one locked transaction."""
    # Foreign keys off on SQLite: batch mode recreates tables, and dropping the
    # old copy of a parent table would otherwise cascade deletes into its children.
    engine = make_engine(_url(), foreign_keys=False, poolclass=NullPool)
    write = engine.execution_options(edge_write=True)
    try:
        with write.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATION_LOCK_KEY})
            context.configure(connection=connection, target_metadata=target_metadata,
                              render_as_batch=connection.dialect.name == "sqlite")
            context.run_migrations()
    finally:
        engine.dispose()


if config.config_file_name and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
