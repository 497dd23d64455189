// Validates Prometheus Operator resources (ServiceMonitor, PrometheusRule) against the
// schemas generated from the operator's CRDs (npm @kubernetes-models/prometheus-operator).
// Reads a JSON array of resources on stdin; prints each verdict; exits 1 if any fails.
// Run with NODE_PATH pointing at the node_modules holding the package.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";

const modules = process.env.NODE_PATH;
const base = path.join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");
const input = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => done(text));
}));
let failed = 0;
for (const resource of input) {
  const kind = resource.kind;
  const { [kind]: Model } = await import(pathToFileURL(path.join(base, `${kind}.js`)).href);
  try {
    new Model(resource).validate();
    console.log(`ok ${kind}/${resource.metadata?.name}`);
  } catch (e) {
    failed++;
    console.log(`FAILED ${kind}/${resource.metadata?.name}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
