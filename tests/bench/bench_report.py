"""Figures of the engine benchmark, the machine they came from, and how they are shown."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One measured figure with its target; ``met`` is None when there is no target."""

    name: str
    value: float
    unit: str
    target: str
    met: bool | None
    note: str = ""

    @property
    def shown(self) -> str:
        """The value with its unit, rounded for reading."""
        if self.unit == "s":
            return f"{self.value:.2f} s"
        if self.unit == "ms":
            return f"{self.value:.2f} ms"
        return f"{self.value:g}"

    @property
    def verdict(self) -> str:
        """met / NOT MET / a dash when there is no target."""
        if self.met is None:
            return "-"
        return "met" if self.met else "NOT MET"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def latency_summary(values: list[float], seconds: float) -> dict[str, float]:
    """Transactions, rate and p50/p99/max in milliseconds of one window."""
    return {
        "transactions": float(len(values)),
        "per_second": len(values) / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(values, 0.50) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
        "max_ms": (max(values) if values else 0.0) * 1000,
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` shows them."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def machine_info(folder: Path) -> dict[str, str]:
    """CPU, cores, RAM, free disk, Python, SQLite and OS of the machine running the benchmark."""
    cpu = platform.processor() or "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    usage = shutil.disk_usage(folder)
    return {
        "CPU": cpu,
        "Cores": str(os.cpu_count()),
        "RAM": memory,
        "Disk free (benchmark folder)": f"{usage.free / 1e9:.1f} GB of {usage.total / 1e9:.1f} GB",
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "OS": platform.platform(),
    }


def text_table(figures: list[Figure]) -> str:
    """The figures as a fixed-width table for the console."""
    width = max(len(figure.name) for figure in figures)
    lines = [f"{'measurement':<{width}}  {'figure':>11}  {'target':<20}  {'result':<8}  note"]
    for figure in figures:
        lines.append(f"{figure.name:<{width}}  {figure.shown:>11}  {figure.target:<20}  "
                     f"{figure.verdict:<8}  {figure.note}")
    return "\n".join(lines)


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _writer_row(label: str, window: dict[str, float]) -> str:
    return (f"| {label} | {int(window['transactions']):,} | {window['per_second']:,.0f} | "
            f"{window['p50_ms']:.2f} | {window['p99_ms']:.2f} | {window['max_ms']:.1f} |")


def markdown_report(run: Any, machine: dict[str, str], figures: list[Figure],
                    details: dict[str, Any], started: datetime, command: str) -> str:
    """The whole report: run, machine, results against targets, writers, consistency, load."""
    size_gb = details.get("db_bytes", 0) / 1e9
    lines = [
        "# Engine benchmark",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC with `{command}`: {run.tasks:,} tasks, queue file "
        f"{size_gb:.2f} GB (generated in {details.get('generate_seconds', 0):.0f} s), "
        f"{run.writers} writer processes. Every figure below comes from this one run on this "
        "one file; reading was warm (the file fits in the page cache) for the copy and for "
        "the engine alike. Before each timed step `os.sync()` wrote out what earlier steps "
        "left dirty (outside the timing). Load before the start: "
        + "; ".join(details.get("quiet_checks", ["not checked"])) + ".",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in machine.items()],
        "",
        "## Results against the targets",
        "",
        "| measurement | figure | target | result | note |",
        "|---|---:|---|---|---|",
        *[f"| {f.name} | {f.shown} | {f.target} | {f.verdict} | {f.note} |" for f in figures],
        "",
    ]
    if "copy_runs" in details:
        runs = ", ".join(f"{value:.2f}" for value in details["copy_runs"])
        lines += [f"Plain copy runs: {runs} s; the same copy followed by fsync: "
                  f"{details['copy_fsync_seconds']:.2f} s (the backup flushes its file to disk, "
                  "the plain copy does not).", ""]
    if "writers_idle" in details:
        under = details["under_writers"]
        lines += [
            f"## Writers ({run.writers} processes, BEGIN IMMEDIATE, enqueue and claim "
            "alternately)",
            "",
            "Latency of one write transaction, from BEGIN IMMEDIATE to the end of COMMIT "
            "(waiting for the write lock included).",
            "",
            "| window | transactions | per second | p50 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|",
            _writer_row("idle (baseline before the backup)", details["writers_idle"]),
            _writer_row("during the backup", details["writers_backup"]),
            "",
            f"Writers enqueued {under['enqueued']:,} and claimed {under['claimed']:,} tasks; "
            f"{under['writer_errors']} transactions failed"
            + (f" (last: {under['writer_last_error']})" if under["writer_errors"] else "")
            + f". WAL after the backup: {under['wal_bytes_after'] / 1e6:.1f} MB.",
            "",
            "## Consistency of the backup taken under writers",
            "",
            f"- restarts: {under['restarts']}",
            f"- rows when backup() was called: {under['rows_at_call']:,}; rows in the backup: "
            f"{under['rows_in_backup']:,} (highest id {under['max_id_in_backup']:,}); rows at "
            f"the first progress report: {under['rows_at_first_progress']:,}; rows when it "
            f"returned: {under['rows_when_done']:,}",
            f"- task counts in the manifest equal the counts in the file: "
            f"{under['manifest_counts'] == under['backup_counts']} ({under['backup_counts']})",
            "- verdict: " + ("consistent snapshot of the state at its start"
                             if under["consistent"] else "INCONSISTENT"),
            "",
        ]
    if details.get("stages"):
        lines += ["## Where the time went (stages as the engine reported them, seconds)", "",
                  "Each stage lasts until the next one is first reported. SQLite's check of a "
                  "file runs beside its SHA-256, so \"Checking the copy\" or \"Checking "
                  "integrity\" is reported first and \"Computing the checksum\" then holds "
                  "both, and for a backup the fsync too.", ""]
        for operation, stages in details["stages"].items():
            parts = "; ".join(f"{stage} {seconds:.2f}" for stage, seconds in stages)
            lines.append(f"- {operation}: {parts}")
        lines.append("")
    lines += ["## Load average (1, 5, 15 min) as each step began", ""]
    lines += [f"- {step}: {load}" for step, load in details.get("load", [])]
    lines.append("")
    return "\n".join(lines)
