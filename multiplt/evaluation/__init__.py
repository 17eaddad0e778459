"""Scoring: pass@k over results folders (`passk`) and the run folder itself (`run_folder`)."""
