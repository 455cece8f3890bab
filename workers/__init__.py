"""Worker runtime: the Celery app built from the Flask app, queues and routing, process signals."""
