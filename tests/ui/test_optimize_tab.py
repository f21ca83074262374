from __future__ import annotations

from pathlib import Path

import pytest
from _tab_fixtures import execute, lock_held, open_tab, presenter_of, query, tab_session, wait_idle
from PySide6.QtCore import Qt

from queue_admin_gui.app.messages import Level
from queue_admin_gui.core.demo.queue_file import create_demo_queue
from queue_admin_gui.core.errors import format_bytes
from queue_admin_gui.core.files.db_files import file_size
from queue_admin_gui.ui.optimize_tab import NO_PROBLEMS, OptimizeTab


@pytest.fixture
def demo_path(tmp_path: Path) -> Path:
    path = tmp_path / "demo queue" / "queue.db"
    create_demo_queue(path, tasks=1500, seed=3)
    return path


@pytest.fixture
def fragmented_path(demo_path: Path) -> Path:
    """Most tasks deleted: their pages stay in the file as free pages."""
    execute(demo_path, "DELETE FROM task_queue WHERE status IN ('completed', 'queued')")
    execute(demo_path, "PRAGMA wal_checkpoint(TRUNCATE)")
    return demo_path


@pytest.fixture
def session(qtbot, demo_path):
    with tab_session(demo_path) as session:
        yield session


@pytest.fixture
def tab(qtbot, session):
    return open_tab(qtbot, session, OptimizeTab)


def click(qtbot, session, button):
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, session)


def finding_texts(tab) -> list[str]:
    return [tab.findings.item(row).text() for row in range(tab.findings.count())]


def test_analyze_all_creates_planner_statistics(qtbot, tab, session, demo_path):
    assert not query(demo_path, "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
    topics: list[str] = []
    session.changed.connect(topics.append)
    click(qtbot, session, tab.analyze_button)
    assert topics == ["stats"]  # announced once, by the operation, not by the tab
    assert query(demo_path, "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'task_queue'")[0][0]
    assert "ANALYZE of all tables finished" in tab.statistics_label.text()


def test_analyze_one_table_from_the_combo(qtbot, tab, session, demo_path):
    items = [tab.table_combo.itemText(i) for i in range(tab.table_combo.count())]
    assert items == ["All tables", "task_logs", "task_queue", "workers"]
    tab.table_combo.setCurrentText("workers")
    click(qtbot, session, tab.analyze_button)
    tables = {row[0] for row in query(demo_path, "SELECT tbl FROM sqlite_stat1")}
    assert tables == {"workers"}
    assert "table workers" in tab.statistics_label.text()


def test_pragma_optimize_runs(qtbot, tab, session):
    topics: list[str] = []
    session.changed.connect(topics.append)
    click(qtbot, session, tab.optimize_button)
    assert topics == []
    assert "PRAGMA optimize finished" in tab.statistics_label.text()
    assert presenter_of(session).texts(Level.ERROR) == []


def test_fragmentation_shown_and_vacuum_shrinks_the_file(qtbot, fragmented_path, tab, session):
    free_pages = query(fragmented_path, "PRAGMA freelist_count")[0][0]
    assert free_pages > 50
    click(qtbot, session, tab.refresh_button)
    assert tab.space_grid.value("freelist").startswith(f"{free_pages:,} (")
    assert tab.space_grid.value("fragmentation").endswith(" %")
    before = file_size(fragmented_path)
    needed = tab.space_grid.value("vacuum_needed")
    click(qtbot, session, tab.vacuum_button)
    question = presenter_of(session).questions[-1]
    assert "waits for its whole duration" in question.text
    assert f"it needs free disk space: {needed}. " in question.text
    assert file_size(fragmented_path) < before
    assert query(fragmented_path, "PRAGMA freelist_count")[0][0] == 0
    assert tab.vacuum_label.text().startswith("VACUUM freed")
    qtbot.waitUntil(lambda: tab.space_grid.value("fragmentation") == "0.0 %", timeout=30_000)


def test_vacuum_answered_no_changes_nothing(qtbot, fragmented_path, tab, session):
    presenter_of(session).answer = False
    before = file_size(fragmented_path)
    free_pages = query(fragmented_path, "PRAGMA freelist_count")[0][0]
    click(qtbot, session, tab.vacuum_button)
    assert len(presenter_of(session).questions) == 1
    assert file_size(fragmented_path) == before
    assert query(fragmented_path, "PRAGMA freelist_count")[0][0] == free_pages


@pytest.mark.usefixtures("short_lock_wait")
def test_vacuum_on_locked_database_tells_user(qtbot, fragmented_path, tab, session):
    before = file_size(fragmented_path)
    with lock_held(fragmented_path, "write"):
        click(qtbot, session, tab.vacuum_button)
    errors = presenter_of(session).texts(Level.ERROR)
    assert len(errors) == 1 and "locked" in errors[0]
    assert "locked" in tab.vacuum_label.text()
    assert file_size(fragmented_path) == before


@pytest.mark.parametrize("quick", [False, True])
def test_integrity_check_of_a_clean_file(qtbot, tab, session, quick):
    click(qtbot, session, tab.quick_check_button if quick else tab.integrity_button)
    assert finding_texts(tab) == [f"\u2714 {NO_PROBLEMS}"]
    assert "no problems found" in tab.integrity_label.text()


def damage_an_index(path: Path) -> None:
    """Overwrite the cells of one index page: the table stays readable, the index lies."""
    page_size = query(path, "PRAGMA page_size")[0][0]
    root = query(path, "SELECT rootpage FROM sqlite_master WHERE name = 'ix_task_type_status'"
                 )[0][0]
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size + page_size // 2)
        handle.write(b"\x07" * (page_size // 2))


def test_integrity_check_lists_problems_of_a_damaged_file(qtbot, tab, session, demo_path):
    damage_an_index(demo_path)
    click(qtbot, session, tab.integrity_button)
    findings = finding_texts(tab)
    assert findings and NO_PROBLEMS not in findings[0]
    assert any(text.startswith("ix_task_type_status (index): page ") for text in findings)
    assert "Damage found in" in tab.integrity_label.text()
    assert not tab.restore_button.isHidden()
    [told] = presenter_of(session).texts(Level.ERROR)  # one message, the damage
    assert "is damaged" in told and session.damage is not None


@pytest.mark.slow
def test_a_long_vacuum_shows_a_busy_bar_its_stage_and_the_time_elapsed(
        qtbot, fragmented_path, tab, session):
    panel = tab.progress_panel
    shown: list[tuple[int, str]] = []
    with lock_held(fragmented_path, "write"):  # VACUUM waits on the lock inside its long step
        qtbot.mouseClick(tab.vacuum_button, Qt.MouseButton.LeftButton)
        job = panel.job
        job.progress.connect(lambda *_: shown.append((panel.bar.maximum(),
                                                      panel.bar.format())))
        qtbot.waitUntil(lambda: "1 s elapsed" in panel.stage_label.text(), timeout=10_000)
        assert not panel.isHidden()  # the strip is up (the tab itself is never shown here)
        assert panel.bar.maximum() == 0  # busy, never a count standing still
        assert panel.stage_label.text() == "Rebuilding the database file (VACUUM)... 1 s elapsed"
        qtbot.waitUntil(lambda: "2 s elapsed" in panel.stage_label.text(), timeout=10_000)
    wait_idle(qtbot, session)
    assert shown and all(maximum == 0 for maximum, _format in shown)
    assert not any(" / " in text for _maximum, text in shown)
    assert not tab._elapsed_timer.isActive()


def test_elapsed_time_reads_in_seconds_then_minutes():
    from queue_admin_gui.ui.optimize_tab import format_elapsed, vacuum_stage_text

    assert format_elapsed(8.9) == "8 s"
    assert format_elapsed(125) == "2 min 05 s"
    assert vacuum_stage_text("Rebuilding the database (VACUUM)") == \
        "Rebuilding the database file (VACUUM)..."
    assert vacuum_stage_text("Checkpointing the WAL") == "Checkpointing the WAL..."


def test_vacuum_refusal_asks_for_the_figure_and_volume_the_question_quoted(
        qtbot, fragmented_path, session, monkeypatch):
    from collections import namedtuple

    from queue_admin_gui.core import errors, maintenance
    from queue_admin_gui.core.files import disk
    from queue_admin_gui.core.files.disk import volume_label

    # the temporary folder on another volume, and no room anywhere
    monkeypatch.setattr(disk, "same_drive", lambda first, second: False)
    monkeypatch.setattr(maintenance, "same_drive", lambda first, second: False)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(errors.shutil, "disk_usage", lambda folder: usage(10, 9, 1))
    tab = open_tab(qtbot, session, OptimizeTab)
    half = tab.state.vacuum_needed // 2
    volume = volume_label(fragmented_path.parent)
    click(qtbot, session, tab.vacuum_button)
    [question] = presenter_of(session).questions
    [refusal] = presenter_of(session).texts(Level.ERROR)
    quoted = f"{format_bytes(half)} on {volume}"
    assert quoted in question.text
    assert f"not enough free space on {volume}: need {format_bytes(half)}" in refusal
