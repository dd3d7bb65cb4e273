"""The frameworks teams run atsboost in, each wired in a few lines: FastAPI, Flask, gunicorn.

Each module imports its framework, so import the one you use (and install its extra):
``atsboost.integrations.fastapi``, ``atsboost.integrations.flask`` and
``atsboost.integrations.gunicorn``.
"""
