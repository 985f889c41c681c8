"""Demo data for GetCareDocumentation 3.0: none of its own.

The same FHIR care notes (adapter/demo/care_documentation.py) are published in both versions (neither
claims a DocumentReference or Composition), so the 2.1 demo notes are the 3.0 demo notes too; giving them
again here would only publish every note twice.
"""

from __future__ import annotations

import random

from adapter.demo.world import DemoPatient, World


def resources(world: World, patient: DemoPatient, rng: random.Random) -> list[dict]:
    return []
