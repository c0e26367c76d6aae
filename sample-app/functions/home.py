import os

from edge import Response


def handle(request):
    body = f"{request.env['GREETING']}! (served by pid {os.getpid()})\n"
    return Response(body, headers={"cache-control": "no-store"})
