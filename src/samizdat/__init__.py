"""Samizdat: a self-hostable messenger whose operators cannot betray its users."""

__version__ = "0.1.0"
__all__ = ["__version__"]
