"""Carrier connectors: one small interface (:class:`~app.connectors.base.Connector`)
with an SMPP 3.4, an HTTP and an in-memory implementation."""
