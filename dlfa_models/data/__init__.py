"""Task data: the task definitions, the hub, file and sample loaders, tokenization into model inputs."""
from .loaders import PAIR_COLUMNS, PAIR_HEADER_NAMES, SCORE_RANGE, UD_TREEBANKS, find_file, limit, load_split
from .tasks import NER_LABELS, TASKS, UPOS_LABELS, DataError, Task

__all__ = ["DataError", "NER_LABELS", "PAIR_COLUMNS", "PAIR_HEADER_NAMES", "SCORE_RANGE", "TASKS", "Task",
           "UD_TREEBANKS", "UPOS_LABELS", "find_file", "limit", "load_split"]
