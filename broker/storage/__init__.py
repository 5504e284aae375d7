"""The database: engine and units of work, tables, migrations, and how much database work runs at once."""
