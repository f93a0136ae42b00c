"""``smsagg bench peers``: smsagg and Kannel under the same load, against the same SMSC,
in the same run, with every figure for both and their ratio (docs/performance.md).

What it promises:

* **The load**: wrk with ``send.lua`` (shipped in this package), ``--connections``
  keep-alive connections (64), one wrk thread, ``--seconds`` (20) after a 3 s warm-up
  whose backlog is drained first. Every request has a message id of its own, and its
  120-character text starts with that id. smsagg gets ``POST /httpapi/receiver`` and
  counts ``result_code=0``; Kannel gets smsbox's ``GET /cgi-bin/sendsms`` and counts
  HTTP 202 ``0: Accepted`` (or ``3: Queued``).
* **The peers**, one after the other, each with a fresh SMSC (and receiver): smsagg set
  up as a new user does (``peers.smsagg``: ``smsagg up --no-smsc-sim`` with its embedded
  Redis, the account, carrier and route through the CLI); Kannel's bearerbox and
  smsbox with a generated kannel.conf (``peers.kannel``), when Debian's ``kannel`` is
  installed; otherwise one line says so and smsagg runs alone, without ratios.
* **The SMSC** is the project's simulator in a process of its own (``peers.smsc``),
  its capacity measured first and printed. With DRs it sends a DELIVRD receipt 1 s
  after each submit_sm, and ``app.bench.receiver`` counts the DR callbacks (smsagg's
  POSTs and Kannel's ``dlr-url`` GETs) per message_state and message id.
  ``--dlr``: smsagg's two callbacks (state 6, then the final state) against Kannel's
  ``dlr-mask=11`` (SMSC acknowledged, then final); ``--dlr-final-only``: against
  ``dlr-mask=3`` (final only, the reference harness's setting). smsagg sends both
  kinds unless ``--dr-mask final`` makes its account final-only (one callback per
  message, as Kannel's ``dlr-mask=3``); ``--dr-mask both`` runs an smsagg leg of
  each, and reports the final-only leg against the every-state leg of the same run
  and against Kannel.
* **Figures** (``figures.py``), per peer and as smsagg/Kannel: HTTP accepted/s during
  the load; submit_sm/s at the SMSC during the load; the drain time; end to end
  sustained (delivered / (load + drain)); HTTP p50/p99/max; the share of seconds with
  no submit_sm while messages were queued; with DRs the final callbacks/s during the
  load and incl. their drain, both kinds, duplicates and missing ones; CPU% of every
  process during the load; CPU ms per message of each process over load + drain, and
  for smsagg per stage against the budget derived from Kannel's figures of the run;
  and the targets (docs/performance.md), each met or not.
* **Exactly once**: at the end, every accepted message reached the SMSC exactly once
  (per id, at the SMSC; for smsagg also against its message log), printed as a
  PASS/FAIL line; ``result["passed"]`` is False (the command exits 1) otherwise.
* Everything listens on 127.0.0.1 (checked), on free ports; every process is stopped by
  its own pid; every wait is bounded; files go to one temporary folder, removed at
  the end (kept, and named, when a leg fails).
"""
