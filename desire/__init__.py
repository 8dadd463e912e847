"""Shared pieces of the desire-backpropagation toolkit: configuration and datasets."""

from desire.config import PRESETS, Config, ConfigError, Formats, Hardware, Network, load_config

__all__ = ["PRESETS", "Config", "ConfigError", "Formats", "Hardware", "Network", "load_config"]
