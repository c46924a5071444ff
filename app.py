"""WSGI entry point: `flask --app app run` or `gunicorn app:app`."""

import gc

from portail import create_app

app = create_app()
# The modules and objects loaded so far live as long as the process: move them out of the garbage
# collector's generations, so that its full collections (which pause a request) no longer scan them.
gc.freeze()
