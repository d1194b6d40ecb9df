"""A Twilio Functions runtime on http.server: what a function author imports.

    from sfdcflex.runtime import Response

    def handler(context, event, callback):
        response = Response({"greeting": f"hello {event.get('name', 'there')}"}, status_code=201)
        callback(None, response.append_header("Cache-Control", "no-store"))

The rest (the app, the server, routes, limits) is for whoever starts the runtime: see
`sfdcflex.runtime.app` and `sfdcflex.runtime.http.server`. This package imports nothing from
the rest of sfdcflex, so it can be lifted out whole.
"""
from .response import Response

__all__ = ["Response"]
