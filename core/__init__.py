"""Gridline domain and storage: tables, taxonomy, grid, gazetteer, geocoding."""
