"""genro-asgi-executor: Thread/process pools and a TaskManager for long jobs."""

from .plugin import ExecutorConfig, ExecutorPlugin

__version__ = "0.1.0"

__all__ = ["ExecutorConfig", "ExecutorPlugin", "__version__"]
