from edge import Response
from lib.catalog import USERS

# Module-level state lives as long as the warm instance: a stand-in for a
# database connection pool or a loaded model.
calls = 0


def handle(request):
    global calls
    calls += 1
    if "*" in request.params:
        return {"table": request.env["TABLE"], "path": request.params["*"]}
    user_id = request.params.get("id")
    if user_id is None:
        limit = int(request.query.get("limit", "10"))
        return {"table": request.env["TABLE"], "users": list(USERS.values())[:limit]}
    user = USERS.get(user_id)
    if user is None:
        return Response({"error": f"no user {user_id}"}, status=404)
    return {**user, "table": request.env["TABLE"], "instance_calls": calls}
