"""Restoring the live queue from a verified backup: plan it, then carry it out on one path.

- :mod:`.plan` says what a restore will cost: the backup against the live file, task by task.
- :mod:`.preflight` checks what stands in the way: workers at work, the write lock, space.
- :mod:`.gate` tells whether workers are at work from every sign: programs holding the
  file, commits by other connections, unexpired leases, fresh heartbeats.
- :mod:`.file_summary` describes one file (the live database or a backup) for both.
- :mod:`.execute` is the one path that restores, for the window and the command line alike.
- :mod:`.staging` makes the private copy of the backup the restore checks and writes in.
- :mod:`.keep` takes the safety backup (or a damaged file's copy) and carries the id
  counters over, under the live write lock.
- :mod:`.carry` keeps the tasks created after the backup (ids above its counter) in the
  restored queue, inside the restore's one transaction, when the request asks for it.
- :mod:`.writing` inspects the live file and writes the staged backup into it through
  SQLite's backup API in one transaction.
- :mod:`.write_access` probes whether the live write lock can be had, and waits for it.

It may use ``measurements`` (who holds the file), ``archive`` (its lock, to tell the tool's
own archiver from a worker), ``backups``, ``trust``, ``leases``, ``settings``, ``files`` and
the loose core modules; only ``rescue`` and the compatibility facade (``compat``) build on it.
"""
