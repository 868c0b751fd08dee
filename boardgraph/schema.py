"""Names every stage shares: the edge types of the Pin-Board graph and the query groups of the
evaluation protocol. Defined once here; the stages import them (``boardgraph.graph`` re-exports
the edge types).
"""
from __future__ import annotations

__all__ = ["EdgeType", "MEMBER", "HAS", "GROUPS", "GROUP_LABELS"]

#: ``(source node type, relation, destination node type)``.
EdgeType = tuple[str, str, str]
#: A pin is on a board.
MEMBER: EdgeType = ("pin", "in", "board")
#: A board holds a pin (the reverse of :data:`MEMBER`).
HAS: EdgeType = ("board", "has", "pin")

#: Query groups of board completion (:mod:`boardgraph.evaluation.completion`): ``warm`` held-out
#: memberships of pins seen in training, ranked among every pin that is not cold; ``cold`` held-out
#: pins never seen in training, ranked among the cold pins; ``cold_all``, the same queries ranked
#: among all pins.
GROUPS: tuple[str, ...] = ("warm", "cold", "cold_all")
#: How tables name each group.
GROUP_LABELS: dict[str, str] = {"warm": "warm", "cold": "cold among new items", "cold_all": "cold among all pins"}
