"""The cost table (docs/cost.md): its total is the sum of its rows, and its quantities are the roots'
defaults."""

import re
from decimal import Decimal
from pathlib import Path

from tests.kubernetes.conftest import variable_default
from tests.support.processes import REPO_ROOT

COST = (REPO_ROOT / "docs" / "cost.md").read_text()
TIMES = "\N{MULTIPLICATION SIGN}"
_DOLLARS = re.compile(r"\$([\d,]+\.\d\d)\b")
SECOND_REGION = COST[COST.index("**A second region**") : COST.index("**The node type")]


def dollars(text: str) -> Decimal:
    (amount,) = _DOLLARS.findall(text)
    return Decimal(amount.replace(",", ""))


def cost_rows(section: str) -> dict[str, list[str]]:
    """The first table of `section`, by its first cell, without its header."""
    table = re.search(r"\n(\| billed thing .*?)\n\n", section, re.DOTALL)
    assert table, "no cost table"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[1].splitlines()]
    return {row[0]: row[1:] for row in rows[2:]}


def test_the_total_is_the_sum_of_the_rows() -> None:
    rows = cost_rows(COST)
    total = dollars(rows.pop("**Total**")[2])
    priced = [dollars(cells[2]) for cells in rows.values() if cells[2] != "not priced"]
    assert len(priced) == len(rows) - 1, "only the flow logs are not priced"
    assert sum(priced) == total


def test_a_wrong_row_is_caught() -> None:
    wrong = COST.replace("| $121.47 | A |", "| $131.47 | A |")
    rows = cost_rows(wrong)
    total = dollars(rows.pop("**Total**")[2])
    assert sum(dollars(c[2]) for c in rows.values() if c[2] != "not priced") != total


def test_every_price_names_its_kind_of_source() -> None:
    for name, cells in cost_rows(COST).items():
        if name != "**Total**":
            assert re.fullmatch(r"(P|A|S|none)( \(.*\))?(, (P|A|S) \(.*\))?", cells[3]), name


def test_the_quantities_are_the_defaults() -> None:
    rows = cost_rows(COST)
    (group,) = variable_default("eks-cluster", "node_groups").values()
    (instance_type,) = group["instance_types"]
    assert f"EC2 nodes, {instance_type}, Linux" in rows
    assert rows[f"EC2 nodes, {instance_type}, Linux"][1].startswith(
        f"{group['desired_size']} {TIMES} "
    )
    nodes_tf = (REPO_ROOT / "eks-cluster" / "nodes.tf").read_text()
    (volume,) = re.findall(r"volume_size = (\d+)", nodes_tf)
    assert rows["EBS gp3 root volumes"][1] == f"{group['desired_size']} {TIMES} {volume} GB"
    retention = variable_default("eks-cluster", "log_retention_days")
    assert f"CloudWatch Logs, storage at {retention} days' retention" in rows
    keys = sum(
        len(re.findall(r'^resource "aws_kms_key"', path.read_text(), re.MULTILINE))
        for path in Path(REPO_ROOT).glob("*/*.tf")
    )
    assert rows["KMS customer managed keys"][1].startswith(f"{keys} ")
    assert variable_default("eks-cluster", "one_nat_gateway_per_az") is False
    assert rows["NAT gateway, hours"][1].startswith(f"1 {TIMES} 730 h")


def test_the_cheaper_profile_is_the_total_less_what_it_changes() -> None:
    profile = COST[COST.index("**A cheaper profile") : COST.index("**The node type")]
    rows = cost_rows(COST)
    total = dollars(rows["**Total**"][2])
    savings = [
        Decimal(before) - Decimal(after)
        for before, after in re.findall(r"from \$(\d+\.\d\d) to \$(\d+\.\d\d)", profile)
    ]
    assert len(savings) == 3
    (stated,) = re.findall(r"It costs about \*\*\$([\d.]+)\*\*", profile)
    assert Decimal(stated) == total - sum(savings)


def test_the_second_region_is_the_platform_again_plus_its_rows() -> None:
    rows = cost_rows(SECOND_REGION)
    total = dollars(rows.pop("**Total**")[2])
    priced = [dollars(cells[2]) for cells in rows.values() if cells[2] != "not priced"]
    assert sum(priced) == total
    first = cost_rows(COST)
    again = next(cells for name, cells in rows.items() if name.startswith("The platform"))
    assert dollars(again[2]) == dollars(first["**Total**"][2]) - dollars(
        first["S3 state bucket"][2]
    )


def per_unit(price: str) -> Decimal:
    (amount,) = re.findall(r"\$([\d.]+) per million", price)
    return Decimal(amount) / 1_000_000


def test_the_second_regions_records_cost_what_their_units_do() -> None:
    rows = cost_rows(COST)
    write_unit = per_unit(rows["DynamoDB readiness, write proofs"][0])
    read_unit = per_unit(rows["DynamoDB readiness, reads"][0])
    figures = re.findall(
        r"\$([\d.]+)[^$]*?\(([\d,]+) write units,\s+([\d,]+)\s+replicated[^,]*,\s+([\d,]+)"
        r"\s+read\s+units",
        SECOND_REGION,
    )
    assert len(figures) == 2, "a plain and a keyed figure"
    for amount, *counts in figures:
        writes, replicated, reads = (Decimal(n.replace(",", "")) for n in counts)
        assert Decimal(amount) == (writes + replicated) * write_unit + reads * read_unit
