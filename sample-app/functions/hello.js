export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const name = ctx.params.name || url.searchParams.get("name") || "world";
    console.log(`greeting ${name}`);
    return Response.json({ message: `${env.SALUTATION}, ${name}!`, runtime: "v8" });
  },
};
