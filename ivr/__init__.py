"""The 12319 hotline."""
