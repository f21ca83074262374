"""Schema objects whose SQL looks like the queue's but that SQLite reads otherwise.

Each file here is a real backup of a queue PrismQ's own code made, with one object's SQL
rewritten through ``writable_schema`` and a manifest recomputed to match (a hostile sender
can always do that). Every rewrite tokenizes, for a reader that is not SQLite, exactly as
the original does, yet SQLite reads something else:

- a NUL: SQLite reads a schema statement only up to it, so ``--`` followed by a NUL hides
  what follows (a view's ``WHERE``, a partial index's condition) from SQLite, while a
  reader that goes on to the end sees the comment end at the line break and the rest read
  as usual;
- a no-break space (U+00A0) or another non-ASCII space: SQLite counts only ASCII spaces as
  spaces, every other character above 0x7F is part of a name, so one written before
  ``datetime`` makes a function no SQLite has, one before ``100`` makes the name of a text
  default, and one before a view's column alias renames that column;
- letter case: normalizing folds names, but SQLite keeps the case of a view's column alias
  in the column's name, and reads a double-quoted name that names no column (or a bare
  name in a DEFAULT) as a string, case and all.

Each test first proves that SQLite does read the rewrite differently (what a restored queue
would do), then that verify refuses it, alone and against the live database.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from prismq import add_prismq_tasks, make_prismq_queue, prismq_connect

from queue_admin_gui.core import QueueBackup
from queue_admin_gui.core.backups.manifest import BackupManifest, manifest_path_for
from queue_admin_gui.core.backups.verify import VerifyReport, check_backup_file
from queue_admin_gui.core.database import closing_connection
from queue_admin_gui.core.errors import ErrorKind
from queue_admin_gui.core.files.durable import file_sha256
from queue_admin_gui.core.trust.schema_meaning import SQLITE_SPACES, misread_character
from queue_admin_gui.core.trust.schema_sql import normalized_sql

TASKS = 12
NO_BREAK_SPACE = "\u00a0"
NUL_WHY = "NUL character, after which SQLite reads nothing"
SPACE_WHY = "U+00A0, which looks like a space but which SQLite does not read as one"


@pytest.fixture
def live(tmp_path: Path) -> Path:
    return make_prismq_queue(tmp_path / "prismq queue" / "queue.db", tasks=TASKS)


@pytest.fixture
def good(live: Path, tmp_path: Path) -> Path:
    return QueueBackup(live, tmp_path / "backups").create_backup("good")


def stored_sql(path: Path, name: str) -> str:
    with closing_connection(sqlite3.connect(path)) as connection:
        row = connection.execute("SELECT sql FROM sqlite_master WHERE name = ?",
                                 (name,)).fetchone()
    assert row is not None, name
    return str(row[0])


def disguised(good: Path, label: str, name: str, old: str, new: str, *,
              alike: bool = True) -> Path:
    """A copy of ``good`` whose ``name`` has ``old`` replaced by ``new`` in its stored SQL.

    Unless ``alike`` is False, the rewrite must read alike to :func:`normalized_sql` (that
    is the disguise); the copy gets a manifest that matches it.
    """
    original = stored_sql(good, name)
    assert original.count(old) == 1, (old, original)
    rewritten = original.replace(old, new)
    assert not alike or normalized_sql(rewritten) == normalized_sql(original)
    bad = good.with_name(f"queue_backup_{label}_20200101_000000.db")
    bad.write_bytes(good.read_bytes())
    with closing_connection(sqlite3.connect(bad, isolation_level=None)) as connection:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?", (rewritten, name))
    manifest = BackupManifest.read(manifest_path_for(good))
    replace(manifest, name=bad.name, sha256=file_sha256(bad),
            size_bytes=bad.stat().st_size).write(bad)
    return bad


def refused_alone_and_against_live(bad: Path, live: Path, name: str, why: str) -> None:
    for live_path in (None, live):
        report: VerifyReport = check_backup_file(bad, live_path=live_path)
        assert not report.ok, f"verified against {live_path}: {report.notes}"
        assert report.kind is ErrorKind.NOT_A_QUEUE, report.problems
        assert any(f"'{name}'" in problem and why in problem
                   for problem in report.problems), report.problems


def test_every_space_sqlite_does_not_count_is_found() -> None:
    python_spaces = {chr(code) for code in range(0x110000) if chr(code).isspace()}
    for char in python_spaces - SQLITE_SPACES | {"\x00"}:
        assert misread_character(f"SELECT 1 AS a{char}b") == char, hex(ord(char))
    assert misread_character("SELECT\t1 AS a --\r\n\f'\u00e9t\u00e9'") is None


def test_the_untouched_backup_verifies(good: Path, live: Path) -> None:
    for live_path in (None, live):
        report = check_backup_file(good, live_path=live_path)
        assert report.ok, report.problems


def test_a_nul_that_hides_a_views_where_is_refused(good: Path, live: Path) -> None:
    bad = disguised(good, "nul_view", "v_recent_failures", "FROM task_queue\n",
                    "FROM task_queue --\x00\n")
    with closing_connection(sqlite3.connect(bad)) as connection:
        failed = connection.execute("SELECT count(*) FROM task_queue WHERE status IN "
                                    "('failed', 'dead_letter')").fetchone()[0]
        listed = connection.execute("SELECT count(*) FROM v_recent_failures").fetchone()[0]
    assert failed == 0 and listed == TASKS  # every task shows as a recent failure
    refused_alone_and_against_live(bad, live, "v_recent_failures", NUL_WHY)


def test_a_nul_that_hides_a_partial_indexs_condition_is_refused(good: Path, live: Path) -> None:
    bad = disguised(good, "nul_index", "uq_task_idempotency", "(idempotency_key)",
                    "(idempotency_key) --\x00")
    with closing_connection(sqlite3.connect(bad)) as connection:
        partial = connection.execute("SELECT partial FROM pragma_index_list('task_queue') "
                                     "WHERE name = 'uq_task_idempotency'").fetchone()[0]
    assert partial == 0  # SQLite reads a unique index over every row, with no condition
    refused_alone_and_against_live(bad, live, "uq_task_idempotency", NUL_WHY)


def test_a_no_break_space_before_a_defaults_function_is_refused(good: Path,
                                                                 live: Path) -> None:
    bad = disguised(good, "nbsp_default", "task_queue", "DEFAULT (datetime('now')),\n  lease",
                    f"DEFAULT ({NO_BREAK_SPACE}datetime('now')),\n  lease")
    trial = bad.with_name("trial.db")
    trial.write_bytes(bad.read_bytes())
    with closing_connection(prismq_connect(trial)) as producer, pytest.raises(
            sqlite3.OperationalError, match="unknown function"):
        add_prismq_tasks(producer, 1, key_prefix="new")  # what restoring it would leave
    refused_alone_and_against_live(bad, live, "task_queue", SPACE_WHY)


def test_a_no_break_space_before_a_number_default_is_refused(good: Path, live: Path) -> None:
    bad = disguised(good, "nbsp_number", "task_queue", "DEFAULT 0,",
                    f"DEFAULT {NO_BREAK_SPACE}0,")
    trial = bad.with_name("trial.db")
    trial.write_bytes(bad.read_bytes())
    with closing_connection(sqlite3.connect(trial, isolation_level=None)) as connection:
        connection.execute("INSERT INTO task_queue(type, payload) VALUES ('new', '{}')")
        kind, below = connection.execute(
            "SELECT typeof(attempts), attempts < max_attempts FROM task_queue "
            "WHERE type = 'new'").fetchone()
    assert (kind, below) == ("text", 0)  # a new task's attempts are text: never below 5
    refused_alone_and_against_live(bad, live, "task_queue", SPACE_WHY)


def test_a_no_break_space_that_renames_a_views_column_is_refused(good: Path,
                                                                  live: Path) -> None:
    bad = disguised(good, "nbsp_alias", "v_queue_status_summary", "as task_count",
                    f"as {NO_BREAK_SPACE}task_count")
    with closing_connection(sqlite3.connect(bad)) as connection, pytest.raises(
            sqlite3.OperationalError, match="no such column: task_count"):
        # PrismQ's own metrics query of its queue
        connection.execute("SELECT status, task_count FROM v_queue_status_summary")
    refused_alone_and_against_live(bad, live, "v_queue_status_summary", SPACE_WHY)


def test_a_view_column_renamed_in_capitals_is_refused(good: Path, live: Path) -> None:
    bad = disguised(good, "capitals", "v_worker_status", "as active_tasks", "as ACTIVE_TASKS")
    with closing_connection(sqlite3.connect(bad)) as connection:
        # PrismQ's metrics hand out dict(row) of SELECT * FROM v_worker_status
        names = [column[0] for column in connection.execute(
            "SELECT * FROM v_worker_status").description]
    assert "ACTIVE_TASKS" in names and "active_tasks" not in names
    for live_path in (None, live):
        report = check_backup_file(bad, live_path=live_path)
        assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE, report.problems
        assert any("'v_worker_status'" in problem and "ACTIVE_TASKS" in problem
                   for problem in report.problems), report.problems


def test_comments_and_spacing_in_a_prismq_view_still_verify(good: Path, live: Path) -> None:
    original = stored_sql(good, "v_queue_type_summary")
    bad = good.with_name("queue_backup_spacing_20200101_000000.db")
    bad.write_bytes(good.read_bytes())
    respelled = original.replace("FROM task_queue", "/* per type */\n\tFROM   task_queue -- all")
    with closing_connection(sqlite3.connect(bad, isolation_level=None)) as connection:
        connection.execute("PRAGMA writable_schema = ON")
        connection.execute("UPDATE sqlite_master SET sql = ? WHERE name = ?",
                           (respelled + "\n", "v_queue_type_summary"))
    for live_path in (None, live):
        report = check_backup_file(bad, live_path=live_path)
        assert report.ok, report.problems


def test_a_live_databases_own_view_with_a_no_break_space_in_a_string_verifies(
        live: Path, tmp_path: Path) -> None:
    with closing_connection(sqlite3.connect(live)) as connection:
        connection.execute(f"CREATE VIEW v_labels AS SELECT id, 'a{NO_BREAK_SPACE}b' AS label "
                           "FROM task_queue")
        connection.commit()
    backup = QueueBackup(live, tmp_path / "backups").create_backup("labels")
    report = check_backup_file(backup, live_path=live)
    assert report.ok, report.problems


#: A live database's own objects that spell a string the way SQLite lets old code spell one:
#: in double quotes (a quoted name that names no column is a string) or as a bare name in a
#: DEFAULT. The backup's copy differs only in the letter case of that string, or quotes a
#: TRUE (the number 1) so that it becomes the string 'true'.
LIVE_SPELLINGS = [
    ("v_processing", 'CREATE VIEW v_processing AS SELECT id FROM task_queue '
                     'WHERE status = "processing"', '"processing"', '"PROCESSING"',
     "SELECT count(*) FROM v_processing", '`"PROCESSING"` instead of `none`'),
    ("v_flagged", "CREATE VIEW v_flagged AS SELECT id FROM task_queue WHERE 1 = TRUE",
     "TRUE", '"true"', "SELECT count(*) FROM v_flagged", '`"true"` instead of `none`'),
    ("notes", "CREATE TABLE notes(id INTEGER PRIMARY KEY, state TEXT DEFAULT open)",
     "DEFAULT open", "DEFAULT OPEN", "INSERT INTO notes(id) VALUES (1) RETURNING state",
     "column state differs in its default"),
]


@pytest.mark.parametrize(("name", "sql", "old", "new", "probe", "named"), LIVE_SPELLINGS,
                         ids=["quoted-string-case", "quoted-true", "bare-default-case"])
def test_a_live_objects_string_respelled_in_another_case_is_refused(
        live: Path, tmp_path: Path, name: str, sql: str, old: str, new: str,
        probe: str, named: str) -> None:
    with closing_connection(sqlite3.connect(live)) as connection:
        connection.execute("UPDATE task_queue SET status = 'processing' WHERE id = 1")
        connection.execute(sql)
        connection.commit()
    good = QueueBackup(live, tmp_path / "backups").create_backup("spelled")
    assert check_backup_file(good, live_path=live).ok
    bad = disguised(good, "respelled", name, old, new)
    trials = []
    for path in (good, bad):
        trial = tmp_path / f"trial-{path.stem}.db"
        trial.write_bytes(path.read_bytes())
        with closing_connection(sqlite3.connect(trial, isolation_level=None)) as connection:
            trials.append(connection.execute(probe).fetchall())
    assert trials[0] != trials[1]  # SQLite reads the two spellings differently
    report = check_backup_file(bad, live_path=live)
    assert not report.ok and report.kind is ErrorKind.NOT_A_QUEUE, report.problems
    assert any(f"'{name}'" in problem and named in problem
               for problem in report.problems), report.problems


#: Spellings of a live database's own objects that SQLite reads alike, so they still verify.
LIVE_ALIKE = [
    ("v_processing", "CREATE VIEW v_processing AS SELECT id FROM task_queue "
                     "WHERE status = 'processing'", "WHERE status", 'WHERE "status"'),
    ("notes", "CREATE TABLE notes(id INTEGER PRIMARY KEY, state TEXT DEFAULT open)",
     "DEFAULT open", "DEFAULT 'open'"),
]


@pytest.mark.parametrize(("name", "sql", "old", "new"), LIVE_ALIKE,
                         ids=["quoted-column", "default-as-string"])
def test_a_live_objects_name_respelled_alike_still_verifies(
        live: Path, tmp_path: Path, name: str, sql: str, old: str, new: str) -> None:
    with closing_connection(sqlite3.connect(live)) as connection:
        connection.execute(sql)
        connection.commit()
    good = QueueBackup(live, tmp_path / "backups").create_backup("alike")
    respelled = disguised(good, "alike", name, old, new, alike=False)
    report = check_backup_file(respelled, live_path=live)
    assert report.ok, report.problems
