"""Leases: in-flight tasks, stale leases, requeue, dead letters and workers.

Owns the lease SQL, the manager that requeues and retries, and the compact lists the
Leases tab shows. May use ``files``, ``settings`` and the loose core modules (the database
connection, the write session); ``measurements``, ``restore`` and ``rescue`` build on it.
"""
