"""structlog set-up: JSON when not on a terminal, readable on one.

Workflow code never logs through structlog (it is not replay-safe); it uses `workflow.logger`, whose
records flow through the standard library into the same renderer with workflow ids attached.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog
from temporalio import activity, workflow


def configure_logging(log_format: str = "auto", level: int = logging.INFO, path: Path | None = None) -> None:
    """Route structlog and the standard library through one renderer, to stderr or to `path`."""
    json_output = log_format == "json" or (log_format == "auto" and (path is not None or not sys.stderr.isatty()))
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _lift_temporal_extra,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # We lift the SDK's workflow context into fields (below); it need not be repeated inside the message.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    handler: logging.Handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK's own chatter about pollers is noise at INFO.
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    logging.getLogger("temporalio.workflow").setLevel(level)
    logging.getLogger("temporalio.activity").setLevel(level)


def _lift_temporal_extra(
    _logger: object, _method: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Bind workflow_id / activity ids that the Temporal SDK attaches to stdlib records.

    The SDK puts `temporal_workflow` / `temporal_activity` dicts on the LogRecord; we flatten the
    ids so every line of one exchange can be found by `workflow_id` (and `exchange_id`).
    """
    record = event_dict.get("_record")
    if record is None:
        return event_dict
    for attr in ("temporal_workflow", "temporal_activity"):
        details = getattr(record, attr, None)
        if isinstance(details, dict):
            workflow_id = details.get("workflow_id")
            if workflow_id:
                event_dict.setdefault("workflow_id", workflow_id)
                if str(workflow_id).startswith("exchange:"):
                    event_dict.setdefault("exchange_id", str(workflow_id).removeprefix("exchange:"))
            for key in ("workflow_type", "activity_type", "attempt", "run_id"):
                if key in details:
                    event_dict.setdefault(key, details[key])
    return event_dict


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
