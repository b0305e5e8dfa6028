"""The capture API (FastAPI): interactions, feedback, user data requests, readiness. See app.py."""
