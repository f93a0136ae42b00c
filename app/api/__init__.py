"""The REST API (``/api/v1``): JSON beside the vendor APIs, on the same admission.

``web`` (the blueprint and its routes), ``service`` (what each route does), ``schemas``
(pydantic bodies), ``spec`` (the OpenAPI 3.1 document, built from the routes and the
schemas), ``errors`` (the stable error codes), ``keys`` and ``models`` (API keys), ``cli``
(``smsagg apikey``). See ``docs/rest-api.md``.

Kept import-light: ``app.db.models`` imports :mod:`app.api.models`.
"""
