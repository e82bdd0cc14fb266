"""Driving side: the Flask app, RQ jobs and worker start-up, the CLI and the container that wires them."""
