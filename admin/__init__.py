"""Composition root: the gridline CLI and the aiohttp application."""
