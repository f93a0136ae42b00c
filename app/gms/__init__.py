"""Genesys Mobile Services-compatible mobile services (seed 003; docs/gms.md).

* :mod:`app.gms.domain`   pure core: parameters, errors, access codes, chat values
* :mod:`app.gms.config`   ``SMSAGG_HOME/gms.ini`` (custom services, resource groups)
* :mod:`app.gms.models`   database records (apps, agents, resource groups)
* :mod:`app.gms.registry` credentials and groups, cached; management functions
* :mod:`app.gms.store`    Redis: services, reservations (atomic Lua), storage, chats
* :mod:`app.gms.services` the API's operations
* :mod:`app.gms.cometd`   Bayeux long-polling server for pushed chat events
* :mod:`app.gms.web`      the Flask blueprint; :mod:`app.gms.cli` ``smsagg gms``

This package imports nothing from Flask at import time except through ``web``.
"""
