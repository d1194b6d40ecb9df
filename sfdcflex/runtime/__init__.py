"""A Twilio Functions runtime on http.server: what a function author imports.

    from sfdcflex.runtime import Response

    def handler(context, event, callback):
        callback(None, Response(status=201, body={"ok": True}))

The rest (the app, the server, routes, limits) is for whoever starts the runtime: see
`sfdcflex.runtime.app` and `sfdcflex.runtime.http.server`. This package imports nothing from
the rest of sfdcflex, so it can be lifted out whole.
"""
from .response import Response

__all__ = ["Response"]
