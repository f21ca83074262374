"""Reading the live queue without changing it, and what the readings mean.

- :mod:`.stats` and :mod:`.sampling` read the database's figures, once or every tick, into
  fixed-size ring buffers; :mod:`.readings` names a reading and when it was taken.
- :mod:`.health` grades them (WAL size, free pages, stale leases, backup age, damage), and
  :mod:`.check` gives the same grading as a monitoring-plugin status line.
- :mod:`.starvation` diagnoses a WAL that checkpoints cannot reset; :mod:`.holders` names the
  programs that have the queue file open.
- :mod:`.alerts` turns a change of grade into one notification.
- :mod:`.damage_report` groups SQLite's integrity findings by the table, index and pages
  they hit.

It may use ``archive`` (its status), ``backups`` (the newest backup), ``leases``,
``settings``, ``files`` and the loose core modules; ``restore`` and ``rescue`` build on it.
"""
