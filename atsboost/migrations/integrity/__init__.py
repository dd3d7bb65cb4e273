"""Applied revisions against their files, without loading Alembic where possible.

the revision files and their hashes (``sources``), the recorded checksums, ``status``
(``current``), and ``validate`` and ``repair`` (``records``).
"""
