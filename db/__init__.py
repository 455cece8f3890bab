"""Data layer: models, engine/session wiring, migrations and named queries."""
