"""The database migrations, ``NNNN_description.sql``, applied in order by
``bridge.db.migrate``. Installed as the package ``bridge.migrations`` (see
pyproject.toml), so an installed bridge finds them wherever it runs."""
