"""Schedules: the recurring jobs an administrator schedules, for the system's scheduler.

Owns the jobs and their command lines, their Task Scheduler XML, cron and systemd forms,
and ``schtasks.exe``. May use ``archive`` (the default archive folder), ``settings`` and the
loose core modules; nothing in the engine depends on it.
"""
