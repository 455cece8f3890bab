"""Infrastructure shared by the API processes and the workers: settings, logging, Redis, context."""
