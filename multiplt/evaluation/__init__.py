"""Scoring: pass@k over results folders (`passk`) and run-folder naming (`runs`)."""
