"""Aurora DSQL multi-Region sets.

Multi-Region clusters are created within one Region set; DSQL does not peer across
continents (https://docs.aws.amazon.com/aurora-dsql/latest/userguide/what-is-aurora-dsql.html).
Both peers and the witness must come from one set. Regions whose set membership is
unverified (eu-north-1, eu-south-2, ap-south-1, ap-southeast-1) are left out on purpose:
a wrong guess would only fail later, inside AWS, after other resources were created.
"""

from __future__ import annotations

REGION_SETS: dict[str, tuple[str, ...]] = {
    "US": ("us-east-1", "us-east-2", "us-west-2"),
    "Asia Pacific": ("ap-northeast-3", "ap-northeast-2", "ap-northeast-1"),
    "Europe": ("eu-central-1", "eu-west-1", "eu-west-2", "eu-west-3"),
}

MULTI_REGION = tuple(region for regions in REGION_SETS.values() for region in regions)


def region_set(region: str) -> tuple[str, ...] | None:
    for regions in REGION_SETS.values():
        if region in regions:
            return regions
    return None


def default_witness(primary: str, secondary: str) -> str | None:
    """The first region of the pair's set that is neither peer, in the table's order."""
    regions = region_set(primary) or ()
    remaining = [r for r in regions if r not in (primary, secondary)]
    return remaining[0] if remaining else None


# Lambda offers arm64 (Graviton) functions in every region of the sets above
# (https://docs.aws.amazon.com/lambda/latest/dg/foundation-arch.html); there is no API to ask.
LAMBDA_ARM64 = frozenset(MULTI_REGION)
