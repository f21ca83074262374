"""Helpers for the schedule tests: Windows command-line splitting and the CLI's commands."""

from __future__ import annotations

import argparse

from queue_admin_gui.cli import build_parser


def split_windows_command_line(line: str) -> list[str]:
    """Split ``line`` as the Microsoft C runtime does when a program starts.

    Backslashes are literal unless they precede a double quote: 2n backslashes then a quote
    give n backslashes and toggle quoting; 2n+1 give n backslashes and a literal quote.
    Inside quotes, a doubled quote is a literal quote.
    """
    words: list[str] = []
    current: list[str] = []
    started = quoted = False
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            end = index
            while end < len(line) and line[end] == "\\":
                end += 1
            count = end - index
            if end < len(line) and line[end] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    end += 1
            else:
                current.append("\\" * count)
            index, started = end, True
        elif char == '"':
            if quoted and line[index + 1:index + 2] == '"':
                current.append('"')
                index += 2
            else:
                quoted, started, index = not quoted, True, index + 1
        elif char in " \t" and not quoted:
            if started:
                words.append("".join(current))
                current, started = [], False
            index += 1
        else:
            current.append(char)
            started, index = True, index + 1
    if started:
        words.append("".join(current))
    return words


def cli_command_names() -> set[str]:
    """The sub-commands queue-admin-cli knows today."""
    for action in build_parser()._actions:  # noqa: SLF001 - argparse keeps them only here
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()
