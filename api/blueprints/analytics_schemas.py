"""Analytics schemas: the window arguments and the two reports (money as decimal strings keyed
by currency)."""

from __future__ import annotations

from marshmallow import fields

from api.smorest import Schema


class AnalyticsArgsSchema(Schema):
    # ``from`` is a Python keyword: the wire names are the spec's, the attributes are not.
    since = fields.AwareDateTime(data_key="from", load_default=None, metadata={
        "description": "Start of the window (with its offset); before 'to'. Default: 30 days "
                       "before 'to'."})
    until = fields.AwareDateTime(data_key="to", load_default=None, metadata={
        "description": "End of the window (with its offset); at most 366 days after 'from'. "
                       "Default: now."})


def _money_by_currency() -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.String())


class CreatorAnalyticsSchema(Schema):
    ordersByStatus = fields.Dict(keys=fields.String(), values=fields.Integer())
    spend = _money_by_currency()


class ProviderAnalyticsSchema(Schema):
    earnings = _money_by_currency()
    applications = fields.Integer()
    acceptedApplications = fields.Integer()
    acceptanceRate = fields.Float(allow_none=True)
    assignedOrders = fields.Integer()
    completedOrders = fields.Integer()
    completionRate = fields.Float(allow_none=True)
    medianSecondsToMatch = fields.Float(allow_none=True)


class MyAnalyticsSchema(Schema):
    window = fields.Method("_window")
    computedAt = fields.String()
    creator = fields.Nested(CreatorAnalyticsSchema, allow_none=True)
    provider = fields.Nested(ProviderAnalyticsSchema, allow_none=True)

    def _window(self, obj: dict[str, dict[str, str]]) -> dict[str, str]:
        return obj["window"]


class CurrencyTotalsSchema(Schema):
    gmv = fields.String()
    platformFees = fields.String()
    processingFees = fields.String()
    settlements = fields.Integer()


class AreaSchema(Schema):
    cellLat = fields.Float()
    cellLon = fields.Float()
    cellSizeDeg = fields.Float()
    providers = fields.Integer()


class QueueSchema(Schema):
    queue = fields.String()
    depth = fields.Integer()


class PlatformAnalyticsSchema(Schema):
    window = fields.Method("_window")
    computedAt = fields.String()
    ordersPosted = fields.Integer()
    ordersAccepted = fields.Integer()
    fillRate = fields.Float(allow_none=True)
    medianSecondsToAccept = fields.Float(allow_none=True)
    money = fields.Dict(keys=fields.String(), values=fields.Nested(CurrencyTotalsSchema))
    activeProvidersByArea = fields.List(fields.Nested(AreaSchema))
    queues = fields.List(fields.Nested(QueueSchema))

    def _window(self, obj: dict[str, dict[str, str]]) -> dict[str, str]:
        return obj["window"]
