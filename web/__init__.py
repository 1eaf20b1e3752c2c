"""The dashboard and producer API."""
