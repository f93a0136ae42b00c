"""The operator console at ``/console``: server-rendered pages for the people who run
the gateway (docs/console.md).

* :mod:`app.console.models`, :mod:`app.console.operators`: operators, their own logins
  (not API accounts), scrypt password hashes.
* :mod:`app.console.auth`: the signed session cookie (only under ``/console``), the
  session's secret key, CSRF tokens, login and logout.
* :mod:`app.console.views`: what the pages show, gathered with the same service
  functions the CLI uses (``describe_message``, the callbacks service, the bulk
  batches), with every secret left out.
* :mod:`app.console.web`: the blueprint (thin views) and :func:`app.console.web.install`.
* :mod:`app.console.cli`: ``smsagg operator ...`` and ``smsagg status``.
"""
