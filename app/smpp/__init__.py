"""SMPP 3.4: the PDU codec, the ESME client session and pool, and the SMSC simulator."""
