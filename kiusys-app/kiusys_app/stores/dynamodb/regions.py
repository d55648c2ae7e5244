"""Where a route's count lives: one item in one region, or a G-counter over several regions.

A global table in DynamoDB's eventually consistent mode settles two regions' writes to one item
by last writer wins, so two regions that `ADD 1` to one item at about the same time keep one of
the increments. Each region therefore writes an item of its own: the home region (the first
listed) the route's own item, as a single region does (`AR1133`), every other region the route
with its name (`AR1133#eu-west-1`). No item is written in two regions, so replication never
drops an increment, and a route's count is the sum of its items.

A region that ever wrote stays listed: its items hold its counts after its pods are gone.
"""

from dataclasses import dataclass

# Never part of a flight route (models.ROUTE_RULE), so no region's item is another route's.
SEPARATOR = "#"


@dataclass(frozen=True, slots=True)
class CounterItems:
    """The counter items of a route, for a process in `region`; `regions` lists every region
    that writes, home first (none: this region alone, the seed's layout)."""

    region: str
    regions: tuple[str, ...] = ()

    def own(self, route: str) -> str:
        """The item this region writes."""
        return self._item(route, self.region)

    def others(self, route: str) -> list[str]:
        """The items the other regions write, replicated here."""
        return [self._item(route, region) for region in self.regions if region != self.region]

    def every(self, route: str) -> list[str]:
        """Every item whose sum is the route's count."""
        return [self.own(route), *self.others(route)]

    def _item(self, route: str, region: str) -> str:
        home = self.regions[0] if self.regions else self.region
        return route if region == home else f"{route}{SEPARATOR}{region}"
