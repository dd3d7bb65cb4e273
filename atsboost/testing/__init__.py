"""Testing an application that uses atsboost: its pytest plugin, and migration tests to import.

The plugin (``atsboost.testing.plugin``, the ``pytest11`` entry point ``atsboost``)
gives a project's tests a migrated database and a rolled-back transaction per test;
``from atsboost.testing.migrations import *`` adds the tests of the project's own
revisions. docs/testing.md shows both.
"""
