"""The runtime: the engine and its pool, retry, health monitoring, leak detection, shutdown."""
