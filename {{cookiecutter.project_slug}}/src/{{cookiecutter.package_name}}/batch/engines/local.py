"""The local engine: a shard's pieces scored one after another in this process."""

from collections.abc import Callable
from pathlib import Path

from ..dataset import Piece
from ..output import PartResult
from ..parts import Scoring, score_piece
from ..progress import Progress


def score_in_process(
    pieces: list[Piece], target: Callable[[Piece], Path], scoring: Scoring, progress: Progress
) -> list[PartResult]:
    return [score_piece(piece, scoring, target(piece), progress.add) for piece in pieces]
