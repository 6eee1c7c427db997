"""The organisation: centres with their grid cells, and units."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import DbId, DbSession, OptionalId, Principal, requires
from api.organisation import OrgTree, import_organisation, make_code
from api.orm import Centre, GridCell, Unit
from api.schemas import CentreCreate, CentreOut, ImportResult, UnitCreate, UnitOut, UnitUpdate
from api.settings import TIERS, OrganisationSpec

router = APIRouter(tags=["organisation"])

Reader = Annotated[Principal, Depends(requires("organisation.read"))]
Admin = Annotated[Principal, Depends(requires("organisation.write"))]


def centre_out(session: Session, tree: OrgTree, centre_id: int) -> CentreOut:
    node = tree.nodes[centre_id]
    cells = session.scalars(
        select(GridCell.code).where(GridCell.centre_id == centre_id).order_by(GridCell.code)
    ).all()
    return CentreOut(
        id=node.id,
        code=node.code,
        name=node.name,
        tier=node.tier,
        parent_id=node.parent_id,
        path=tree.path(node.id),
        grid_cells=list(cells),
    )


@router.get("/centres", response_model=list[CentreOut])
def list_centres(session: DbSession, principal: Reader) -> list[CentreOut]:
    """Your centre and everything under it, parents before children."""
    tree = OrgTree.load(session)
    ids = sorted(
        principal.scope if principal.scope is not None else tree.nodes,
        key=lambda c: (len(tree.ancestors(c)), tree.nodes[c].name),
    )
    cells: dict[int, list[str]] = {}
    for code, centre_id in session.execute(
        select(GridCell.code, GridCell.centre_id).order_by(GridCell.code)
    ):
        cells.setdefault(centre_id, []).append(code)
    return [
        CentreOut(
            id=c,
            code=tree.nodes[c].code,
            name=tree.nodes[c].name,
            tier=tree.nodes[c].tier,
            parent_id=tree.nodes[c].parent_id,
            path=tree.path(c),
            grid_cells=cells.get(c, []),
        )
        for c in ids
    ]


@router.get("/centres/{centre_id}", response_model=CentreOut, responses={404: {}})
def get_centre(centre_id: DbId, session: DbSession, principal: Reader) -> CentreOut:
    tree = OrgTree.load(session)
    if centre_id not in tree.nodes or not principal.sees(centre_id):
        raise HTTPException(404, f"centre {centre_id} does not exist")
    return centre_out(session, tree, centre_id)


@router.post("/centres", response_model=CentreOut, status_code=201, responses={409: {}, 422: {}})
def create_centre(body: CentreCreate, session: DbSession, principal: Admin) -> CentreOut:
    """Add a centre under a parent in your scope (a district centre needs a global admin)."""
    tree = OrgTree.load(session)
    if body.parent_id is None:
        if principal.scope is not None:
            raise HTTPException(403, "only an admin of the whole organisation adds a district")
        tier = "district"
    else:
        if body.parent_id not in tree.nodes or not principal.sees(body.parent_id):
            raise HTTPException(422, f"parent centre {body.parent_id} does not exist")
        parent_tier = tree.nodes[body.parent_id].tier
        if parent_tier == "community":
            raise HTTPException(
                422, "a community workstation is the lowest tier: choose a street or district"
            )
        tier = TIERS[TIERS.index(parent_tier) + 1]
    if body.grid_cells and tier != "community":
        raise HTTPException(422, f"grid cells belong to community workstations, not a {tier}")
    for cell in body.grid_cells:
        if session.get(GridCell, cell) is not None:
            raise HTTPException(409, f"grid cell '{cell}' already belongs to another centre")
    path = (
        [tree.nodes[c].name for c in reversed(tree.ancestors(body.parent_id))]
        if body.parent_id
        else []
    )
    centre = Centre(
        code=body.code or make_code(*path, body.name),
        name=body.name,
        tier=tier,
        parent_id=body.parent_id,
    )
    session.add(centre)
    try:
        session.flush()
        for cell in dict.fromkeys(body.grid_cells):
            session.add(GridCell(code=cell, centre_id=centre.id))
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(
            409, f"a centre named '{body.name}' (or with code '{centre.code}') already exists there"
        ) from None
    return centre_out(session, OrgTree.load(session), centre.id)


@router.post("/organisation/import", response_model=ImportResult, responses={403: {}})
def import_tree(body: OrganisationSpec, session: DbSession, principal: Admin) -> ImportResult:
    """Create or update the whole tree (matched by code or name); nothing is deleted."""
    if principal.scope is not None:
        raise HTTPException(403, "only an admin of the whole organisation imports it")
    try:
        report = import_organisation(session, body)
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise HTTPException(409, f"the import conflicts with existing data: {error.orig}") from None
    return ImportResult(**report.__dict__)


@router.get("/units", response_model=list[UnitOut])
def list_units(
    session: DbSession, principal: Reader, centre_id: OptionalId = None
) -> list[UnitOut]:
    """Units of your centres (and, to dispatch from below, of the centres above yours)."""
    query = select(Unit).order_by(Unit.centre_id, Unit.name)
    if principal.scope is not None:
        tree = OrgTree.load(session)
        visible = set(principal.scope)
        if principal.user.centre_id is not None:
            visible |= set(tree.ancestors(principal.user.centre_id))
        query = query.where(Unit.centre_id.in_(list(visible)))
    if centre_id is not None:
        query = query.where(Unit.centre_id == centre_id)
    return [UnitOut.model_validate(u) for u in session.scalars(query)]


@router.post("/units", response_model=UnitOut, status_code=201, responses={409: {}, 422: {}})
def create_unit(body: UnitCreate, session: DbSession, principal: Admin) -> UnitOut:
    if session.get(Centre, body.centre_id) is None or not principal.sees(body.centre_id):
        raise HTTPException(422, f"centre {body.centre_id} does not exist")
    unit = Unit(name=body.name, kind=body.kind, phone=body.phone, centre_id=body.centre_id)
    session.add(unit)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(
            409, f"centre {body.centre_id} already has a unit named '{body.name}'"
        ) from None
    return UnitOut.model_validate(unit)


@router.patch("/units/{unit_id}", response_model=UnitOut, responses={404: {}, 409: {}})
def update_unit(unit_id: DbId, body: UnitUpdate, session: DbSession, principal: Admin) -> UnitOut:
    """Rename a unit, change its phone, or deactivate it (it stays in past cases)."""
    unit = session.get(Unit, unit_id)
    if unit is None or not principal.sees(unit.centre_id):
        raise HTTPException(404, f"unit {unit_id} does not exist")
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is not None or name == "phone":
            setattr(unit, name, value)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise HTTPException(
            409, f"centre {unit.centre_id} already has a unit named '{body.name}'"
        ) from None
    return UnitOut.model_validate(unit)


__all__ = ["OrganisationSpec", "centre_out", "router"]
