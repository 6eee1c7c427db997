"""A ready-made organisation and users for the demo and for trying the API.

``seed_demo`` is what ``sharpeyes demo`` calls (through ``sharpeyes users seed-demo`` or
directly) so an operator can log in to the console at once. It is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Role, create_user
from api.organisation import import_organisation
from api.orm import Centre, User
from api.settings import CentreSpec, OrganisationSpec, UnitSpec

DEMO_ORGANISATION = OrganisationSpec(
    district=CentreSpec(
        name="Demo District",
        code="demo",
        units=[
            UnitSpec(name="District police command", kind="police"),
            UnitSpec(name="District joint patrol team", kind="joint_patrol"),
        ],
        children=[
            CentreSpec(
                name="Riverside Street",
                code="demo.riverside",
                units=[
                    UnitSpec(name="Riverside police station", kind="police", phone="110"),
                    UnitSpec(name="Riverside city management", kind="city_management"),
                ],
                children=[
                    CentreSpec(
                        name="Harbour Community",
                        code="demo.riverside.harbour",
                        grid_cells=["grid-07", "grid-08"],
                        units=[UnitSpec(name="Harbour grid workers", kind="grid_workers")],
                    ),
                    CentreSpec(
                        name="Market Community",
                        code="demo.riverside.market",
                        grid_cells=["grid-12"],
                        units=[UnitSpec(name="Market grid workers", kind="grid_workers")],
                    ),
                ],
            ),
            CentreSpec(
                name="Hillside Street",
                code="demo.hillside",
                units=[UnitSpec(name="Hillside police station", kind="police")],
                children=[
                    CentreSpec(
                        name="Orchard Community",
                        code="demo.hillside.orchard",
                        grid_cells=["grid-21"],
                        units=[UnitSpec(name="Orchard grid workers", kind="grid_workers")],
                    )
                ],
            ),
        ],
    )
)

# username, role, centre code (None: the whole organisation)
DEMO_USERS: tuple[tuple[str, Role, str | None], ...] = (
    ("admin", Role.ADMIN, None),
    ("operator", Role.OPERATOR, "demo.riverside"),
    ("dispatcher", Role.DISPATCHER, "demo.riverside"),
    ("integrator", Role.INTEGRATOR, "demo"),
    ("harbour", Role.OPERATOR, "demo.riverside.harbour"),
    ("hillside", Role.OPERATOR, "demo.hillside"),
)


@dataclass(frozen=True)
class SeededUser:
    username: str
    password: str
    role: str
    centre: str | None
    created: bool


def seed_demo(session: Session, password: str = "sharpeyes-demo") -> list[SeededUser]:
    """Import the demo organisation and create its users (existing ones are left alone).

    The caller commits. Every demo user gets ``password``.
    """
    import_organisation(session, DEMO_ORGANISATION)
    session.flush()
    out = []
    for username, role, code in DEMO_USERS:
        centre_id = None
        if code is not None:
            centre_id = session.scalar(select(Centre.id).where(Centre.code == code))
        exists = session.scalar(select(User.id).where(User.username == username)) is not None
        if not exists:
            create_user(session, username, password, role, centre_id, f"Demo {role.value}")
        out.append(SeededUser(username, password, role.value, code, not exists))
    return out
