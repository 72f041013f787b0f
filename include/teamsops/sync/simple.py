"""Tables re-read in full on every run (organization, SKUs, role definitions and assignments) and the derived
``user_licenses`` table (users' ``assignedLicenses`` joined to the SKUs; no Graph call)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from teamsops.sync import convert
from teamsops.sync.job import TableJob
from teamsops.sync.models import TableResult
from teamsops.sync.storage import iter_batches

__all__ = ["SIMPLE_SOURCES", "extract_collection", "extract_user_licenses"]

log = logging.getLogger(__name__)

# table -> (path, $select, row builder)
SIMPLE_SOURCES: dict[str, tuple[str, str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "organization": ("/organization", "id,displayName,verifiedDomains,countryLetterCode,tenantType,createdDateTime,"
                                      "onPremisesSyncEnabled,technicalNotificationMails", convert.organization_row),
    "subscribed_skus": ("/subscribedSkus", "id,skuId,skuPartNumber,consumedUnits,prepaidUnits,capabilityStatus,"
                                           "appliesTo", convert.sku_row),
    "role_definitions": ("/roleManagement/directory/roleDefinitions",
                         "id,displayName,description,isBuiltIn,isEnabled,templateId", convert.role_definition_row),
    "role_assignments": ("/roleManagement/directory/roleAssignments",
                         "id,principalId,roleDefinitionId,directoryScopeId", convert.role_assignment_row),
}  # fmt: skip


def extract_collection(job: TableJob) -> TableResult:
    """Page through a collection (following nextLinks) and stream its rows into the part file."""
    path, select, to_row = SIMPLE_SOURCES[job.spec.name]
    previous = job.plan.previous_tables.get(job.spec.name)
    progress = job.start_progress(total=previous["rows"] if previous else None)
    with job.sink() as sink:
        for page in job.client.pages(path, params={"$select": select}):
            rows = [to_row(item) for item in page.get("value", [])]
            sink.write_many(rows)
            progress.add(pages=1, rows=len(rows))
    return job.result(sink.rows, mode="full")


def extract_user_licenses(job: TableJob) -> TableResult:
    """One row per (user, assigned SKU) of THIS run's users, with the SKU's part number from this run's SKUs."""
    skus = {}
    for batch in iter_batches(job.run_parts("subscribed_skus"), ["sku_id", "sku_part_number"]):
        skus.update(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
    progress = job.start_progress()
    unknown = 0
    with job.sink() as sink:
        for batch in iter_batches(job.run_parts("users"), ["id", "assignedLicenses"]):
            before = sink.total
            for user_id, text in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                for licence in json.loads(text) if text else []:
                    sku_id = licence.get("skuId")
                    unknown += sku_id not in skus
                    sink.write({"user_id": user_id, "sku_id": sku_id, "sku_part_number": skus.get(sku_id),
                                "disabled_plans": convert.json_text(licence.get("disabledPlans") or [])})
            progress.add(rows=sink.total - before)
    if unknown:
        log.warning("user_licenses: %d assignment(s) name a SKU that subscribedSkus does not list", unknown)
    return job.result(sink.rows, mode="derived", extra={"unknown_skus": unknown})
