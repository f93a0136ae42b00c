"""MM7 (3GPP TS 23.140): the MMSC simulator. The codec is :mod:`app.domain.mm7`, the
carrier connector :mod:`app.connectors.mm7`."""
