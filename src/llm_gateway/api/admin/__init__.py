"""The admin API (``/admin/...``, admin key only): virtual keys, usage and spend."""

from llm_gateway.api.admin.routes import AdminState, admin_routes

__all__ = ["AdminState", "admin_routes"]
