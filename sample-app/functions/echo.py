async def handle(request):
    return {
        "method": request.method,
        "json": request.json(),
        "content_type": request.headers.get("content-type"),
        "api_base": request.env["API_BASE"],
    }
