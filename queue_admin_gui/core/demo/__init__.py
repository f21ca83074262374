"""Demo: a real-schema queue file marked as a demo, and simulated workers writing to it.

Owns the demo queue's file and the worker threads that make it look alive. May use
``settings``, ``files`` and the loose core modules; nothing in the engine depends on it.
"""
