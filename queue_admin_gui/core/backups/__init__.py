"""Backups: taking, sealing, verifying, listing and pruning backup files.

Owns the consistent snapshot copy, the manifest beside each backup, the backup folder's
housekeeping (listing, pruning, leftovers, the claims of running backups) and the check
that a backup is what its manifest says. May use ``trust`` (reading a file nobody vouches
for), ``files``, ``settings`` and the loose core modules; never ``restore``, ``archive``,
``rescue`` or ``measurements``, which build on it.
"""
