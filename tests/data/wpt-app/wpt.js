// Runs one web-platform-tests file per request, inside a deployed edge function.
//
// POST {harness, scripts: [[path, source], ...], deadline_ms}: evaluates a fresh
// testharness.js with setup({explicit_done: true}), then the scripts (the file's
// META dependencies first, the file last), then done(); answers every result.
// A file whose tests are still pending at deadline_ms is closed with the harness's
// own timeout(), so a missing feature costs its tests, not the run.
const STATUS = ["PASS", "FAIL", "TIMEOUT", "NOTRUN", "PRECONDITION_FAILED"];
const globalEval = eval;

function runFile(harness, scripts, deadlineMs) {
  return new Promise((resolve) => {
    const results = [];
    const errors = [];
    if (typeof globalThis.self === "undefined") globalThis.self = globalThis;
    globalEval(harness + "\n//# sourceURL=/resources/testharness.js");
    // Older files call the removed assert_throws(errorInstance, fn): map it (see SOURCES.md).
    globalThis.assert_throws = (err, fn, desc) => assert_throws_js(err.constructor, fn, desc);
    add_result_callback((t) => results.push([t.name, STATUS[t.status] || String(t.status), t.message]));
    add_completion_callback((_, status) => {
      clearTimeout(timer);
      resolve({ results, errors, harness_status: status.status, harness_message: status.message });
    });
    const timer = setTimeout(() => timeout(), deadlineMs);
    setup({ explicit_done: true });
    // One evaluation for all: separate indirect evals would hide each script's
    // top-level let/const from the next, which classic scripts on a page share.
    const last = scripts[scripts.length - 1][0];
    try {
      globalEval(scripts.map(([, source]) => source).join("\n;\n") + "\n//# sourceURL=" + last);
    } catch (e) {
      errors.push(`${last}: ${e && e.stack ? e.stack.split("\n")[0] : String(e)}`);
    }
    // A file that set explicit_done itself calls done() when its tests are defined.
    if (!scripts.some(([, source]) => /explicit_done/.test(source))) done();
  });
}

export default {
  async fetch(request) {
    const { harness, scripts, deadline_ms } = await request.json();
    return Response.json(await runFile(harness, scripts, deadline_ms));
  },
};
