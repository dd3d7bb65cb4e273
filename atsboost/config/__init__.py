"""Configuration: the environment, read once into frozen settings that everything else receives."""

from atsboost.config.settings import Environment, Settings, get_settings, load_settings

__all__ = ["Environment", "Settings", "get_settings", "load_settings"]
