// `edge pick` in Node: reads {rows, budgets, device?, references?} as JSON on stdin, runs
// picker.js (the same file the report page loads) and prints the result as JSON on stdout.
//
// budgets: {device, model, maxP90Ms, maxSizeMb, maxMemoryMb, minFidelity} (a top-level `device`
// wins); references: the reference-point rows (edge.reference_points.compare_with_records). Without a device, prints bestPerDevice(rows, budgets) (a list). Bad input: a message
// on stderr and exit status 2.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

const pickerPath = join(dirname(fileURLToPath(import.meta.url)), "picker.js");
vm.runInThisContext(readFileSync(pickerPath, "utf8"), { filename: pickerPath });
const picker = globalThis.edgePicker;

function fail(message) {
  process.stderr.write(`pick_cli: ${message}\n`);
  process.exit(2);
}

let text = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) text += chunk;

let input;
try {
  input = JSON.parse(text);
} catch (err) {
  fail(`stdin is not JSON: ${err.message}`);
}
if (input === null || typeof input !== "object" || !Array.isArray(input.rows)) {
  fail("expected a JSON object {rows: [...], budgets: {...}}");
}
const options = { ...(input.budgets || {}) };
if (input.device !== undefined && input.device !== null) options.device = input.device;
if (input.references !== undefined && input.references !== null) {
  if (!Array.isArray(input.references)) fail("references must be a list");
  options.references = input.references;
}

let result;
try {
  result = options.device === undefined || options.device === null
    ? picker.bestPerDevice(input.rows, options)
    : picker.pick(input.rows, options);
} catch (err) {
  fail(err.message);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
