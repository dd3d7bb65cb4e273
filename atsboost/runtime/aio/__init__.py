"""The runtime's asyncio twins, module for module: ``aio.retry`` is ``runtime.retry`` awaited.

Each twin keeps only the waiting (the event loop instead of threads and sleeps); the
decisions and sequences it carries out are its sync module's (ARCHITECTURE.md).
"""
