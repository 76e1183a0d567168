"""labkit's version, one place (``pyproject.toml`` repeats it for packaging).

Examples
--------
>>> __version__.count(".")
2
"""

__version__ = "0.1.0"
