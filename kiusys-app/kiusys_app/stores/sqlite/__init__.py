"""The embedded store: SQLite in a file, with a group-committing writer thread."""

from kiusys_app.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
