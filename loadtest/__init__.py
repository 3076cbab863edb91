"""Load test and generated hostile input against a live shop (see run.py)."""
