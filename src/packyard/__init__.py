"""packyard: a private Python package index, wire-compatible with devpi."""

__version__ = "0.1.0"
