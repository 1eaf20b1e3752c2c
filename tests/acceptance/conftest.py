"""The dashboard fixtures, for the tests of this folder."""

from tests.web_fixtures import web_config, web_url  # noqa: F401
