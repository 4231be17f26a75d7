// Workflows saved before the CIELR LLM nodes' seeds stopped changing after each run hold one widget
// value more than the nodes have now: the "control after generate" choice ("randomize", "fixed"...)
// right after the seed. The frontend puts saved values into widgets by position, so that stale value
// would land in the next widget and shift every later one. It is dropped before the values are placed.
import { app } from "../../scripts/app.js";

const CONTROL_VALUES = new Set(["fixed", "increment", "decrement", "randomize"]);

function fixedSeeds(nodeData) {
  // INT inputs the node declares without a control (control_after_generate: false)
  const inputs = { ...(nodeData?.input?.required ?? {}), ...(nodeData?.input?.optional ?? {}) };
  return Object.entries(inputs)
    .filter(([, spec]) => spec?.[0] === "INT" && spec?.[1]?.control_after_generate === false)
    .map(([name]) => name);
}

app.registerExtension({
  name: "CIELR.SeedsWithoutControl",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("CIELR")) return;
    const seeds = fixedSeeds(nodeData);
    if (!seeds.length) return;
    const configure = nodeType.prototype.configure;
    nodeType.prototype.configure = function (info) {
      const values = info?.widgets_values;
      if (Array.isArray(values)) {
        const names = (this.widgets ?? []).filter((w) => w.serialize !== false).map((w) => w.name);
        for (const seed of seeds) {
          const at = names.indexOf(seed);
          if (values.length > names.length && at >= 0 && CONTROL_VALUES.has(values[at + 1])) {
            values.splice(at + 1, 1);
          }
        }
      }
      return configure.call(this, info);
    };
  },
});
