from __future__ import annotations

from django.contrib import admin

from core.admin_kit import ReadOnlyAdmin, admin_link
from recommender.models import ModelVersion
from serving.models import ArtifactFault


@admin.register(ArtifactFault)
class ArtifactFaultAdmin(ReadOnlyAdmin):
    """Damaged artifacts found by the serving hosts, and which version answered instead."""

    list_display = ["detected_at", "version", "host", "pool", "stand_in_version", "detail"]
    list_filter = ["pool", "host"]
    list_select_related = ["model_version", "stand_in"]
    date_hierarchy = "detected_at"

    @admin.display(description="damaged version", ordering="model_version__version")
    def version(self, fault: ArtifactFault) -> str:
        return admin_link(ModelVersion, fault.model_version_id, f"v{fault.model_version.version}")

    @admin.display(description="served instead")
    def stand_in_version(self, fault: ArtifactFault) -> str:
        if fault.stand_in is None:
            return "none: no older good artifact, the damaged one went on serving"
        return admin_link(ModelVersion, fault.stand_in_id, f"v{fault.stand_in.version}")
