"""Topic models."""
from .lda import LatentDirichletAllocation

__all__ = ["LatentDirichletAllocation"]
