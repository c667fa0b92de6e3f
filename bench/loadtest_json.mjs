// A load test document as text: JSON indented by 2, except each per-request record (per_request,
// per_request_server) on one line, since a 32-client level has ~100 of each.
export function loadtestJson(doc) {
  const text = JSON.stringify(doc, null, 2).replace(/\{\n\s*("(?:client|at_ms)"[^{}]*?)\n\s*\}/g, (_, body) => `{ ${body.replace(/\n\s*/g, ' ')} }`);
  return `${text}\n`;
}
