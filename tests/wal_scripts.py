"""Scripts for the child processes that make a WAL grow and pin it, shared by the tests.

Each is run as ``python -c SCRIPT DB`` (or written to a file, so its name shows in a command
line): the reader holds one read transaction open until its stdin closes; the writer commits
the number of rows it reads on each stdin line and answers ``written``.
"""

READER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute("SELECT count(*) FROM task_queue").fetchone()
print("reading", flush=True)
sys.stdin.read()
connection.execute("COMMIT")
connection.close()
"""

WRITER = """
import sqlite3, sys
from queue_admin_gui.core.schema import WRITER_PRAGMAS
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
for name, value in WRITER_PRAGMAS:
    connection.execute(f"PRAGMA {name}={value}")
for line in sys.stdin:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO task_queue (type, payload) VALUES ('render', ?)",
                           [('{"blob": "' + "x" * 3500 + '"}',) for _ in range(int(line))])
    connection.execute("COMMIT")
    print("written", flush=True)
connection.close()
"""
