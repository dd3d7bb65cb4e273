"""What an ``env.py`` run does around Alembic.

options, the plan, the production gate, the lock, the session and its timeouts, applying each
revision, and what a failure left behind.
"""
