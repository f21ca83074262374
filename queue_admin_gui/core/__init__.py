"""The Qt-free engine: everything that touches a queue database.

Scripts written against the original maintenance API import from here:
``QueueDatabase``, ``QueueBackup``, ``BackupInfo``, ``QueueMaintenance``,
``QueueBackupError`` and ``QueueMaintenanceError`` keep the original signatures.
"""

from .backups.backup_store import BackupResult
from .backups.manifest import BackupInfo, BackupManifest
from .backups.verify import VerifyReport
from .compat import QueueBackup, QueueMaintenance
from .database import QueueDatabase, check_queue_schema, connect, open_read_only
from .errors import (
    ConfigError,
    ErrorKind,
    NotAQueueDatabaseError,
    OperationCancelled,
    QueueAdminError,
    QueueBackupError,
    QueueDatabaseError,
    QueueMaintenanceError,
)
from .leases.manager import DeadTask, LeasedTask, LeaseManager, RequeueResult, WorkerInfo
from .restore.writing import RestoreResult
from .settings.config import MaintenanceConfig

__all__ = [
    "BackupInfo",
    "BackupManifest",
    "BackupResult",
    "ConfigError",
    "DeadTask",
    "ErrorKind",
    "LeaseManager",
    "LeasedTask",
    "MaintenanceConfig",
    "NotAQueueDatabaseError",
    "OperationCancelled",
    "QueueAdminError",
    "QueueBackup",
    "QueueBackupError",
    "QueueDatabase",
    "QueueDatabaseError",
    "QueueMaintenance",
    "QueueMaintenanceError",
    "RequeueResult",
    "RestoreResult",
    "VerifyReport",
    "WorkerInfo",
    "check_queue_schema",
    "connect",
    "open_read_only",
]
