"""KWOKNodeClass (``kwok.nodesmith.io/v1``, cluster-scoped): the kwok provider's NodeClass.

NodePools point at one with ``nodeClassRef: {group: kwok.nodesmith.io, kind: KWOKNodeClass, name: ...}``.
The provider reads it on every launch; ``nodesmith_crds`` serves its CRD, generated from the schema below
with the same toolkit as nodesmith's own CRDs (``python -m nodesmith_kwok.nodeclass deploy/crds``).

Fields:

* ``nodeRegistrationDelay`` — how long a launched "instance" takes to register its Node (default ``0s``),
  to exercise the lifecycle's waiting paths.
* ``insufficientCapacity`` — offerings (instance type, zone, capacity type; an omitted field matches
  any) whose launch fails with insufficient capacity. For tests and demos of ICE handling: a failed offering
  is then reported unavailable for a while, exactly as a cloud provider's ICE cache would.
* ``capacityReservations`` — reserved capacity (``id``, ``instanceType``, ``zone``, ``count``): the
  provider offers each as a ``reserved`` offering of that instance type in that zone, with ``count`` minus
  the live Nodes launched into it left, so reserved capacity can be tested as with EC2 capacity
  reservations.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

import attrs

from nodesmith import errors
from nodesmith.api import conditions, crds, duration, schema

__all__ = ["CRD", "GROUP", "KIND", "KWOKNodeClass", "OfferingSelector", "Reservation"]

GROUP: Final = "kwok.nodesmith.io"
KIND: Final = "KWOKNodeClass"
PLURAL: Final = "kwoknodeclasses"

SPEC_SCHEMA: Final = schema.obj(
    {
        "nodeRegistrationDelay": schema.string(
            "How long after launch the fake instance registers its Node.",
            pattern=r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
            max_length=64,
            default="0s",
        ),
        "insufficientCapacity": schema.array(
            schema.obj(
                {
                    "instanceType": schema.string("Instance type name; omitted matches any.", max_length=253),
                    "zone": schema.string("Zone; omitted matches any.", max_length=253),
                    "capacityType": schema.string(
                        "Capacity type; omitted matches any.", enum=("spot", "on-demand", "reserved")
                    ),
                },
                "An offering whose launch fails with insufficient capacity.",
            ),
            "Offerings that fail to launch with insufficient capacity (tests and demos).",
            max_items=1000,
        ),
        "capacityReservations": schema.array(
            schema.obj(
                {
                    "id": schema.string("Reservation id (the nodes' reservation-id label).", max_length=63),
                    "instanceType": schema.string("Instance type the reservation holds.", max_length=253),
                    "zone": schema.string("Zone of the reservation.", max_length=253),
                    "count": schema.integer("Instances the reservation holds.", minimum=0),
                },
                "A capacity reservation.",
                required=("id", "instanceType", "zone", "count"),
            ),
            "Reserved capacity offered as capacity type reserved (tests and demos).",
            max_items=100,
        ),
    },
    "KWOKNodeClassSpec configures the fake instances the kwok provider launches.",
)
STATUS_SCHEMA: Final = schema.obj(
    {"conditions": conditions.CONDITIONS_SCHEMA},
    "KWOKNodeClassStatus reports whether the NodeClass can be used.",
)
CRD: Final = crds.CustomResource(
    group=GROUP,
    kind=KIND,
    plural=PLURAL,
    spec=SPEC_SCHEMA,
    status=STATUS_SCHEMA,
    description="KWOKNodeClass is the NodeClass of nodesmith's kwok provider (fake nodes managed by kwok).",
    spec_required=False,
    printer_columns=(crds.PrinterColumn("Age", ".metadata.creationTimestamp", "date"),),
)


@attrs.frozen(slots=True)
class OfferingSelector:
    """Matches offerings by instance type, zone and capacity type; ``None`` matches anything."""

    instance_type: str | None = None
    zone: str | None = None
    capacity_type: str | None = None

    def matches(self, instance_type: str, zone: str, capacity_type: str) -> bool:
        return (
            (self.instance_type is None or self.instance_type == instance_type)
            and (self.zone is None or self.zone == zone)
            and (self.capacity_type is None or self.capacity_type == capacity_type)
        )


@attrs.frozen(slots=True)
class Reservation:
    """``count`` instances of ``instance_type`` in ``zone`` held for this NodeClass's nodes."""

    id: str
    instance_type: str
    zone: str
    count: int


@attrs.frozen(slots=True)
class KWOKNodeClass:
    """The parsed object: name, registration delay, injected insufficient capacity, readiness."""

    name: str
    registration_delay: timedelta = timedelta(0)
    insufficient_capacity: tuple[OfferingSelector, ...] = ()
    ready: bool = True
    not_ready_message: str = ""
    reservations: tuple[Reservation, ...] = ()

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> KWOKNodeClass:
        """Validate against the CRD schema (defaults applied) and parse; raises ``ValidationError``."""
        name = str((obj.get("metadata") or {}).get("name", ""))
        spec = schema.apply_defaults(SPEC_SCHEMA, obj.get("spec") or {})
        schema.validate(SPEC_SCHEMA, spec, "spec")
        try:
            delay = duration.parse_duration(spec["nodeRegistrationDelay"])
        except duration.DurationError as err:
            raise errors.ValidationError("spec.nodeRegistrationDelay", str(err)) from err
        selectors = tuple(
            OfferingSelector(item.get("instanceType"), item.get("zone"), item.get("capacityType"))
            for item in spec.get("insufficientCapacity") or ()
        )
        ready, message = True, ""
        for condition in (obj.get("status") or {}).get("conditions") or ():
            if condition.get("type") == conditions.ConditionType.READY and condition.get("status") == "False":
                ready, message = False, str(condition.get("message", ""))
        reservations = tuple(
            Reservation(str(r["id"]), str(r["instanceType"]), str(r["zone"]), int(r["count"]))
            for r in spec.get("capacityReservations") or ()
        )
        return cls(name, delay, selectors, ready, message, reservations)

    def launch_fails(self, instance_type: str, zone: str, capacity_type: str) -> bool:
        """Is this offering configured to fail with insufficient capacity?"""
        return any(s.matches(instance_type, zone, capacity_type) for s in self.insufficient_capacity)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nodesmith_kwok.nodeclass DIR`` writes the KWOKNodeClass CRD into DIR."""
    args = list(sys.argv[1:] if argv is None else argv)
    for path in crds.write(args[0] if args else "deploy/crds", [CRD]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
