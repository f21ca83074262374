"""Trust: reading a database file nobody vouches for, and judging its schema and counters.

Owns opening a file immutable and read-only, its header, SQLite's bounded check, the
schema read by meaning and compared with the queue's and the live file's, and the id
counters a restore would keep. May use ``files`` and the loose core modules only; every
feature that reads a backup (``backups``, ``restore``, ``archive``, ``rescue``) builds on it.
"""
