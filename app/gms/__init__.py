"""Genesys Mobile Services-compatible mobile services (seed 003; docs/gms.md).

* :mod:`app.gms.domain`   pure core: parameters, errors, access codes, chat values
* :mod:`app.gms.config`   ``SMSAGG_HOME/gms.ini`` (custom services, resource groups)
* :mod:`app.gms.models`   database records (apps, agents, resource groups)
* :mod:`app.gms.registry` credentials and groups, cached; management functions
* :mod:`app.gms.store`    Redis: services, reservations (atomic Lua), storage, chats
* :mod:`app.gms.services` the API's operations
* :mod:`app.gms.cometd`   the Bayeux protocol (pure) for pushed chat events
* :mod:`app.gms.http`     identity and error replies shared by both HTTP front ends
* :mod:`app.gms.web`      the Flask blueprint; :mod:`app.gms.cli` ``smsagg gms``, ``smsagg cometd``
* :mod:`app.gms.cometd_server` ``smsagg cometd``: the asyncio server of CometD long-polls

This package imports nothing from Flask at import time except through ``web``, and
nothing from aiohttp except through ``cometd_server``.
"""
