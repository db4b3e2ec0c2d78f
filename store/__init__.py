"""The SQLite store: migrations, one class per aggregate, audit trail."""
