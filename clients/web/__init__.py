"""The web app for people (issue 14), mounted at /app by the API (clients/api/app.py)."""

from clients.web.app import create_web

__all__ = ["create_web"]
