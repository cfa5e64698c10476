"""genro-asgi-mcp: chosen routes of a genro-asgi server as MCP tools, over Streamable HTTP."""

from .config import McpConfig
from .plugin import VERSION, McpPlugin
from .tools import Tool, ToolCatalog, tool_name

__version__ = VERSION

__all__ = ["McpConfig", "McpPlugin", "Tool", "ToolCatalog", "__version__", "tool_name"]
