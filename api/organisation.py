"""The organisation tree: district centre → street sub-centres → community workstations.

Community workstations own grid cells; cameras stand in a grid cell; units belong to any
centre. A case is routed to the ancestor of the camera's workstation at the tier its
severity asks for, and escalates to that centre's parent. Scopes are subtrees: a user of a
street sub-centre sees the street and its communities, nothing else.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.orm import Centre, GridCell, Unit
from api.settings import TIERS, CentreSpec, OrganisationSpec
from camera_adapters.spec import Location


@dataclass(frozen=True)
class CentreNode:
    id: int
    code: str
    name: str
    tier: str
    parent_id: int | None


@dataclass
class OrgTree:
    """A snapshot of the centres (hundreds of rows: cheap to load per request)."""

    nodes: dict[int, CentreNode] = field(default_factory=dict)
    children: dict[int | None, list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> OrgTree:
        tree = cls()
        rows = session.execute(
            select(Centre.id, Centre.code, Centre.name, Centre.tier, Centre.parent_id)
        )
        for row in rows:
            node = CentreNode(*row)
            tree.nodes[node.id] = node
            tree.children.setdefault(node.parent_id, []).append(node.id)
        return tree

    def subtree(self, centre_id: int) -> set[int]:
        found, stack = set(), [centre_id]
        while stack:
            current = stack.pop()
            if current in found:
                continue
            found.add(current)
            stack.extend(self.children.get(current, ()))
        return found

    def ancestors(self, centre_id: int) -> list[int]:
        """The centre itself, then its parent, … up to the district (cycle-safe)."""
        chain: list[int] = []
        current: int | None = centre_id
        while current is not None and current in self.nodes and current not in chain:
            chain.append(current)
            current = self.nodes[current].parent_id
        return chain

    def at_tier(self, centre_id: int, tier: str) -> int:
        """The ancestor at ``tier``; the nearest one above when the tree skips that tier."""
        wanted = TIERS.index(tier)
        chain = self.ancestors(centre_id)
        for ancestor in chain:
            if TIERS.index(self.nodes[ancestor].tier) <= wanted:
                return ancestor
        return chain[-1] if chain else centre_id

    def roots(self) -> list[int]:
        return list(self.children.get(None, []))

    def path(self, centre_id: int) -> str:
        return " / ".join(self.nodes[c].name for c in reversed(self.ancestors(centre_id)))


def make_code(*names: str) -> str:
    """A stable code for a centre from its path of names (ASCII slug, or a hash of it)."""
    parts = []
    for name in names:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        parts.append(re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-"))
    code = ".".join(parts)
    if not all(parts) or len(code) > 64:
        digest = hashlib.sha1("/".join(names).encode()).hexdigest()[:10]
        code = f"{(parts[-1] or 'centre')[:40]}-{digest}"
    return code


@dataclass
class ImportReport:
    centres_created: int = 0
    centres_updated: int = 0
    grid_cells: int = 0
    units_created: int = 0


def import_organisation(session: Session, spec: OrganisationSpec) -> ImportReport:
    """Create or update the tree from a spec (matched by code); the caller commits.

    Nothing is deleted: centres, cells and units missing from the spec stay, because cases
    and users refer to them.
    """
    report = ImportReport()

    def upsert(node: CentreSpec, tier: str, parent: Centre | None, path: list[str]) -> None:
        names = [*path, node.name]
        code = node.code or make_code(*names)
        centre = session.scalar(select(Centre).where(Centre.code == code))
        if centre is None:
            centre = session.scalar(
                select(Centre).where(
                    Centre.name == node.name,
                    Centre.parent_id.is_(None) if parent is None else Centre.parent_id == parent.id,
                )
            )
        if centre is None:
            centre = Centre(code=code, name=node.name, tier=tier)
            centre.parent_id = parent.id if parent else None
            session.add(centre)
            report.centres_created += 1
        else:
            centre.code, centre.name, centre.tier = code, node.name, tier
            centre.parent_id = parent.id if parent else None
            report.centres_updated += 1
        session.flush()
        for cell_code in node.grid_cells:
            cell = session.get(GridCell, cell_code)
            if cell is None:
                session.add(GridCell(code=cell_code, centre_id=centre.id))
            else:
                cell.centre_id = centre.id
            report.grid_cells += 1
        for unit_spec in node.units:
            unit = session.scalar(
                select(Unit).where(Unit.centre_id == centre.id, Unit.name == unit_spec.name)
            )
            if unit is None:
                session.add(
                    Unit(
                        name=unit_spec.name,
                        kind=unit_spec.kind,
                        phone=unit_spec.phone,
                        centre_id=centre.id,
                    )
                )
                report.units_created += 1
            else:
                unit.kind, unit.phone, unit.active = unit_spec.kind, unit_spec.phone, True
        child_tier = TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]
        for child in node.children:
            upsert(child, child_tier, centre, names)

    upsert(spec.district, "district", None, [])
    session.flush()
    return report


def _child(session: Session, parent_id: int | None, name: str) -> Centre | None:
    condition = Centre.parent_id.is_(None) if parent_id is None else Centre.parent_id == parent_id
    return session.scalar(select(Centre).where(condition, Centre.name == name))


def ensure_location(session: Session, location: Location) -> int:
    """The community workstation owning a camera's grid cell, creating missing nodes.

    A grid cell already in the registry keeps its owner (the imported organisation is the
    authority); otherwise the district / street / community names of the location are
    found or created and the cell is given to that community. The caller commits.
    """
    cell = session.get(GridCell, location.grid_cell)
    if cell is not None:
        return cell.centre_id
    parent_id: int | None = None
    names: list[str] = []
    for tier, name in zip(
        TIERS, (location.district, location.street, location.community), strict=True
    ):
        names.append(name)
        centre = _child(session, parent_id, name)
        if centre is None:
            centre = Centre(code=_free_code(session, make_code(*names)), name=name, tier=tier)
            centre.parent_id = parent_id
            session.add(centre)
            session.flush()
        parent_id = centre.id
    assert parent_id is not None
    session.add(GridCell(code=location.grid_cell, centre_id=parent_id))
    session.flush()
    return parent_id


def _free_code(session: Session, code: str) -> str:
    candidate, n = code, 1
    while session.scalar(select(Centre.id).where(Centre.code == candidate)) is not None:
        n += 1
        candidate = f"{code[:60]}-{n}"
    return candidate


def locate(
    session: Session, tree: OrgTree, grid_cell: str | None, names: tuple[str | None, ...]
) -> int | None:
    """The community workstation for a grid cell, else the deepest centre matching the names
    (district, street, community) — never creates anything (runs in the alert consumer)."""
    if grid_cell:
        owner = session.scalar(select(GridCell.centre_id).where(GridCell.code == grid_cell))
        if owner is not None:
            return owner
    found: int | None = None
    parent: int | None = None
    for name in names:
        if not name:
            break
        match = next((c for c in tree.children.get(parent, []) if tree.nodes[c].name == name), None)
        if match is None:
            break
        found = parent = match
    return found


def at_tier(session: Session, centre_id: int, tier: str) -> int:
    """``OrgTree.at_tier`` by walking up parents (a few primary-key reads, no full tree)."""
    wanted = TIERS.index(tier)
    chain: list[Centre] = []
    current = session.get(Centre, centre_id)
    while current is not None and current not in chain:
        chain.append(current)
        if TIERS.index(current.tier) <= wanted:
            return current.id
        current = session.get(Centre, current.parent_id) if current.parent_id else None
    return chain[-1].id if chain else centre_id


def route(
    session: Session,
    *,
    grid_cell: str | None,
    names: tuple[str | None, ...],
    tier: str,
) -> tuple[int | None, int | None]:
    """(handling centre, routed-from workstation) for a case at ``tier``.

    Runs for every new case in the alert consumer, so the usual path (a known grid cell)
    reads a few rows by key; only an unknown cell loads the tree to match names. A location
    the organisation does not know goes to the district centre (if there is exactly one),
    so no alert is left without a centre that sees it.
    """
    origin = None
    if grid_cell:
        origin = session.scalar(select(GridCell.centre_id).where(GridCell.code == grid_cell))
    if origin is None:
        tree = OrgTree.load(session)
        origin = locate(session, tree, None, names)
        if origin is None:
            roots = tree.roots()
            return (roots[0], None) if len(roots) == 1 else (None, None)
    return at_tier(session, origin, tier), origin
