"""assft.domains: simulated target domains (named, seeded intensity/resolution shifts)."""

from assft.domains.appliers import rescale_intensity, thick_slices
from assft.domains.dataset import apply_domain_to_dataset
from assft.domains.plans import DEFAULT_SEVERITY, ShiftPlan, plan_case
from assft.domains.shifts import DOMAINS, apply_shift, describe_case, list_domains

__all__ = [
    "DEFAULT_SEVERITY",
    "DOMAINS",
    "ShiftPlan",
    "apply_domain_to_dataset",
    "apply_shift",
    "describe_case",
    "list_domains",
    "plan_case",
    "rescale_intensity",
    "thick_slices",
]
