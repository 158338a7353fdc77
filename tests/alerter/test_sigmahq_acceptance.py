"""The acceptance figure on a SigmaHQ checkout (AOC_TEST_SIGMA_DIR=<checkout>): how many of its
Microsoft 365 and Azure rules load, how many are refused and why. Skipped without a checkout (the
rules are not ours to ship); run it with `-s` to read the report."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from aoc_alerter.core import Evaluation, find_hits
from aoc_common.sigma import load_paths, to_rule
from tests.utils.records import fixture_events, signin_events

FOLDERS = ("rules/cloud/m365", "rules/cloud/azure")


def reason_kind(reason: str) -> str:
    """A refusal reason without its specifics (field names, titles), to count them."""
    if "is not one AOC collects" in reason or "does not collect" in reason:
        return "log source AOC does not collect"
    for marker in ("unmapped field", "placeholder"):
        if marker in reason:
            return marker
    return "pySigma: " + reason.split(":")[0][:80]


@pytest.mark.skipif(not os.environ.get("AOC_TEST_SIGMA_DIR"), reason="AOC_TEST_SIGMA_DIR not set")
def test_the_sigmahq_m365_and_azure_rules_load_or_are_refused_with_a_reason(fixtures_dir: Path):
    checkout = Path(os.environ["AOC_TEST_SIGMA_DIR"])
    folders = [checkout / f for f in FOLDERS if (checkout / f).is_dir()] or [checkout]
    result = load_paths(folders, placeholders={"internal_domains": ["contoso.com"]})
    refused_by_kind = Counter(reason_kind(r.reason) for r in result.refusals)
    total = len(result.rules) + len(result.refusals)

    print(f"\nSigmaHQ acceptance ({', '.join(str(f) for f in folders)}):")
    print(f"  {total} rules: {len(result.rules)} load, {len(result.refusals)} refused")
    for kind, count in refused_by_kind.most_common():
        print(f"  refused, {kind}: {count}")
    for refusal in result.refusals:
        print(f"    {Path(refusal.origin).name}: {refusal.reason}")
    rules = [to_rule(c, result.documents[c.meta.sigma_id], origin="test") for c in result.rules]
    demo = [*fixture_events(fixtures_dir), *signin_events(fixtures_dir)]
    hits = Counter(hit.rule.name for hit in find_hits(rules, demo, Evaluation()))
    print(f"  on the demo data, {len(hits)} of the {len(rules)} loaded rules match events:")
    for name, count in hits.most_common():
        print(f"    {count:>3} × {name}")

    assert total > 0
    assert all(refusal.reason for refusal in result.refusals)  # never refused without a reason
    assert len(result.rules) > 0
