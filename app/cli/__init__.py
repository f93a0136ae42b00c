"""The ``smsagg`` command line. The root group is :mod:`app.cli.main` (the console
script's entry point); each area's commands are in its own module, here or in its
feature slice (``app/bulk/cli.py``, ``app/gms/cli.py``, ...)."""
