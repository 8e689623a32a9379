import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "consentry.settings")
site = get_wsgi_application()  # sets Django up

from consentry.web.machines import Application  # noqa: E402

application = Application(site)

# The opt-out model trains in the background while the server starts, not on the first inbound text.
from consentry.keywords.model import warm_up  # noqa: E402

warm_up()
