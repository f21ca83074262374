"""Queue Admin: desktop and command-line administration for the PrismQ SQLite task queue."""

__version__ = "0.1.0"
