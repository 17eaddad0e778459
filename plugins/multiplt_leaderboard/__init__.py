"""The leaderboard page of the Airflow UI: pass@k per model x language x epoch from the results
store (``[multiplt] results_store``), a sortable table and a server-side SVG plot of pass@1 by
epoch per language. ``app.py`` is the FastAPI app (mounted at ``/leaderboard`` by
``multiplt_leaderboard_plugin.py``); ``board.py`` shapes the rows; ``plot.py`` draws the SVG;
``page.py`` renders the HTML. Every asset is served by the plugin itself (no CDN)."""
