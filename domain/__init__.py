"""Framework-free business rules shared by the API and the Celery tasks."""
