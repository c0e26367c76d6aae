// A real itty-router app (bundled by scripts/build-js-apps.sh into itty.bundle.js).
import { AutoRouter, error } from "itty-router";

const router = AutoRouter({ base: "/itty" });  // deployed on /itty/*
router.get("/items/:id", ({ params, query }) => ({ id: params.id, q: query.q ?? null }));
router.post("/digest", async (request) => {
  const digest = await crypto.subtle.digest("SHA-256", await request.arrayBuffer());
  return { sha256: [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("") };
});
router.get("/teapot", () => error(418, "short and stout"));

export default { fetch: router.fetch };
