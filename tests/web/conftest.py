"""The web app's fixtures: the API's (the app over the session's real stack) reused."""

from tests.api.conftest import evidence_dir as evidence_dir
from tests.api.conftest import make_api as make_api
from tests.api.conftest import partnership as partnership
from tests.workflows.conftest import dev_client as dev_client
