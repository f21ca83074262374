"""The Qt-free engine: everything that touches a queue database.

Scripts written against the original maintenance API import from here.
"""

from .database import QueueDatabase, check_queue_schema, connect, open_read_only
from .errors import (
    ErrorKind,
    NotAQueueDatabaseError,
    OperationCancelled,
    QueueAdminError,
    QueueBackupError,
    QueueDatabaseError,
    QueueMaintenanceError,
)

__all__ = [
    "ErrorKind",
    "NotAQueueDatabaseError",
    "OperationCancelled",
    "QueueAdminError",
    "QueueBackupError",
    "QueueDatabase",
    "QueueDatabaseError",
    "QueueMaintenanceError",
    "check_queue_schema",
    "connect",
    "open_read_only",
]
