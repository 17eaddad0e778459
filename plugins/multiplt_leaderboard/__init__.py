"""The leaderboard pages of the Airflow UI. The leaderboard: pass@k per model x language x epoch
on one benchmark at a time (``?benchmark=``; by default the one with the most rows) from the
results store (``[multiplt] results_store``), a sortable table whose scores link to each
run's per-problem results, and a server-side SVG plot of pass@1 by epoch per language, experiment
and model. The Datasets page: every dataset under ``[multiplt] data_uri`` with its funnel chart,
size, model, DAG runs and Hub repo. ``app.py`` is the FastAPI app (mounted at ``/leaderboard`` by
``multiplt_leaderboard_plugin.py``); ``board.py`` shapes the rows; ``plot.py`` and
``funnel_chart.py`` draw the SVGs; ``page.py``, ``run_page.py`` and ``datasets_page.py`` render
the HTML; finding and reading the datasets and run folders is in ``multiplt.results``. Every
asset is served by the plugin itself (no CDN)."""
