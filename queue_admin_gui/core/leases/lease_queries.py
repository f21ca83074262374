"""The SQL behind :mod:`queue_admin_gui.core.leases.manager`, written out in full in one place.

Nothing here is assembled from input: values travel as parameters. 'leased' and
'processing' are in flight, 'failed' and 'dead_letter' dead (both spellings exist in real
files). Times are UTC text; every comparison goes through SQLite's ``datetime()`` so that
text written as ``YYYY-MM-DD HH:MM:SS`` or with a 'T' and fractions compares alike.

The rule for an abandoned task (docs/ARCHITECTURE.md, data-safety rule 8) is one SQL fragment,
:data:`ABANDONED`, used by the listing, the preview and the guarded UPDATE alike. Given
``:cutoff`` (now minus the timeout, read once), a task is abandoned when

* its lease ran out before the cutoff (a task without a lease counts from its claim), and
* its worker is silent: no ``workers`` row for ``locked_by`` has a heartbeat at or after
  the cutoff. A worker without a row, or a task without ``locked_by``, counts as silent.

A task whose lease ran out before the cutoff while its worker still heartbeats is not
abandoned: the worker is alive but failed to renew its lease. It is listed apart
(:data:`EXPIRED_WORKER_ALIVE`) and never requeued by a stale-lease cleanup.
"""

from __future__ import annotations

#: The moment a task's lease ran out; without a lease, the claim (then the last update).
LEASE_END = ("COALESCE(task_queue.lease_until_utc, task_queue.reserved_at_utc, "
             "task_queue.updated_at_utc)")

IN_FLIGHT = "task_queue.status IN ('leased', 'processing')"

LEASE_OVERDUE = f"datetime({LEASE_END}) < :cutoff"

#: The task's worker heartbeat at or after :cutoff (a bad heartbeat text is never alive).
WORKER_ALIVE = """EXISTS (SELECT 1 FROM workers
        WHERE workers.worker_id = task_queue.locked_by
          AND datetime(workers.heartbeat_utc) >= :cutoff)"""

ABANDONED = f"{LEASE_OVERDUE} AND NOT {WORKER_ALIVE}"

EXPIRED_WORKER_ALIVE = f"{LEASE_OVERDUE} AND {WORKER_ALIVE}"

CLOCK = "SELECT datetime('now'), datetime('now', :offset)"

#: How far each in-flight task's lease and worker are gone, and the tasks they are read from.
_LEASE_STATE = f"""
       (julianday(:now) - julianday({LEASE_END})) * 86400.0 AS overdue,
       COALESCE({LEASE_OVERDUE}, 0) AS lease_overdue,
       COALESCE(datetime(workers.heartbeat_utc) >= :cutoff, 0) AS worker_alive,
       workers.worker_id IS NOT NULL AS worker_known,
       (julianday(:now) - julianday(workers.heartbeat_utc)) * 86400.0 AS heartbeat_age
FROM task_queue
LEFT JOIN workers ON workers.worker_id = task_queue.locked_by
WHERE {IN_FLIGHT}"""

_SELECT_LEASED = f"""
SELECT task_queue.id, task_queue.type, task_queue.status, task_queue.locked_by,
       task_queue.lease_until_utc, task_queue.reserved_at_utc, task_queue.attempts,
       task_queue.max_attempts,{_LEASE_STATE}"""  # noqa: S608 - this module's constants only

SELECT_IN_FLIGHT = _SELECT_LEASED + "\nORDER BY overdue DESC, task_queue.id"

SELECT_ABANDONED = _SELECT_LEASED + f"\n  AND {ABANDONED}\nORDER BY task_queue.id"

SELECT_EXPIRED_WORKER_ALIVE = (_SELECT_LEASED + f"\n  AND {EXPIRED_WORKER_ALIVE}"
                               "\nORDER BY task_queue.id")

_CHOSEN = "task_queue.id IN (SELECT value FROM json_each(:ids))"

SELECT_CHOSEN = _SELECT_LEASED + f"\n  AND {_CHOSEN}\nORDER BY task_queue.id"

#: How many tasks are in flight, abandoned, and overdue with a live worker (one pass).
COUNT_LEASES = f"""
SELECT count(*), COALESCE(sum({ABANDONED}), 0), COALESCE(sum({EXPIRED_WORKER_ALIVE}), 0)
FROM task_queue WHERE {IN_FLIGHT}
"""  # noqa: S608 - constants only

#: Chooses the tasks to requeue: abandoned as of :cutoff, or the ids in the JSON array :ids
#: (then, when :spare_cutoff is set, only those whose worker is silent since it).
REQUEUE_GUARD = f"""
{IN_FLIGHT}
AND ((:cutoff IS NOT NULL AND {ABANDONED})
     OR (:ids IS NOT NULL AND task_queue.id IN (SELECT value FROM json_each(:ids))
         AND (:spare_cutoff IS NULL OR NOT EXISTS (
             SELECT 1 FROM workers WHERE workers.worker_id = task_queue.locked_by
               AND datetime(workers.heartbeat_utc) >= :spare_cutoff))))
"""  # noqa: S608 - constants only

#: The in-flight tasks a stale-lease requeue leaves alone because their worker is alive.
SELECT_SPARED_IDS = f"""
SELECT task_queue.id FROM task_queue
WHERE {IN_FLIGHT} AND :cutoff IS NOT NULL AND {EXPIRED_WORKER_ALIVE}
ORDER BY task_queue.id
"""  # noqa: S608 - constants only

LOG_REQUEUE = """
INSERT INTO task_logs (task_id, at_utc, level, message, details)
SELECT id, :now, 'WARNING',
       CASE WHEN attempts + 1 >= max_attempts
            THEN printf('Lease held by worker ''%s'' expired; moved to dead letters after '
                        || '%d attempts.', COALESCE(locked_by, '(unknown)'), attempts + 1)
            ELSE printf('Lease held by worker ''%s'' expired; task requeued (attempt %d of %d).',
                        COALESCE(locked_by, '(unknown)'), attempts + 1, max_attempts)
       END,
       json_object('action', CASE WHEN attempts + 1 >= max_attempts
                                  THEN 'dead_letter' ELSE 'requeue' END,
                   'worker', locked_by, 'previous_status', status,
                   'lease_until_utc', lease_until_utc, 'attempts', attempts + 1)
FROM task_queue
WHERE """ + REQUEUE_GUARD

UPDATE_REQUEUE = """
UPDATE task_queue SET
    attempts = attempts + 1,
    status = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE 'queued' END,
    error_message = CASE WHEN attempts + 1 >= max_attempts
        THEN printf('Lease expired %d times (worker died); moved to dead letters after %d '
                    || 'attempts.', attempts + 1, max_attempts)
        ELSE error_message END,
    finished_at_utc = CASE WHEN attempts + 1 >= max_attempts THEN :now ELSE finished_at_utc END,
    run_after_utc = CASE WHEN attempts + 1 >= max_attempts THEN run_after_utc ELSE :now END,
    lease_until_utc = NULL, reserved_at_utc = NULL, processing_started_utc = NULL,
    locked_by = NULL, updated_at_utc = :now
WHERE """ + REQUEUE_GUARD + """
RETURNING id, status
"""

#: The in-flight tasks as the Leases tab lists them: one row per task, the lease end as
#: seconds since 1970 (NULL when the stored text is not a time), judged as :data:`ABANDONED`.
SELECT_IN_FLIGHT_COLUMNS = f"""
SELECT task_queue.id, task_queue.type, task_queue.status, task_queue.locked_by,
       (julianday(task_queue.lease_until_utc) - 2440587.5) * 86400.0 AS lease_until_epoch,
       task_queue.lease_until_utc, task_queue.attempts, task_queue.max_attempts,{_LEASE_STATE}
ORDER BY overdue DESC, task_queue.id"""  # noqa: S608 - constants only

#: What a stale-lease requeue would do to each overdue task, by id: 1 back to the queue,
#: 2 to the dead letters (no attempts left), 3 left alone (its worker still heartbeats).
SELECT_REQUEUE_PLAN = f"""
SELECT task_queue.id,
       CASE WHEN NOT ({ABANDONED}) THEN 3
            WHEN task_queue.attempts + 1 >= task_queue.max_attempts THEN 2
            ELSE 1 END AS action
FROM task_queue
WHERE {IN_FLIGHT} AND (({ABANDONED}) OR ({EXPIRED_WORKER_ALIVE}))
ORDER BY task_queue.id"""  # noqa: S608 - constants only

COUNT_DEAD = "SELECT count(*) FROM task_queue WHERE status IN ('failed', 'dead_letter')"

SELECT_WORKERS = """
SELECT w.worker_id, w.capabilities, w.heartbeat_utc,
       (julianday('now') - julianday(w.heartbeat_utc)) * 86400.0 AS age,
       COALESCE(held.tasks, 0) AS tasks
FROM workers AS w
LEFT JOIN (SELECT locked_by, count(*) AS tasks FROM task_queue
           WHERE status IN ('leased', 'processing') GROUP BY locked_by) AS held
       ON held.locked_by = w.worker_id
ORDER BY age, w.worker_id
"""

SELECT_DEAD = """
SELECT id, type, status, attempts, max_attempts, error_message, finished_at_utc, updated_at_utc
FROM task_queue
WHERE status IN ('failed', 'dead_letter')
ORDER BY updated_at_utc DESC, id DESC
LIMIT :limit
"""

_RETRY_GUARD = """
status IN ('failed', 'dead_letter') AND id IN (SELECT value FROM json_each(:ids))
"""

LOG_RETRY = """
INSERT INTO task_logs (task_id, at_utc, level, message, details)
SELECT id, datetime('now'), 'INFO',
       'Retried from dead letters by an administrator; attempts reset to 0.',
       json_object('action', 'retry', 'previous_status', status,
                   'previous_attempts', attempts, 'previous_error', error_message)
FROM task_queue
WHERE """ + _RETRY_GUARD

UPDATE_RETRY = """
UPDATE task_queue SET
    status = 'queued', attempts = 0, error_message = NULL, finished_at_utc = NULL,
    lease_until_utc = NULL, reserved_at_utc = NULL, processing_started_utc = NULL,
    locked_by = NULL, run_after_utc = datetime('now'), updated_at_utc = datetime('now')
WHERE """ + _RETRY_GUARD
