"""Files: paths, side files, durable writes, file names, free space and bounded JSON.

Owns what a file on disk is before any connection is opened: the queue's path and its
side files (``-wal``, ``-shm``, ``-journal``: spelled only in ``side_files``), why a named
file cannot be used, durable writing (fsync, atomic JSON, renames Windows allows), names
that fit the file system, volumes and free space. The lowest feature package: it may use
only ``errors`` and ``progress``.
"""
