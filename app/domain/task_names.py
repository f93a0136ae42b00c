"""The names of the core's Celery tasks, written once: the tasks register under them,
the stages push task messages by them, ``celeryconfig`` routes and schedules them.

The MT drain and deliver tasks are named by their priority
(:attr:`app.domain.priorities.Priority.task_name`); a feature slice names its own
(the bulk area's: :mod:`app.bulk.payloads`)."""

STAGE_SWEEP_TASK = "smsagg.stages.sweep"
INBOUND_DRAIN_TASK = "smsagg.inbound.drain"
INBOUND_REMATCH_TASK = "smsagg.inbound.rematch"
ID_FILTER_TASK = "smsagg.idfilter.ensure"
SEND_BATCH_TASK = "smsagg.callbacks.send_batch"
SEND_ONE_TASK = "smsagg.callbacks.send_one"
CALLBACK_SWEEP_TASK = "smsagg.callbacks.sweep"
CALLBACK_TASKS = (SEND_BATCH_TASK, SEND_ONE_TASK, CALLBACK_SWEEP_TASK)
