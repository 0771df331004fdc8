"""What a running apply/delete may use besides AWS: time, cancellation, progress."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from taskmgmt_deploy.core.clock import Clock, SystemClock


@dataclass
class StepContext:
    clock: Clock = field(default_factory=SystemClock)
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[str], None] = lambda message: None
    token: str | None = None  # idempotency token recorded with the intent to create
    force: bool = False
