"""Qt widgets of the window; they reach the database only through jobs."""
