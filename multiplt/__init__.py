"""MultiPL-T Platform: adapt code LLMs to low-resource programming languages.

The library never imports Airflow; every step is a ``multiplt <command>`` over storage URIs.
"""

__version__ = "0.1.0"
