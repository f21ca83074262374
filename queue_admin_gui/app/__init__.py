"""The application layer: Qt objects without widgets between the window and the engine.

The session (what the window works on), the job runner, the sampler, the message service and
the garbage-collector guard. Widgets in ``ui/`` use these; these use only the engine in
``core/``.
"""
