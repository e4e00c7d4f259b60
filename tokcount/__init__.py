"""tokcount: exact token counts for LLM training data, and the training plan they imply."""

__version__ = "0.1.0"

from .errors import FileCheckError, PlanError, TokcountError, UsageError  # noqa: E402
from .scan import TextOptions, TokenCheckOptions, TrainingOptions, scan  # noqa: E402


def plan(*args, **kwargs):
    """Trainer math from a per-sequence sizes array or a token total: see tokcount.planning.make_plan."""
    from .planning import make_plan

    return make_plan(*args, **kwargs)


__all__ = ["scan", "plan", "TextOptions", "TrainingOptions", "TokenCheckOptions", "TokcountError", "UsageError", "PlanError", "FileCheckError"]
