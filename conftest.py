"""The suite's pytest plugin lives in fixtures/plugin.py (options, fixtures, and the plugin classes it registers)."""

pytest_plugins = ["fixtures.plugin"]
