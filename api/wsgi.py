"""gunicorn entry point: ``gunicorn api.wsgi:app``."""

from api import create_app
from api.server_errors import install

app = create_app()
# What gunicorn refuses before the app sees it is answered in the envelope too.
install(app)
