"""Meta webhook deliveries read into domain values: the pure part of the webhook, no I/O.

Meta's payloads are read tolerantly (STYLE.md, "Edges"): only the keys we use are described, unknown
keys are ignored, and anything odd inside a delivery is recorded as `Ignored` instead of failing the
whole delivery, because a non-200 answer makes Meta redeliver to every subscribed app. Only a body
whose top level is unusable raises `MalformedDelivery`.

`envelope.parse_delivery` reads the top level and hands each entry to the reader of the channel the
delivery's `object` names (`whatsapp`, `instagram`); they add what they find to a `delivery.Collector`,
structuring Meta's JSON with the strict converter of `converter`.
"""
