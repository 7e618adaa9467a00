"""assft.domains: simulated target domains (named, seeded intensity/resolution shifts)."""

from assft.domains.shifts import (
    DEFAULT_SEVERITY,
    DOMAINS,
    apply_domain_to_dataset,
    apply_shift,
    describe_case,
    list_domains,
    rescale_intensity,
    thick_slices,
)

__all__ = [
    "DEFAULT_SEVERITY",
    "DOMAINS",
    "apply_domain_to_dataset",
    "apply_shift",
    "describe_case",
    "list_domains",
    "rescale_intensity",
    "thick_slices",
]
